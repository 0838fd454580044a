"""Remote services: the grants that let a service run on another machine.

An admin mints a service token for a name (``aos service token NAME --scopes
...``, the ``service.token`` syscall). That records a **grant** in the node's
state dir (``remote-services.json``): the name, its scopes, and the id of the
one token that is valid for it. A service holding the token attaches over the
WebSocket face (docs/specs/aos-service.md#remote-services) as ``service:NAME``.

Minting again replaces the grant (the old token stops working at its next
syscall or hello); ``aos service revoke NAME`` removes it (its connection is
closed and its hooks go). While granted, a remote service is supervised like a
local one: it guards every agent, and its remembered hooks fail by their policy
whenever it is not connected.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec

from aos.hookspecs import HOOKS
from aos.principals import GRANTABLE_SCOPES, Principal
from aos.skills.manifest import check_name
from aos.statefile import read_state, write_state

GRANTS_FILE = "remote-services.json"
"""Under the node's state dir: the remote services' grants."""
DEFAULT_TTL_DAYS = 365
GRANT_ENDED = (
    "this service token was revoked or replaced by a newer one "
    "(the admin mints one with `aos service token NAME`)"
)


class RemoteGrant(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    scopes: list[str]
    hooks: list[str] = []
    """Gate and provide hooks enforced (failing by policy) before its first hello."""
    token_id: str
    """Carried in the token: only the token of the latest grant is valid."""
    minted: float
    expires: float


class _GrantsFile(msgspec.Struct, kw_only=True):
    version: int = 1
    grants: dict[str, RemoteGrant] = {}


class GrantError(ValueError):
    """A grant that cannot be made (the message says why)."""


GrantChange = Callable[[Literal["granted", "revoked"], RemoteGrant], None]


class RemoteGrants:
    """The grants, persisted; listeners hear of each change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        found, self.problem = read_state(path, _GrantsFile, "remote services file")
        """Why the file could not be used (no remote service is granted then)."""
        self._grants: dict[str, RemoteGrant] = found.grants if found else {}
        self._listeners: list[GrantChange] = []

    def names(self) -> frozenset[str]:
        return frozenset(self._grants)

    def get(self, name: str) -> RemoteGrant | None:
        return self._grants.get(name)

    def all(self) -> list[RemoteGrant]:
        return sorted(self._grants.values(), key=lambda g: g.name)

    def valid(self, principal: Principal) -> bool:
        """Whether a remote service's token is the one its grant names (a dict lookup)."""
        grant = self._grants.get(principal.name.removeprefix("service:"))
        return grant is not None and grant.token_id == principal.token_id

    def grant(
        self, name: str, scopes: list[str], ttl_days: float, hooks: list[str] | None = None
    ) -> RemoteGrant:
        """Grant (or re-grant) ``name``: GrantError for a bad name, scope or hook,
        OSError when the file cannot be written (nothing changes then)."""
        problems = check_name(name, name)
        if problems:
            raise GrantError(f"invalid service name: {'; '.join(problems)}")
        unknown = sorted(set(scopes) - GRANTABLE_SCOPES)
        if unknown:
            raise GrantError(
                f"a service cannot hold {', '.join(unknown)}; grantable scopes: "
                f"{', '.join(sorted(GRANTABLE_SCOPES))}"
            )
        if ttl_days <= 0:
            raise GrantError("ttl_days must be positive")
        hooks = sorted(set(hooks or []))
        unfit = [h for h in hooks if h not in HOOKS or HOOKS[h].kind not in ("gate", "provide")]
        if unfit:
            raise GrantError(
                f"{', '.join(unfit)}: a remote service's hooks enforced before its hello must "
                "be gate or provide hooks (docs/specs/aos-hooks.md)"
            )
        now = time.time()
        made = RemoteGrant(
            name=name,
            scopes=sorted(set(scopes)),
            hooks=hooks,
            token_id=secrets.token_urlsafe(12),
            minted=now,
            expires=now + ttl_days * 86400,
        )
        self._save({**self._grants, name: made})
        self._tell("granted", made)
        return made

    def revoke(self, name: str) -> RemoteGrant | None:
        gone = self._grants.get(name)
        if gone is not None:
            self._save({k: v for k, v in self._grants.items() if k != name})
            self._tell("revoked", gone)
        return gone

    def subscribe(self, listener: GrantChange) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _save(self, grants: dict[str, RemoteGrant]) -> None:
        write_state(self.path, _GrantsFile(grants=grants))
        self._grants = grants
        self.problem = None

    def _tell(self, change: Literal["granted", "revoked"], grant: RemoteGrant) -> None:
        for listener in list(self._listeners):
            listener(change, grant)
