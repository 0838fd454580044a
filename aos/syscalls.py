"""The syscall table: the only legal kernel boundary.

Each syscall is registered once with msgspec-typed params and result, the scope
it requires and a doc line. The CLI, services and skill scripts all call the
same table. A syscall is registered only when it works: the table is the truth
of what the kernel can do (``docs/specs/aos-syscall.md`` documents it).
"""

from __future__ import annotations

import asyncio
import os
import platform
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args, get_type_hints

import msgspec
from aos_sdk.protocol import SyscallErrorCode

from aos import __version__
from aos.agent import ACB, AgentConfig, AgentStatus, EffectiveConfig, name_problem
from aos.aoscb import CHARS_PER_TOKEN
from aos.config import mask_url
from aos.events import current_stream
from aos.facts import (
    APPENDABLE,
    APPENDED_BY,
    Fact,
    HistoryEntry,
    SkillLoaded,
    SkillUnloaded,
    UserMessage,
    fact_kind,
)
from aos.hooks import HookError, HookRejected
from aos.ids import new_id
from aos.principals import ADMIN_ONLY, GRANTABLE_SCOPES, SCOPES, Principal
from aos.reactunit import DispatchOutcome, DispatchRefused
from aos.runtimelog import LogEntry
from aos.sandbox import Isolation
from aos.session import SCB, SessionStatus
from aos.skills.registry import Skill, SkillInfo
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
    if principal.kind == "agent" and not _dispatch_runs(kernel, principal):
        _audit(kernel, principal, name, f"denied: {DISPATCH_ENDED}")
        raise SyscallError("denied", f"{principal.name}: {DISPATCH_ENDED}")
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


def _dispatch_runs(kernel: Kernel, principal: Principal) -> bool:
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


# -- authorization helpers ----------------------------------------------------------


async def _check_agent(kernel: Kernel, principal: Principal, agent_id: str) -> None:
    """Agent principals may touch only their own agent subtree."""
    if principal.kind != "agent" or principal.agent_id is None:
        return
    await kernel.store.get_agent(agent_id)  # not_found before denied
    if not await kernel.agents.in_subtree(principal.agent_id, agent_id):
        raise SyscallError(
            "denied", f"{principal.name} may not touch agent {agent_id}: outside its subtree"
        )


async def _session_for(kernel: Kernel, principal: Principal, session_id: str) -> SCB:
    scb = await kernel.store.get_session(session_id)
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


def _check_scopes(requested: list[str] | None, ceiling: list[str], whose: str) -> None:
    if requested is None:
        return
    unknown = sorted(set(requested) - SCOPES.keys())
    if unknown:
        raise SyscallError("invalid", f"unknown scope(s): {', '.join(unknown)}")
    admin_only = sorted(set(requested) & ADMIN_ONLY)
    if admin_only:
        raise SyscallError(
            "denied", f"scope(s) {', '.join(admin_only)} cannot be granted to agents"
        )
    wider = sorted(set(requested) - set(ceiling))
    if wider:
        raise SyscallError(
            "denied", f"{whose} lacks scope(s) {', '.join(wider)}: scopes are never widened"
        )


ADMIN_SET_CONFIG = ("workspace", "model", "sandbox")
"""AgentConfig fields only the admin sets: where an agent's bash runs, which model it
uses, whether its commands are sandboxed."""


def _check_agent_input(kernel: Kernel, name: str | None, config: AgentConfig | None) -> None:
    """An agent's name follows the name rule, and the skills its config names exist."""
    problem = name_problem(name) if name is not None else None
    if problem is not None:
        raise SyscallError("invalid", problem)
    known = {skill.name for skill in kernel.skills.all()}
    known.update(name for name, _ in kernel.pm.list_name_plugin())  # in-process skills
    unknown = [name for name in (config.skills if config else None) or () if name not in known]
    if unknown:
        raise SyscallError(
            "not_found",
            f"no skill named {', '.join(map(repr, unknown))} (see `aos skill list`): "
            "an agent's skills must exist on the node",
        )


def _check_config(
    principal: Principal, old: AgentConfig, new: AgentConfig, max_steps: int, target: str
) -> None:
    """An agent principal never widens an agent's config (``target`` names the agent):
    ``workspace``, ``model`` and ``sandbox`` are the admin's, skills are only added,
    ``network`` only ever becomes ``none``, and ``max_steps`` is not raised above
    ``max_steps`` (the effective value now, or the parent's for a new agent)."""
    if principal.kind != "agent":
        return
    changed = [f for f in ADMIN_SET_CONFIG if getattr(new, f) != getattr(old, f)]
    if changed:
        keep = "keep its current value" if old != AgentConfig() else "leave it out to inherit"
        raise SyscallError(
            "denied",
            f"{principal.name} may not set {' or '.join(changed)} of {target}: "
            f"only the admin may ({keep})",
        )
    dropped = [name for name in old.skills or () if name not in (new.skills or ())]
    if dropped:
        raise SyscallError(
            "denied",
            f"{principal.name} may not remove skill(s) {', '.join(dropped)} from {target}: "
            "only the admin may",
        )
    if new.network != old.network and new.network != "none":
        what = "lift network: none of" if old.network == "none" else "widen the network of"
        raise SyscallError(
            "denied",
            f"{principal.name} may not {what} {target}: only the admin may (an agent may set "
            "network: none)",
        )
    if new.max_steps is not None and new.max_steps != old.max_steps and new.max_steps > max_steps:
        raise SyscallError(
            "denied", f"{principal.name} may not raise max_steps of {target} above {max_steps}"
        )


# -- kernel.* ----------------------------------------------------------------------------


class NoParams(msgspec.Struct, forbid_unknown_fields=True):
    pass


class DatabaseStatus(msgspec.Struct):
    backend: str
    url: str
    schema_version: int


class PluginStatus(msgspec.Struct, omit_defaults=True):
    name: str
    value: str
    distribution: str | None = None
    error: str | None = None


class KernelStatus(msgspec.Struct):
    node: str
    version: str
    pid: int
    python: str
    started_at: float
    uptime: float
    database: DatabaseStatus
    plugins: list[PluginStatus]
    skills: dict[str, int]
    """How many skills are active, broken and shadowed."""
    services: list[dict[str, Any]]
    """Each service: skill, state, pid, restarts, last_error (when a daemon runs them)."""
    isolation: Isolation
    """What protects the agents' commands (aos/sandbox.py)."""
    project: str
    """The directory the daemon serves: its skills/, aoscb.json and .env are this one's."""


@syscall(
    "kernel.status", scope="kernel.read", doc="The node: version, pid, uptime, database, plugins."
)
async def kernel_status(kernel: Kernel, principal: Principal, params: NoParams) -> KernelStatus:
    return KernelStatus(
        node=kernel.node_id,
        version=__version__,
        pid=os.getpid(),
        python=platform.python_version(),
        started_at=kernel.started_at,
        uptime=time.time() - kernel.started_at,
        database=DatabaseStatus(
            backend=kernel.store.backend,
            url=kernel.store.url,
            schema_version=await kernel.store.schema_version(),
        ),
        plugins=[
            PluginStatus(p.name, p.value, p.distribution, p.error) for p in kernel.plugin_loads
        ],
        skills={
            status: sum(1 for s in kernel.skills.all() if s.status == status)
            for status in ("active", "broken", "shadowed")
        },
        services=kernel.services.status() if kernel.services else [],
        isolation=kernel.sandboxes.isolation,
        project=str(kernel.config.project_dir),
    )


class KernelConfig(msgspec.Struct):
    aoscb: dict[str, Any]
    db_url: str
    paths: dict[str, str]
    sources: dict[str, str]


@syscall(
    "kernel.config", scope="kernel.admin", doc="The resolved configuration and each value's source."
)
async def kernel_config(kernel: Kernel, principal: Principal, params: NoParams) -> KernelConfig:
    config = kernel.config
    return KernelConfig(
        aoscb=msgspec.to_builtins(config.aoscb),
        db_url=mask_url(config.db_url),
        paths={k: str(v) for k, v in vars(config.paths).items()},
        sources=config.sources,
    )


# -- agent.* ------------------------------------------------------------------------------


class AgentInfo(msgspec.Struct):
    agent: ACB
    effective: EffectiveConfig


class AgentCreateParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    parent: str | None = None
    config: AgentConfig = msgspec.field(default_factory=AgentConfig)
    scopes: list[str] | None = None


@syscall(
    "agent.create",
    scope="agent.write",
    doc="Create an agent (a child of `parent`), through the agent.create gate.",
)
async def agent_create(
    kernel: Kernel, principal: Principal, params: AgentCreateParams
) -> AgentInfo:
    parent_chain: list[ACB] = []
    if params.parent is not None:
        await _check_agent(kernel, principal, params.parent)
        parent_chain = await kernel.agents.lineage(params.parent)
        if parent_chain[-1].status != "active":
            raise SyscallError("conflict", f"parent agent {params.parent} is archived")
    elif principal.kind == "agent":
        raise SyscallError(
            "denied", f"{principal.name} may create agents only inside its subtree: name a parent"
        )
    parent_effective = kernel.agents.effective_of(parent_chain) if parent_chain else None
    ceiling = parent_effective.scopes if parent_effective else GRANTABLE
    whose = f"parent agent {params.parent}" if params.parent else "the grantable set"
    if principal.kind == "agent":  # never more than the calling token holds
        whose = f"{principal.name} or {whose}"
        if set(ceiling) - principal.scopes:
            ceiling = sorted(set(ceiling) & principal.scopes)
            if params.scopes is None:
                params = msgspec.structs.replace(params, scopes=ceiling)
    _check_scopes(params.scopes, ceiling, whose)
    _check_agent_input(kernel, params.name, params.config)
    target = f"new agent {params.name!r}"
    steps = parent_effective.max_steps if parent_effective else kernel.config.aoscb.limits.max_steps
    _check_config(principal, AgentConfig(), params.config, steps, target)

    proposed = {
        "name": params.name,
        "parent": params.parent,
        "config": msgspec.to_builtins(params.config),
        "scopes": params.scopes,
    }
    try:
        decided = await kernel.hooks.gate(
            "agent.create",
            {
                "principal": principal.name,
                "parent": params.parent,
                "parent_effective": msgspec.to_builtins(parent_effective)
                if parent_effective
                else None,
            },
            proposed,
            active=await kernel.agents.active_skills(principal.agent_id)
            if principal.agent_id
            else None,
        )
    except HookRejected as exc:
        raise SyscallError("denied", f"agent.create {exc}") from None
    decided["parent"] = params.parent  # the gate may not move the agent in the tree
    try:
        final = msgspec.convert(decided, AgentCreateParams)
    except msgspec.ValidationError as exc:
        raise SyscallError(
            "invalid", f"agent.create: the agent.create gate returned an invalid agent: {exc}"
        ) from None
    _check_scopes(final.scopes, ceiling, whose)
    _check_config(principal, AgentConfig(), final.config, steps, target)
    acb = await kernel.store.create_agent(
        ACB(
            id=new_id("agt"),
            name=final.name,
            parent=final.parent,
            config=final.config,
            scopes=final.scopes,
        )
    )
    return AgentInfo(agent=acb, effective=kernel.agents.effective_of([*parent_chain, acb]))


class AgentIdParams(msgspec.Struct, forbid_unknown_fields=True):
    id: str


@syscall(
    "agent.get", scope="agent.read", doc="One agent with its effective (inherited) configuration."
)
async def agent_get(kernel: Kernel, principal: Principal, params: AgentIdParams) -> AgentInfo:
    await _check_agent(kernel, principal, params.id)
    chain = await kernel.agents.lineage(params.id)
    return AgentInfo(agent=chain[-1], effective=kernel.agents.effective_of(chain))


class AgentListParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    parent: str | None = None
    status: AgentStatus | None = None


@syscall(
    "agent.list",
    scope="agent.read",
    doc="Agents (optionally children of `parent`, or by status); agents see their subtree.",
)
async def agent_list(kernel: Kernel, principal: Principal, params: AgentListParams) -> list[ACB]:
    if params.parent is not None:
        await _check_agent(kernel, principal, params.parent)
        found = await kernel.store.list_agents(parent=params.parent, status=params.status)
    else:
        found = await kernel.store.list_agents(status=params.status)
    if principal.kind == "agent" and principal.agent_id is not None:
        found = [a for a in found if await kernel.agents.in_subtree(principal.agent_id, a.id)]
    return found


class AgentUpdateParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: str
    name: str | None = None
    config: AgentConfig | None = None
    """Replaces the agent's overrides as a whole."""
    scopes: list[str] | None = None


@syscall(
    "agent.update",
    scope="agent.write",
    doc="Rename an agent, replace its config overrides or its scopes (never wider than its parent's).",
)
async def agent_update(
    kernel: Kernel, principal: Principal, params: AgentUpdateParams
) -> AgentInfo:
    await _check_agent(kernel, principal, params.id)
    chain = await kernel.agents.lineage(params.id)
    acb = chain[-1]
    if params.scopes is not None:
        ceiling = kernel.agents.effective_of(chain[:-1]).scopes if acb.parent else GRANTABLE
        whose = f"parent agent {acb.parent}" if acb.parent else "the grantable set"
        if principal.kind == "agent":  # an agent never grants more than it holds
            ceiling = sorted(set(ceiling) & principal.scopes)
            whose = f"{principal.name} or {whose}"
        _check_scopes(params.scopes, ceiling, whose)
    _check_agent_input(kernel, params.name, params.config)
    if params.config is not None:
        steps = kernel.agents.effective_of(chain).max_steps
        _check_config(principal, acb.config, params.config, steps, f"agent {acb.id}")
    updated = msgspec.structs.replace(
        acb,
        name=params.name if params.name is not None else acb.name,
        config=params.config if params.config is not None else acb.config,
        scopes=params.scopes if params.scopes is not None else acb.scopes,
    )
    updated = await kernel.store.update_agent(updated)
    return AgentInfo(agent=updated, effective=kernel.agents.effective_of([*chain[:-1], updated]))


@syscall(
    "agent.archive",
    scope="agent.write",
    doc="Archive an agent (refused while it has active children).",
)
async def agent_archive(kernel: Kernel, principal: Principal, params: AgentIdParams) -> ACB:
    await _check_agent(kernel, principal, params.id)
    acb = await kernel.store.get_agent(params.id)
    children = await kernel.store.list_agents(parent=acb.id, status="active")
    if children:
        names = ", ".join(c.name for c in children)
        raise SyscallError(
            "conflict", f"agent {acb.id} has active children ({names}): archive them first"
        )
    if acb.status == "archived":
        return acb
    archived = await kernel.store.update_agent(msgspec.structs.replace(acb, status="archived"))
    # Its running dispatches end now, and their tokens with them: a dispatch that
    # read the agent as active before this write holds its lease and is found here;
    # one that starts later sees it archived and is refused.
    units = [u for u in kernel.dispatches.values() if u.scb.agent_id == acb.id]
    for unit in units:
        unit.cancel(f"interrupted: agent {acb.id} was archived by {principal.name}")
    if units:
        await asyncio.shield(asyncio.gather(*(u.task for u in units), return_exceptions=True))
    return archived


# -- session.* -----------------------------------------------------------------------------


class SessionCreateParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    agent_id: str | None = None
    """Defaults to the calling agent."""
    title: str = ""


@syscall(
    "session.create", scope="session.write", doc="Open a session of an agent; fires session.create."
)
async def session_create(kernel: Kernel, principal: Principal, params: SessionCreateParams) -> SCB:
    agent_id = params.agent_id or principal.agent_id
    if agent_id is None:
        raise SyscallError("invalid", "session.create: invalid params: agent_id is required")
    await _check_agent(kernel, principal, agent_id)
    agent = await kernel.store.get_agent(agent_id)
    if agent.status != "active":
        raise SyscallError("conflict", f"agent {agent_id} is archived")
    scb = await kernel.store.create_session(
        SCB(id=new_id("ses"), agent_id=agent_id, title=params.title)
    )
    kernel.hooks.notify(
        "session.create",
        {"session": msgspec.to_builtins(scb), "agent": msgspec.to_builtins(agent)},
        active=await kernel.agents.active_skills(agent_id),
    )
    return scb


class SessionIdParams(msgspec.Struct, forbid_unknown_fields=True):
    id: str


@syscall("session.get", scope="session.read", doc="One session control block.")
async def session_get(kernel: Kernel, principal: Principal, params: SessionIdParams) -> SCB:
    scb = await _session_for(kernel, principal, params.id)
    unit = kernel.dispatches.get(scb.id)
    return msgspec.structs.replace(scb, phase=unit.phase) if unit is not None else scb


class SessionListParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    agent_id: str | None = None
    status: SessionStatus | None = None


@syscall(
    "session.list",
    scope="session.read",
    doc="Sessions (of one agent, or by status); agents see their subtree's.",
)
async def session_list(
    kernel: Kernel, principal: Principal, params: SessionListParams
) -> list[SCB]:
    if params.agent_id is not None:
        await _check_agent(kernel, principal, params.agent_id)
    found = await kernel.store.list_sessions(agent_id=params.agent_id, status=params.status)
    if principal.kind == "agent" and principal.agent_id is not None:
        found = [s for s in found if await kernel.agents.in_subtree(principal.agent_id, s.agent_id)]
    return found


class SessionAppendParams(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    fact: Fact


class Appended(msgspec.Struct):
    session_id: str
    seq: int


@syscall(
    "session.append",
    scope="session.write",
    doc="Append a fact to a session's history; fires history.append.",
)
async def session_append(
    kernel: Kernel, principal: Principal, params: SessionAppendParams
) -> Appended:
    scb = await _session_for(kernel, principal, params.id)
    if scb.status == "archived":
        raise SyscallError("conflict", f"session {scb.id} is archived")
    return Appended(
        session_id=scb.id, seq=await kernel.history.append(scb, _authored(principal, params.fact))
    )


def _authored(principal: Principal, fact: Fact) -> Fact:
    """The fact as ``principal`` may append it: agents and services only the kinds
    meant for them (``APPENDABLE``), and a ``message.user`` always says who sent it."""
    if principal.kind == "admin":
        return fact
    kind = fact_kind(fact)
    allowed = APPENDABLE[principal.kind]
    if kind not in allowed:
        raise SyscallError(
            "denied",
            f"{principal.name} may not append {kind} facts: "
            f"{APPENDED_BY.get(kind, 'they are written by the kernel')} "
            f"(it may append: {', '.join(sorted(allowed))})",
        )
    if isinstance(fact, UserMessage) and fact.sender != principal.name:
        if fact.sender != UserMessage(text="").sender:  # named someone else explicitly
            raise SyscallError(
                "denied",
                f"{principal.name} may not append a message.user as {fact.sender!r}: "
                f"the kernel sets sender to {principal.name} (leave sender out)",
            )
        fact = msgspec.structs.replace(fact, sender=principal.name)
    return fact


class SessionHistoryParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: str
    after: int = 0
    until: int | None = None
    limit: int | None = None


@syscall(
    "session.history",
    scope="session.read",
    doc="Facts of a session with after < seq <= until, oldest first.",
)
async def session_history(
    kernel: Kernel, principal: Principal, params: SessionHistoryParams
) -> list[HistoryEntry]:
    await _session_for(kernel, principal, params.id)
    return await kernel.store.read_history(
        params.id, after=params.after, until=params.until, limit=params.limit
    )


@syscall(
    "session.archive",
    scope="session.write",
    doc="Archive a session (refused while a dispatch holds its lease).",
)
async def session_archive(kernel: Kernel, principal: Principal, params: SessionIdParams) -> SCB:
    scb = await _session_for(kernel, principal, params.id)
    if scb.lease_owner is not None and (scb.lease_expires or 0) > time.time():
        raise SyscallError(
            "conflict", f"session {scb.id} is running on {scb.lease_owner}: interrupt it first"
        )
    if scb.status == "archived":
        return scb
    return await kernel.store.update_session(
        msgspec.structs.replace(scb, status="archived", phase="")
    )


# -- hook.list, log.read ----------------------------------------------------------------------


class HookImplInfo(msgspec.Struct):
    owner: str
    where: str
    function: str
    failure: str
    timeout: float
    tryfirst: bool
    trylast: bool
    system: bool
    """Its owner is a system skill: it applies to every agent, not only where active."""


class HookInfo(msgspec.Struct):
    hook: str
    kind: str
    required: bool
    implementations: list[HookImplInfo]


@syscall(
    "hook.list",
    scope="hook.read",
    doc="Every hook with its kind and implementations in call order.",
)
async def hook_list(kernel: Kernel, principal: Principal, params: NoParams) -> list[HookInfo]:
    return msgspec.convert(kernel.hooks.describe(), list[HookInfo])


class LogReadParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    session_id: str | None = None
    agent_id: str | None = None
    kind: str | None = None
    since: float | None = None
    until: float | None = None
    after_id: int = 0
    limit: int = 100
    newest_first: bool = False


@syscall("log.read", scope="log.read", doc="RuntimeLog records by session, agent, kind and time.")
async def log_read(kernel: Kernel, principal: Principal, params: LogReadParams) -> list[LogEntry]:
    if principal.kind == "agent":
        if params.session_id is None:
            raise SyscallError(
                "denied",
                f"{principal.name} may read the log of its own sessions only: name session_id",
            )
        await _session_for(kernel, principal, params.session_id)
    await kernel.flush_logs()  # records are written lazily: a reader sees those before it
    return await kernel.store.read_log(**msgspec.structs.asdict(params))


# -- skill.* -------------------------------------------------------------------------------------


class SkillDetail(SkillInfo, kw_only=True):
    body: str
    license: str | None
    compatibility: str | None
    allowed_tools: list[str]
    scopes: list[str]
    metadata: dict[str, str]


def _skill(kernel: Kernel, name: str) -> Skill:
    skill = kernel.skills.get(name)
    if skill is None:
        raise SyscallError("not_found", f"no skill named {name!r} (see `aos skill list`)")
    return skill


@syscall(
    "skill.list",
    scope="skill.read",
    doc="Every skill found: root, kind, status (active/broken/shadowed) and reason.",
)
async def skill_list(kernel: Kernel, principal: Principal, params: NoParams) -> list[SkillInfo]:
    return [s.info() for s in kernel.skills.all()]


class SkillNameParams(msgspec.Struct, forbid_unknown_fields=True):
    name: str


@syscall(
    "skill.get",
    scope="skill.read",
    doc="One skill (the winner of its name) with its SKILL.md body.",
)
async def skill_get(kernel: Kernel, principal: Principal, params: SkillNameParams) -> SkillDetail:
    skill = _skill(kernel, params.name)
    m = skill.manifest
    return SkillDetail(
        **msgspec.structs.asdict(skill.info()),
        body=skill.body,
        license=m.license if m else None,
        compatibility=m.compatibility if m else None,
        allowed_tools=m.allowed_tools if m else [],
        scopes=m.scopes if m else [],
        metadata=m.metadata if m else {},
    )


class SkillSessionParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    session_id: str | None = None
    """Defaults to the calling agent's session."""


async def _skill_session(kernel: Kernel, principal: Principal, params: SkillSessionParams) -> SCB:
    session_id = params.session_id or principal.session_id
    if session_id is None:
        raise SyscallError("invalid", "invalid params: session_id is required")
    scb = await _session_for(kernel, principal, session_id)
    if scb.status == "archived":
        raise SyscallError("conflict", f"session {scb.id} is archived")
    return scb


@syscall(
    "skill.load",
    scope="skill.write",
    doc="Make a skill active in a session: its body enters the context; fires skill.load.",
)
async def skill_load(kernel: Kernel, principal: Principal, params: SkillSessionParams) -> Appended:
    scb = await _skill_session(kernel, principal, params)
    skill = _skill(kernel, params.name)
    if skill.status != "active":
        raise SyscallError("conflict", f"skill {skill.name} is {skill.status}: {skill.reason}")
    seq = await kernel.history.append(scb, SkillLoaded(skill=skill.name, body=skill.body))
    kernel.hooks.notify(
        "skill.load",
        {"skill": skill.name, "agent_id": scb.agent_id, "session_id": scb.id},
        active=await kernel.agents.active_skills(scb.agent_id, scb.id),
    )
    return Appended(session_id=scb.id, seq=seq)


@syscall(
    "skill.unload",
    scope="skill.write",
    doc="Stop a skill loaded in a session; fires skill.unload. "
    "An agent cannot unload a system skill.",
)
async def skill_unload(
    kernel: Kernel, principal: Principal, params: SkillSessionParams
) -> Appended:
    skill = kernel.skills.get(params.name)
    if principal.kind == "agent" and skill is not None and skill.system and skill.kind != "context":
        # A node-installed skill with hooks: they apply whatever the session loaded, and
        # the refusal says so to an agent trying to switch a guard off (the admin may
        # still drop its text from a context; a context-only skill unloads as any other).
        raise SyscallError(
            "denied",
            f"skill {params.name} is system policy on this node: an agent cannot unload it",
        )
    scb = await _skill_session(kernel, principal, params)
    if params.name not in await kernel.history.loaded_skills(scb.id):
        raise SyscallError("conflict", f"skill {params.name} is not loaded in session {scb.id}")
    active = await kernel.agents.active_skills(scb.agent_id, scb.id)
    seq = await kernel.history.append(scb, SkillUnloaded(skill=params.name))
    kernel.hooks.notify(
        "skill.unload",
        {"skill": params.name, "agent_id": scb.agent_id, "session_id": scb.id},
        active=active,  # the skill itself hears that it was unloaded
    )
    return Appended(session_id=scb.id, seq=seq)


@syscall(
    "skill.reload",
    scope="skill.admin",
    doc="Read a skill from disk again (as hot reload would) and restart its service.",
)
async def skill_reload(kernel: Kernel, principal: Principal, params: SkillNameParams) -> SkillInfo:
    if not any(s.name == params.name for s in kernel.skills.all()):
        raise SyscallError("not_found", f"no skill named {params.name!r} (see `aos skill list`)")
    events = kernel.skills.reload(params.name)
    skill = kernel.skills.get(params.name)
    if skill is None:
        raise SyscallError("not_found", f"skill {params.name!r} is gone from disk")
    if kernel.services is not None and not events:  # unchanged on disk: restart on demand
        await kernel.services.restart(params.name)
    return skill.info()


# -- events.subscribe, kernel.shutdown ---------------------------------------------------------


class SubscribeParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    topics: list[Literal["history.append", "stream", "skill", "service"]] = msgspec.field(
        default_factory=lambda: ["history.append", "stream", "skill", "service"]
    )
    session_id: str | None = None
    """Only this session's facts and stream."""


class Subscribed(msgspec.Struct):
    subscription: int
    topics: list[str]


@syscall(
    "events.subscribe",
    scope="events.subscribe",
    doc="Stream kernel events (facts as they are appended, skill and service changes) on this connection.",
)
async def events_subscribe(
    kernel: Kernel, principal: Principal, params: SubscribeParams
) -> Subscribed:
    stream = current_stream.get()
    if stream is None:
        raise SyscallError(
            "invalid", "events.subscribe streams over a connection: use aos_sdk.Client.subscribe"
        )
    agent_ids: frozenset[str] | None = None
    if principal.agent_id is not None:
        if params.session_id is None:
            raise SyscallError(
                "denied",
                f"{principal.name} may subscribe to its own sessions only: name session_id",
            )
        await _session_for(kernel, principal, params.session_id)
        agent_ids = frozenset(
            [
                a.id
                for a in await kernel.store.list_agents()
                if await kernel.agents.in_subtree(principal.agent_id, a.id)
            ]
        )

    holder: list[int] = []

    def deliver(topic: str, data: Any) -> None:
        if principal.kind == "agent" and not _dispatch_runs(kernel, principal):
            kernel.events.unsubscribe(holder[0])  # the token's dispatch has ended: so has this
            return
        stream.deliver(holder[0], topic, data)

    sub = kernel.events.subscribe(
        deliver,
        topics=frozenset(params.topics),
        session_id=params.session_id,
        agent_ids=agent_ids,
    )
    holder.append(sub.id)
    stream.on_close(lambda: kernel.events.unsubscribe(sub.id))
    return Subscribed(subscription=sub.id, topics=list(params.topics))


class ShutdownParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: str = "requested"


class ShuttingDown(msgspec.Struct):
    node: str
    reason: str


@syscall(
    "kernel.shutdown", scope="kernel.admin", doc="Stop the node cleanly (services, sockets, store)."
)
async def kernel_shutdown(
    kernel: Kernel, principal: Principal, params: ShutdownParams
) -> ShuttingDown:
    kernel.shutdown_reason = f"{params.reason} (by {principal.name})"
    kernel.shutdown_requested.set()
    return ShuttingDown(node=kernel.node_id, reason=kernel.shutdown_reason)


# -- session.dispatch, session.interrupt, session.context ---------------------------------------


class DispatchParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: str
    """The session."""
    message: str
    wait: bool = True
    """Return when the dispatch finishes (else at once, with its id)."""
    cwd: str | None = None
    """Where bash runs instead of the agent's workspace (admin only)."""
    model: str | None = None
    """The model for this dispatch instead of the agent's (not for agents)."""


@syscall(
    "session.dispatch",
    scope="session.dispatch",
    doc="Run the ReAct loop on a session with a user message; one dispatch per session at a time.",
)
async def session_dispatch(
    kernel: Kernel, principal: Principal, params: DispatchParams
) -> DispatchOutcome:
    if not params.message.strip():
        raise SyscallError("invalid", "session.dispatch: the message is empty")
    budget = kernel.config.aoscb.limits.context_budget
    if (tokens := len(params.message) // CHARS_PER_TOKEN) > budget:
        raise SyscallError(
            "invalid",
            f"session.dispatch: the message is about {tokens:,} tokens, over the context "
            f"budget of {budget:,} (limits.context_budget): the model could never read it "
            "whole; save it in a file in the agent's workspace and ask the agent to read it",
        )
    scb = await _session_for(kernel, principal, params.id)
    if scb.status == "archived":
        raise SyscallError("conflict", f"session {scb.id} is archived")
    if params.cwd is not None and principal.kind != "admin":
        raise SyscallError(
            "denied", f"{principal.name} may not choose where bash runs (cwd): admin only"
        )
    if params.model is not None:
        if principal.kind == "agent":
            raise SyscallError(
                "denied",
                f"{principal.name} may not choose the model of a dispatch: its own is used",
            )
        if not params.model.strip():
            raise SyscallError("invalid", "session.dispatch: model must be a model id, not empty")
    try:
        unit = await kernel.start_dispatch(
            principal, scb, params.message, cwd=params.cwd, model=params.model
        )
    except DispatchRefused as exc:
        raise SyscallError(exc.code, exc.message) from None  # type: ignore[arg-type]
    if not params.wait:
        return DispatchOutcome(
            session_id=scb.id, agent_id=scb.agent_id, dispatch_id=unit.dispatch_id, status="running"
        )
    return await asyncio.shield(unit.task)  # the caller going away does not stop it


@syscall(
    "session.interrupt",
    scope="session.dispatch",
    doc="Stop a session's running dispatch (a running command's process group is killed).",
)
async def session_interrupt(
    kernel: Kernel, principal: Principal, params: SessionIdParams
) -> DispatchOutcome:
    scb = await _session_for(kernel, principal, params.id)
    unit = kernel.dispatches.get(scb.id)
    if unit is None:
        if (
            scb.lease_owner is not None
            and scb.lease_owner != kernel.node_id
            and (scb.lease_expires or 0) > time.time()
        ):
            raise SyscallError(
                "conflict", f"session {scb.id} is running on {scb.lease_owner}: interrupt it there"
            )
        raise SyscallError("conflict", f"session {scb.id} has no running dispatch")
    unit.cancel(f"interrupted by session.interrupt ({principal.name})")
    return await asyncio.shield(unit.task)


class ContextParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: str
    rebuild: bool = False
    """Assemble from the whole history instead of the provider's incremental state."""


@syscall(
    "session.context",
    scope="session.read",
    doc="The SessionContext the next step would send to the model (OpenAI messages).",
)
async def session_context(
    kernel: Kernel, principal: Principal, params: ContextParams
) -> list[dict[str, Any]]:
    scb = await _session_for(kernel, principal, params.id)
    await kernel.history.view(scb.id, refresh=True)  # with what other writers committed
    active = await kernel.agents.active_skills(scb.agent_id, scb.id)
    try:
        return await kernel.context.assemble(
            scb, active=active, rebuild=params.rebuild, record=False
        )
    except HookError as exc:
        raise SyscallError("unavailable", str(exc)) from None


# -- skill.call -------------------------------------------------------------------------------


class SkillCallParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    skill: str
    method: str
    params: dict[str, Any] = {}


@syscall(
    "skill.call",
    scope="skill.call",
    doc="Call a method a skill's service offers; the service learns who calls.",
)
async def skill_call(kernel: Kernel, principal: Principal, params: SkillCallParams) -> Any:
    if principal.agent_id is not None:
        active = await kernel.agents.active_skills(principal.agent_id, principal.session_id)
        if params.skill not in active:
            raise SyscallError("denied", f"skill {params.skill} is not active for {principal.name}")
    if kernel.services is None:
        raise SyscallError(
            "unavailable", "skill services run in the daemon: start one with `aos start`"
        )
    caller = {
        "principal": principal.name,
        "kind": principal.kind,
        "agent_id": principal.agent_id,
        "session_id": principal.session_id,
        "scopes": sorted(principal.scopes),
    }
    return await kernel.services.call_method(params.skill, params.method, caller, params.params)
