"""``session.*``: open, read, append to, dispatch, interrupt and archive sessions."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from aos.aoscb import CHARS_PER_TOKEN
from aos.facts import (
    APPENDABLE,
    APPENDED_BY,
    FACT_KINDS,
    DispatchStatus,
    Fact,
    HistoryEntry,
    UserMessage,
    fact_kind,
)
from aos.hooks import HookError
from aos.ids import new_id
from aos.principals import Principal
from aos.reactunit import DispatchOutcome, DispatchRefused
from aos.session import SCB, TITLE_MAX, SessionStatus
from aos.syscalls._table import (
    SyscallError,
    check_agent,
    session_for,
    syscall,
)
from aos.usage import UsageGroup, UsageTotals, fold

if TYPE_CHECKING:
    from aos.kernel import Kernel


class SessionCreateParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    agent_id: str | None = None
    """Defaults to the calling agent."""
    title: Annotated[str, msgspec.Meta(max_length=TITLE_MAX)] = ""


@syscall(
    "session.create", scope="session.write", doc="Open a session of an agent; fires session.create."
)
async def session_create(kernel: Kernel, principal: Principal, params: SessionCreateParams) -> SCB:
    agent_id = params.agent_id or principal.agent_id
    if agent_id is None:
        raise SyscallError("invalid", "session.create: invalid params: agent_id is required")
    await check_agent(kernel, principal, agent_id)
    agent = await kernel.agents.get(agent_id)
    if agent.status != "active":
        raise SyscallError("conflict", f"agent {agent_id} is archived")
    scb = await kernel.sessions.create(SCB(id=new_id("ses"), agent_id=agent_id, title=params.title))
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
    scb = await session_for(kernel, principal, params.id)
    unit = kernel.dispatches.get(scb.id)
    return msgspec.structs.replace(scb, phase=unit.phase) if unit is not None else scb


class SessionListParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    agent_id: str | None = None
    status: SessionStatus | None = None
    outcome: DispatchStatus | None = None
    """Sessions whose last dispatch ended with this status (the SCB's ``outcome``)."""
    search: str | None = None
    """Sessions whose title, or a user or assistant message, contains it (any case)."""
    limit: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """The most recently active this many (still ordered by creation)."""


@syscall(
    "session.list",
    scope="session.read",
    doc="Sessions (of one agent, or by status); agents see their subtree's.",
)
async def session_list(
    kernel: Kernel, principal: Principal, params: SessionListParams
) -> list[SCB]:
    if params.agent_id is not None:
        await check_agent(kernel, principal, params.agent_id)
    agent = principal.agent_id if principal.kind == "agent" else None
    found = await kernel.sessions.find(
        agent_id=params.agent_id,
        status=params.status,
        outcome=params.outcome,
        search=params.search or None,
        limit=None if agent else params.limit,  # an agent's: limited once filtered
    )
    if agent is None:
        return found
    found = [s for s in found if await kernel.agents.in_subtree(agent, s.agent_id)]
    if params.limit is not None:
        newest = sorted(found, key=lambda s: (-s.updated_at, s.id))[: params.limit]
        found = [s for s in found if s in newest]
    return found


class SessionUpdateParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: str
    title: Annotated[str, msgspec.Meta(max_length=TITLE_MAX)]


@syscall("session.update", scope="session.write", doc="Rename a session (its title).")
async def session_update(kernel: Kernel, principal: Principal, params: SessionUpdateParams) -> SCB:
    scb = await session_for(kernel, principal, params.id)
    if scb.status == "archived":
        raise SyscallError("conflict", f"session {scb.id} is archived")
    title = " ".join(params.title.split())  # one line, as titles made from messages are
    if title == scb.title:
        return scb
    return await kernel.sessions.update(msgspec.structs.replace(scb, title=title))


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
    scb = await session_for(kernel, principal, params.id)
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
    newest: bool = False
    """The newest ``limit`` facts instead of the oldest (still oldest first)."""
    kinds: list[str] | None = None
    """Only facts of these kinds."""


@syscall(
    "session.history",
    scope="session.read",
    doc="Facts of a session with after < seq <= until, oldest first.",
)
async def session_history(
    kernel: Kernel, principal: Principal, params: SessionHistoryParams
) -> list[HistoryEntry]:
    unknown = sorted(set(params.kinds or ()) - set(FACT_KINDS))
    if unknown:
        raise SyscallError(
            "invalid", f"session.history: unknown fact kind(s) {', '.join(unknown)} in kinds"
        )
    await session_for(kernel, principal, params.id)
    return await kernel.history.read(
        params.id,
        after=params.after,
        until=params.until,
        limit=params.limit,
        kinds=params.kinds,
        newest=params.newest,
    )


@syscall(
    "session.archive",
    scope="session.write",
    doc="Archive a session (refused while a dispatch holds its lease).",
)
async def session_archive(kernel: Kernel, principal: Principal, params: SessionIdParams) -> SCB:
    scb = await session_for(kernel, principal, params.id)
    if scb.lease_owner is not None and (scb.lease_expires or 0) > time.time():
        raise SyscallError(
            "conflict", f"session {scb.id} is running on {scb.lease_owner}: interrupt it first"
        )
    if scb.status == "archived":
        return scb
    return await kernel.sessions.update(msgspec.structs.replace(scb, status="archived", phase=""))


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
    scb = await session_for(kernel, principal, params.id)
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
        if kernel.cluster.shared:  # whichever node may run it claims it
            return await kernel.cluster.dispatch(
                principal,
                scb,
                params.message,
                cwd=params.cwd,
                model=params.model,
                wait=params.wait,
            )
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
    scb = await session_for(kernel, principal, params.id)
    unit = kernel.dispatches.get(scb.id)
    reason = f"interrupted by session.interrupt ({principal.name})"
    if unit is None:
        if (
            scb.lease_owner is not None
            and scb.lease_owner != kernel.node_id
            and (scb.lease_expires or 0) > time.time()
        ):
            if kernel.cluster.shared:  # the node running it stops it
                outcome = await kernel.cluster.interrupt(scb.id, reason)
                if outcome is not None:
                    return outcome
            raise SyscallError(
                "conflict", f"session {scb.id} is running on {scb.lease_owner}: interrupt it there"
            )
        raise SyscallError("conflict", f"session {scb.id} has no running dispatch")
    unit.cancel(reason)
    return await asyncio.shield(unit.task)


class UsageParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    ids: list[str] | None = None
    """These sessions (or, ``by: agent``, these agents); None: every one the caller sees."""
    by: UsageGroup = "session"
    """``session``: each session's own; ``agent``: each agent's sessions together."""
    since: float | None = None
    """Only model calls recorded at or after this Unix time (a budget's window)."""


@syscall(
    "session.usage",
    scope="session.read",
    doc="Tokens and cost of sessions (or of each agent's sessions), in total and by model.",
)
async def session_usage(
    kernel: Kernel, principal: Principal, params: UsageParams
) -> list[UsageTotals]:
    if params.by == "session":
        if params.ids is None:
            ids = [s.id for s in await session_list(kernel, principal, SessionListParams())]
        else:
            ids = [(await session_for(kernel, principal, i)).id for i in params.ids]
    elif params.ids is None:
        agents = await kernel.agents.all()
        if principal.kind == "agent" and principal.agent_id is not None:
            agents = await kernel.agents.within(principal.agent_id, agents)
        ids = [a.id for a in agents]
    else:
        for agent_id in params.ids:
            await check_agent(kernel, principal, agent_id)
        ids = list(params.ids)
    return fold(await kernel.store.usage_rows(params.by, ids, since=params.since), ids)


class ContextParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: str
    rebuild: bool = False
    """Assemble from the whole history instead of the provider's incremental state."""
    explain: bool = False
    """Answer :class:`ContextExplained`: the messages, the budget, the skills."""


class ContextExplained(msgspec.Struct, kw_only=True):
    """What ``session.context`` answers with ``explain``."""

    messages: list[dict[str, Any]]
    budget: int
    """The node's context budget in tokens (``limits.context_budget``)."""
    skills: list[str]
    """The skills active in the session (the node's default skills, the lineage's,
    those loaded in it): their hooks apply, their context faces are in the prompt."""


@syscall(
    "session.context",
    scope="session.read",
    doc="The SessionContext the next step would send to the model (OpenAI messages).",
)
async def session_context(
    kernel: Kernel, principal: Principal, params: ContextParams
) -> list[dict[str, Any]] | ContextExplained:
    scb = await session_for(kernel, principal, params.id)
    await kernel.history.view(scb.id, refresh=True)  # with what other writers committed
    active = await kernel.agents.active_skills(scb.agent_id, scb.id)
    try:
        messages = await kernel.context.assemble(
            scb, active=active, rebuild=params.rebuild, record=False
        )
    except HookError as exc:
        raise SyscallError("unavailable", str(exc)) from None
    if not params.explain:
        return messages
    return ContextExplained(
        messages=messages,
        budget=kernel.config.aoscb.limits.context_budget,
        skills=sorted(active),
    )
