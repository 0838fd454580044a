"""``service.token``, ``service.revoke``: remote services' grants (aos/remotes.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from aos.principals import Principal, service_principal
from aos.remotes import DEFAULT_TTL_DAYS, GrantError
from aos.syscalls._table import SyscallError, syscall

if TYPE_CHECKING:
    from aos.kernel import Kernel


class TokenParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    scopes: list[str] = []
    ttl_days: float = DEFAULT_TTL_DAYS
    hooks: list[str] = []


class ServiceToken(msgspec.Struct):
    name: str
    token: str
    """Given once: the node keeps only its grant's id."""
    scopes: list[str]
    hooks: list[str]
    expires: float
    url: str | None
    """The node's WebSocket face, when it listens (``AOS_WS_LISTEN``)."""


@syscall(
    "service.token",
    scope="kernel.admin",
    doc="Grant a remote service: its token (replacing any earlier one) and scopes.",
)
async def service_token(kernel: Kernel, principal: Principal, params: TokenParams) -> ServiceToken:
    local = kernel.skills.get(params.name)
    if local is not None:
        raise SyscallError(
            "conflict",
            f"{params.name!r} is a skill on this node ({local.path}): a remote service needs "
            "a name of its own",
        )
    try:
        grant = kernel.remotes.grant(params.name, params.scopes, params.ttl_days, params.hooks)
    except GrantError as exc:
        raise SyscallError("invalid", str(exc)) from None
    except OSError as exc:
        raise SyscallError(
            "unavailable", f"cannot record the grant in {kernel.remotes.path}: {exc.strerror}"
        ) from None
    token = kernel.tokens.issue(
        service_principal(grant.name, frozenset(grant.scopes), grant.token_id),
        ttl=grant.expires - grant.minted,
    )
    return ServiceToken(
        name=grant.name,
        token=token,
        scopes=grant.scopes,
        hooks=grant.hooks,
        expires=grant.expires,
        url=kernel.ws_url,
    )


class RevokeParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str


class Revoked(msgspec.Struct):
    name: str
    revoked: bool
    """False when there was no grant of that name."""


@syscall(
    "service.revoke",
    scope="kernel.admin",
    doc="Revoke a remote service: its token stops working, its connection and hooks go.",
)
async def service_revoke(kernel: Kernel, principal: Principal, params: RevokeParams) -> Revoked:
    try:
        gone = kernel.remotes.revoke(params.name)
    except OSError as exc:
        raise SyscallError(
            "unavailable", f"cannot update {kernel.remotes.path}: {exc.strerror}"
        ) from None
    return Revoked(name=params.name, revoked=gone is not None)
