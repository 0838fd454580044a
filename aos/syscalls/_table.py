"""The syscall table itself: registration, the checks every call passes
(dispatch alive, scope, params, the syscall.before gate), the audit, and the
helpers that tell whether a principal may touch an agent or a session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_args, get_type_hints

import msgspec
from aos_sdk.protocol import SyscallErrorCode

from aos.hooks import HookRejected
from aos.principals import GRANTABLE_SCOPES, Principal
from aos.remotes import GRANT_ENDED
from aos.runtimelog import LogEntry
from aos.session import SCB
from aos.store import StoreError

if TYPE_CHECKING:
    from aos.kernel import Kernel


GRANTABLE = sorted(GRANTABLE_SCOPES)


ERROR_CODES: frozenset[str] = frozenset(get_args(SyscallErrorCode))


class SyscallError(Exception):
    """A syscall failed; ``code`` is one of ``aos_sdk.protocol.SyscallErrorCode``."""

    def __init__(self, code: SyscallErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: SyscallErrorCode = code
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


Handler = Callable[["Kernel", Principal, Any], Awaitable[Any]]


@dataclass(frozen=True)
class Syscall:
    name: str
    scope: str
    doc: str
    params: type[msgspec.Struct]
    result: Any
    handler: Handler
    writes: bool
    """State-changing syscalls are audited in RuntimeLog."""


SYSCALLS: dict[str, Syscall] = {}


def syscall(name: str, *, scope: str, doc: str) -> Callable[[Handler], Handler]:
    """Register a handler ``async def h(kernel, principal, params: P) -> R``."""

    def register(handler: Handler) -> Handler:
        hints = get_type_hints(handler, localns={"Kernel": object})  # Kernel: typing only
        SYSCALLS[name] = Syscall(
            name=name,
            scope=scope,
            doc=doc,
            params=hints["params"],
            result=hints["return"],
            handler=handler,
            writes=scope.endswith((".write", ".dispatch")),
        )
        return handler

    return register


async def call(
    kernel: Kernel, principal: Principal, name: str, params: Mapping[str, Any] | None
) -> Any:
    """Check, validate, gate and run one syscall; return its result as builtins."""
    sc = SYSCALLS.get(name)
    if sc is None:
        raise SyscallError("unknown", f"unknown syscall {name!r} (see docs/specs/aos-syscall.md)")
    if principal.kind == "agent" and not dispatch_runs(kernel, principal):
        _audit(kernel, principal, name, f"denied: {DISPATCH_ENDED}")
        raise SyscallError("denied", f"{principal.name}: {DISPATCH_ENDED}")
    if principal.token_id is not None and not kernel.remotes.valid(principal):
        _audit(kernel, principal, name, f"denied: {GRANT_ENDED}")
        raise SyscallError("denied", f"{principal.name}: {GRANT_ENDED}")
    if not principal.allows(sc.scope):
        _audit(kernel, principal, name, "denied")
        raise SyscallError(
            "denied", f"{principal.name} lacks scope {sc.scope!r} required by {name}"
        )
    typed = _convert(sc, params or {})
    try:
        if kernel.hooks.impls("syscall.before") and _gated(kernel, principal):
            typed = await _gate(kernel, principal, sc, typed)
        result = await sc.handler(kernel, principal, typed)
    except StoreError as exc:
        raise SyscallError(exc.code, str(exc)) from None  # type: ignore[arg-type]
    except SyscallError as exc:
        if exc.code == "denied":  # denials inside handlers are audited like scope denials
            _audit(kernel, principal, name, f"denied: {exc.message}")
        raise
    if sc.writes:
        _audit(kernel, principal, name, "ok")
    return msgspec.to_builtins(result)


DISPATCH_ENDED = (
    "this token's dispatch has ended: an agent token is valid only while the dispatch "
    "that issued it runs (use the AOS_TOKEN of the current command)"
)


def dispatch_runs(kernel: Kernel, principal: Principal) -> bool:
    """Whether the dispatch that issued an agent's token still runs on this node
    (a dict lookup: no store read per syscall)."""
    unit = kernel.dispatches.get(principal.session_id) if principal.session_id else None
    return (
        unit is not None
        and principal.dispatch_id is not None
        and unit.dispatch_id == principal.dispatch_id
    )


def _convert(sc: Syscall, params: Mapping[str, Any]) -> Any:
    try:
        return msgspec.convert(params, sc.params)
    except msgspec.ValidationError as exc:
        raise SyscallError("invalid", f"{sc.name}: invalid params: {exc}") from None


def _gated(kernel: Kernel, principal: Principal) -> bool:
    """Whether ``syscall.before`` sees this caller's calls: agents' and third-party
    services', never the admin's nor those of the standard package's services (the
    web UI acts for the operator), so no skill's gate can delay or deny them."""
    if principal.kind == "admin":
        return False
    if principal.kind == "service":
        skill = kernel.skills.get(principal.name.removeprefix("service:"))
        return skill is None or skill.system
    return True


async def _gate(kernel: Kernel, principal: Principal, sc: Syscall, typed: Any) -> Any:
    active = (
        await kernel.agents.active_skills(principal.agent_id, principal.session_id)
        if principal.agent_id
        else None
    )
    try:
        output = await kernel.hooks.gate(
            "syscall.before",
            {
                "syscall": sc.name,
                "principal": principal.name,
                "scope": sc.scope,
                "agent_id": principal.agent_id,
                "session_id": principal.session_id,
            },
            {"params": msgspec.to_builtins(typed)},
            active=active,
        )
    except HookRejected as exc:
        raise SyscallError("denied", f"{sc.name} {exc}") from None
    return _convert(sc, output["params"])


def _audit(kernel: Kernel, principal: Principal, name: str, outcome: str) -> None:
    kernel.log(
        LogEntry(
            kind="syscall",
            level="info" if outcome == "ok" else "warning",
            message=f"{name} by {principal.name}: {outcome}",
            agent_id=principal.agent_id,
            session_id=principal.session_id,
            data={"syscall": name, "principal": principal.name, "outcome": outcome},
        )
    )


async def check_agent(kernel: Kernel, principal: Principal, agent_id: str) -> None:
    """Agent principals may touch only their own agent subtree."""
    if principal.kind != "agent" or principal.agent_id is None:
        return
    await kernel.agents.get(agent_id)  # not_found before denied
    if not await kernel.agents.in_subtree(principal.agent_id, agent_id):
        raise SyscallError(
            "denied", f"{principal.name} may not touch agent {agent_id}: outside its subtree"
        )


async def session_for(kernel: Kernel, principal: Principal, session_id: str) -> SCB:
    scb = await kernel.sessions.get(session_id)
    agent_id = principal.agent_id
    if (
        agent_id is not None
        and session_id != principal.session_id
        and not await kernel.agents.in_subtree(agent_id, scb.agent_id)
    ):
        raise SyscallError(
            "denied",
            f"{principal.name} may not touch session {session_id}: "
            "it belongs to an agent outside its subtree",
        )
    return scb


class NoParams(msgspec.Struct, forbid_unknown_fields=True):
    pass
