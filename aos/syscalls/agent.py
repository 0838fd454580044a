"""``agent.*``: create, get, list, update and archive agents, within the caller's subtree
and scopes."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import msgspec

from aos.agent import (
    ACB,
    AgentConfig,
    AgentStatus,
    EffectiveConfig,
    LineageCycle,
    name_problem,
)
from aos.hooks import HookRejected
from aos.ids import new_id
from aos.principals import ADMIN_ONLY, SCOPES, Principal
from aos.syscalls._table import (
    GRANTABLE,
    SyscallError,
    check_agent,
    syscall,
)

if TYPE_CHECKING:
    from aos.kernel import Kernel


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


ADMIN_SET_CONFIG = ("workspace", "model", "sandbox", "placement")
"""AgentConfig fields only the admin sets: where an agent's bash runs, which model it
uses, whether its commands are sandboxed, which nodes run its dispatches."""


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
        await check_agent(kernel, principal, params.parent)
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
    acb = await kernel.agents.create(
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
    await check_agent(kernel, principal, params.id)
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
        await check_agent(kernel, principal, params.parent)
        found = await kernel.agents.children(params.parent, params.status)
    else:
        found = await kernel.agents.all(params.status)
    if principal.kind == "agent" and principal.agent_id is not None:
        found = await kernel.agents.within(principal.agent_id, found)
    return found


class AgentUpdateParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: str
    name: str | None = None
    config: AgentConfig | None = None
    """Replaces the agent's overrides as a whole."""
    scopes: list[str] | None = None
    parent: str | None = None
    """Moves the agent under this parent; ``""`` makes it a root agent."""


@syscall(
    "agent.update",
    scope="agent.write",
    doc="Rename an agent, replace its config overrides or its scopes (never wider than its "
    "parent's), or move it under another parent.",
)
async def agent_update(
    kernel: Kernel, principal: Principal, params: AgentUpdateParams
) -> AgentInfo:
    await check_agent(kernel, principal, params.id)
    chain = await kernel.agents.lineage(params.id)
    acb = chain[-1]
    parent = acb.parent if params.parent is None else params.parent or None
    above = chain[:-1]  # the lineage above the agent after the update
    if parent != acb.parent:
        above = await _new_parent(kernel, principal, acb, parent)
    scopes = params.scopes if params.scopes is not None else acb.scopes
    if params.scopes is not None or parent != acb.parent:
        ceiling = kernel.agents.effective_of(above).scopes if above else GRANTABLE
        whose = f"parent agent {parent}" if parent else "the grantable set"
        if principal.kind == "agent":  # an agent never grants more than it holds
            ceiling = sorted(set(ceiling) & principal.scopes)
            whose = f"{principal.name} or {whose}"
        _check_scopes(scopes, ceiling, whose)
    _check_agent_input(kernel, params.name, params.config)
    if params.config is not None:
        steps = kernel.agents.effective_of(chain).max_steps
        _check_config(principal, acb.config, params.config, steps, f"agent {acb.id}")
    updated = msgspec.structs.replace(
        acb,
        name=params.name if params.name is not None else acb.name,
        parent=parent,
        config=params.config if params.config is not None else acb.config,
        scopes=scopes,
    )
    updated = await kernel.agents.update(updated)
    if parent != acb.parent:
        above = await _moved(kernel, updated, acb.parent)
    return AgentInfo(agent=updated, effective=kernel.agents.effective_of([*above, updated]))


async def _new_parent(
    kernel: Kernel, principal: Principal, acb: ACB, parent: str | None
) -> list[ACB]:
    """The lineage ``acb`` would have under ``parent`` (None: a root agent), if the
    caller may move it there."""
    if principal.kind == "agent":
        raise SyscallError(
            "denied",
            f"{principal.name} may not move agent {acb.id} to another parent: re-parenting "
            "is an admin decision (the admin, or a service with agent.write)",
        )
    if parent is None:
        return []
    above = await kernel.agents.lineage(parent)  # not_found
    if any(a.id == acb.id for a in above):
        what = "itself" if parent == acb.id else f"its descendant {parent}"
        raise SyscallError(
            "conflict", f"agent {acb.id} cannot move under {what}: that would make a cycle"
        )
    if above[-1].status != "active":
        raise SyscallError("conflict", f"parent agent {parent} is archived")
    return above


async def _moved(kernel: Kernel, moved: ACB, old_parent: str | None) -> list[ACB]:
    """The lineage above ``moved`` after its move, read again: a concurrent move
    (another node) may have closed a cycle, which this one then undoes."""
    try:
        return (await kernel.agents.lineage(moved.id))[:-1]
    except LineageCycle:
        current = await kernel.agents.get(moved.id)
        if current.revision == moved.revision:
            await kernel.agents.update(msgspec.structs.replace(current, parent=old_parent))
        raise SyscallError(
            "conflict",
            f"agent {moved.id} cannot move under {moved.parent}: a concurrent move closed "
            "a cycle (this move is undone; read the tree again)",
        ) from None


@syscall(
    "agent.archive",
    scope="agent.write",
    doc="Archive an agent (refused while it has active children).",
)
async def agent_archive(kernel: Kernel, principal: Principal, params: AgentIdParams) -> ACB:
    await check_agent(kernel, principal, params.id)
    acb = await kernel.agents.get(params.id)
    children = await kernel.agents.children(acb.id, "active")
    if children:
        names = ", ".join(c.name for c in children)
        raise SyscallError(
            "conflict", f"agent {acb.id} has active children ({names}): archive them first"
        )
    if acb.status == "archived":
        return acb
    archived = await kernel.agents.update(msgspec.structs.replace(acb, status="archived"))
    # Its running dispatches end now, and their tokens with them: a dispatch that
    # read the agent as active before this write holds its lease and is found here;
    # one that starts later sees it archived and is refused.
    units = [u for u in kernel.dispatches.values() if u.scb.agent_id == acb.id]
    for unit in units:
        unit.cancel(f"interrupted: agent {acb.id} was archived by {principal.name}")
    if units:
        await asyncio.shield(asyncio.gather(*(u.task for u in units), return_exceptions=True))
    return archived
