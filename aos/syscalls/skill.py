"""``skill.*``: the registry, loading skills into a session, reloads, and methods
of service skills (``skill.call``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from aos.facts import (
    SkillLoaded,
    SkillUnloaded,
)
from aos.principals import Principal
from aos.session import SCB
from aos.skills.registry import Skill, SkillInfo
from aos.syscalls._table import (
    NoParams,
    SyscallError,
    session_for,
    syscall,
)
from aos.syscalls.session import Appended

if TYPE_CHECKING:
    from aos.kernel import Kernel


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
    scb = await session_for(kernel, principal, session_id)
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
