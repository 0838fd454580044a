"""Principals (who is calling), scopes (what they may do) and agent tokens.

Three kinds of principal cross the syscall boundary:

admin
    The operator: the control socket's owner. Holds every scope.
service:<skill>
    A skill's service, with the scopes the skill declares and the system grants.
agent
    A ReActUnit's bash, through ``AOS_TOKEN``: the scopes of its agent, limited
    to its own session and its agent's subtree, and only while the dispatch that
    issued the token runs.

What is not granted is denied. Agent tokens are HMAC-signed by the node's key
(a 0600 file in the state dir), so a token cannot be forged or widened.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from typing import Literal

import msgspec

PrincipalKind = Literal["admin", "service", "agent"]

SCOPES: dict[str, str] = {
    "kernel.read": "read the node's status",
    "kernel.admin": "read the configuration, shut the node down (admin only)",
    "agent.read": "read agents",
    "agent.write": "create, update and archive agents",
    "session.read": "read sessions, their history and context",
    "session.write": "create, append to and archive sessions",
    "session.dispatch": "dispatch and interrupt sessions",
    "skill.read": "list and read skills",
    "skill.write": "load and unload skills in a session",
    "skill.call": "call the methods a skill's service offers",
    "skill.admin": "reload skills (restarting their services) for the whole node",
    "hook.read": "list hooks and their implementations",
    "log.read": "read the RuntimeLog",
    "events.subscribe": "stream kernel events",
}
ADMIN_ONLY = frozenset({"kernel.admin"})
"""Scopes no agent or service can be granted."""
GRANTABLE_SCOPES = frozenset(SCOPES) - ADMIN_ONLY
"""Every scope an agent or service may hold."""
DEFAULT_AGENT_SCOPES: tuple[str, ...] = (
    "session.read",
    "skill.read",
    "skill.write",
    "skill.call",
)
"""Scopes of a root agent that names none: what the standard harness needs (its
own session's history for ``skill list``, ``skill load``, ``skill.call`` for
aos-a2a and other active skills' services). Everything else an admin grants."""


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    kind: PrincipalKind
    name: str
    scopes: frozenset[str] = frozenset()
    agent_id: str | None = None
    """For agent principals: the agent whose subtree bounds what it may touch."""
    session_id: str | None = None
    """For agent principals: the session the token was issued for."""
    dispatch_id: str | None = None
    """For agent principals: the dispatch that issued the token; the token is
    valid only while that dispatch runs (checked on every syscall)."""
    token_id: str | None = None
    """For a remote service's token: its grant (``aos service token``), checked on
    every syscall, so that revoking or re-minting it cuts the old token off."""

    def allows(self, scope: str) -> bool:
        return self.kind == "admin" or scope in self.scopes


ADMIN = Principal(kind="admin", name="admin")


def service_principal(skill: str, scopes: frozenset[str], token_id: str | None = None) -> Principal:
    return Principal(
        kind="service", name=f"service:{skill}", scopes=scopes - ADMIN_ONLY, token_id=token_id
    )


def agent_principal(
    agent_id: str,
    session_id: str | None,
    scopes: frozenset[str],
    dispatch_id: str | None = None,
) -> Principal:
    """An agent's principal; without a ``dispatch_id`` it can call nothing."""
    return Principal(
        kind="agent",
        name=f"agent:{agent_id}",
        scopes=scopes - ADMIN_ONLY,
        agent_id=agent_id,
        session_id=session_id,
        dispatch_id=dispatch_id,
    )


class InvalidToken(Exception):
    """A token that is malformed, forged or expired (the message says which)."""


class _TokenBody(msgspec.Struct, array_like=True):
    kind: Literal["agent", "service"]
    name: str
    """The agent id, or the service's skill."""
    session_id: str | None
    scopes: list[str]
    expires: float
    dispatch_id: str | None = None
    """The dispatch an agent token is bound to (``None`` for services)."""
    token_id: str | None = None
    """A remote service's grant (``None`` for the others)."""


class TokenAuthority:
    """Issues and verifies agent tokens: ``aos1.<payload>.<hmac>`` (base64url)."""

    PREFIX = "aos1"

    def __init__(self, key: bytes) -> None:
        self._key = key

    KEY_BYTES = 32

    @classmethod
    def from_file(cls, path: Path) -> TokenAuthority:
        """Load the node key, creating it (mode 0600) on first use.

        The key is written to a temporary file and linked into place, so a
        concurrent opener sees either no key or the whole key."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(cls.KEY_BYTES))
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:  # another process won the race: use its key
                pass
            finally:
                tmp.unlink()
        key = path.read_bytes()
        if len(key) != cls.KEY_BYTES or path.stat().st_mode & 0o077:
            raise ValueError(
                f"{path} is not a valid node key ({cls.KEY_BYTES} bytes, mode 0600): "
                "delete it to create a new one (issued tokens become invalid)"
            )
        return cls(key)

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def issue(self, principal: Principal, ttl: float = 24 * 3600) -> str:
        """A token for an agent or service principal (admin has no token)."""
        if principal.kind == "agent" and principal.agent_id is not None:
            name = principal.agent_id
        elif principal.kind == "service":
            name = principal.name.removeprefix("service:")
        else:
            raise ValueError("tokens are issued to agent and service principals only")
        body = _TokenBody(
            principal.kind,
            name,
            principal.session_id,
            sorted(principal.scopes),
            time.time() + ttl,
            principal.dispatch_id,
            principal.token_id,
        )
        payload = msgspec.msgpack.encode(body)
        return ".".join((self.PREFIX, _b64(payload), _b64(self._sign(payload))))

    def verify(self, token: str) -> Principal:
        try:
            prefix, payload_b64, signature_b64 = token.split(".")
            payload, signature = _unb64(payload_b64), _unb64(signature_b64)
        except ValueError:
            raise InvalidToken("malformed token") from None
        if prefix != self.PREFIX or not hmac.compare_digest(signature, self._sign(payload)):
            raise InvalidToken("token signature does not match this node's key")
        body = msgspec.msgpack.decode(payload, type=_TokenBody)
        if body.expires < time.time():
            raise InvalidToken("token expired")
        if body.kind == "service":
            return service_principal(body.name, frozenset(body.scopes), body.token_id)
        return agent_principal(body.name, body.session_id, frozenset(body.scopes), body.dispatch_id)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
