"""The kernel: configuration, store, hooks and the syscall table, in one object.

Mechanism only. Everything a harness decides enters through a hook; every
state change crosses :meth:`Kernel.syscall`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aos.agent import ACB, EffectiveConfig
from aos.config import Config
from aos.events import EventBus
from aos.history import Fact, SkillLoaded, SkillUnloaded, fact_to_builtins
from aos.hooks import HookPolicy, HookRunner
from aos.ids import new_id
from aos.plugins import AOSPluginManager, PluginLoad, allowed_plugins, load_entrypoint_plugins
from aos.principals import DEFAULT_AGENT_SCOPES, Principal, TokenAuthority
from aos.runtimelog import LogEntry
from aos.session import SCB
from aos.skills.registry import (
    SkillEvent,
    SkillRegistry,
    available_skills_prompt,
    default_roots,
)
from aos.store import Store, open_store
from aos.syscalls import call

logger = logging.getLogger("aos")


class ServiceStatusSource(Protocol):
    def status(self) -> list[dict[str, Any]]: ...

    async def restart(self, name: str) -> None: ...


@dataclass(frozen=True)
class SkillContext:
    names: list[str]
    """The active skills found in the registry, by name."""
    prompt: str
    path: list[str]


class Kernel:
    def __init__(
        self,
        config: Config,
        store: Store,
        pm: AOSPluginManager,
        tokens: TokenAuthority,
        plugin_loads: list[PluginLoad],
        skills: SkillRegistry,
    ) -> None:
        self.config = config
        self.store = store
        self.pm = pm
        self.tokens = tokens
        self.plugin_loads = plugin_loads
        self.skills = skills
        self.node_id = f"{socket.gethostname()}:{os.getpid()}:{new_id('node')[5:]}"
        self.started_at = time.time()
        self.hooks = HookRunner(pm, default_timeout=config.aoscb.limits.hook_timeout, log=self.log)
        self._pending_logs: set[asyncio.Task[Any]] = set()
        self.events = EventBus()
        self.shutdown_requested = asyncio.Event()
        self.shutdown_reason = ""
        """Set by kernel.shutdown; the daemon watches it."""
        self.services: ServiceStatusSource | None = None
        """The daemon's service supervisor, when there is one."""
        self._plugins = {
            load.name: pm.get_plugin(load.name) for load in plugin_loads if not load.error
        }
        self._loaded: dict[str, tuple[int, frozenset[str]]] = {}
        """session id -> (seq read up to, skills loaded in it)."""
        skills.subscribe(self._on_skill_event)
        for skill in skills.all():
            self._on_skill_event(SkillEvent("added", skill))

    @classmethod
    async def open(cls, config: Config, *, load_plugins: bool = True) -> Kernel:
        """Open the store and load in-process plugins (``aos.skills`` entry points)."""
        store = await open_store(config.db_url)
        pm = AOSPluginManager()
        loads = load_entrypoint_plugins(pm, allowed_plugins()) if load_plugins else []
        tokens = TokenAuthority.from_file(config.paths.state_dir / "token.key")
        skills = SkillRegistry(default_roots(config), loads)
        skills.scan()
        kernel = cls(config, store, pm, tokens, loads, skills)
        for load in loads:
            if load.error:
                kernel.log(
                    LogEntry(
                        kind="plugin.error",
                        level="error",
                        message=f"plugin {load.name} ({load.value}) failed to load: {load.error}",
                    )
                )
        return kernel

    async def close(self) -> None:
        await self.hooks.drain()
        await self.flush_logs()
        await self.store.close()

    async def flush_logs(self) -> None:
        """Wait until every RuntimeLog record written so far is committed."""
        while self._pending_logs:
            await asyncio.gather(*list(self._pending_logs), return_exceptions=True)

    # -- skills ----------------------------------------------------------------------
    def _on_skill_event(self, event: SkillEvent) -> None:
        """Keep hook registrations and declared policies in step with the registry:
        a plugin skill's hooks fire only while it is the active skill of its name."""
        skill = event.skill
        if event.kind != "removed" and self.skills.get(skill.name) != skill:
            return  # a shadowed copy: the winner of its name decides
        if self.events.has_subscribers():
            self.events.publish(
                "skill",
                {
                    "event": event.kind,
                    "skill": skill.name,
                    "status": skill.status,
                    "reason": skill.reason,
                },
            )
        self.hooks.clear_policies(skill.name)
        if event.kind != "removed" and skill.status == "active" and skill.manifest:
            for hook, settings in skill.manifest.hooks.items():
                self.hooks.set_policy(
                    skill.name, hook, HookPolicy(timeout=settings.timeout, failure=settings.failure)
                )
        plugin = self._plugins.get(skill.name)
        if plugin is None or skill.kind != "plugin":
            return
        winner = self.skills.get(skill.name)
        wanted = winner is not None and winner.kind == "plugin" and winner.status == "active"
        if wanted and not self.pm.is_registered(plugin):
            self.pm.register(plugin, name=skill.name)
        elif not wanted and self.pm.is_registered(plugin):
            self.pm.unregister(plugin)

    async def session_skills(self, session_id: str) -> frozenset[str]:
        """Skills loaded in a session (skill.loaded facts not undone by skill.unloaded)."""
        seq, loaded = self._loaded.get(session_id, (0, frozenset()))
        entries = await self.store.read_history(session_id, after=seq)
        if entries:
            names = set(loaded)
            for entry in entries:
                if isinstance(entry.fact, SkillLoaded):
                    names.add(entry.fact.skill)
                elif isinstance(entry.fact, SkillUnloaded):
                    names.discard(entry.fact.skill)
            seq, loaded = entries[-1].seq, frozenset(names)
            self._loaded[session_id] = (seq, loaded)
        return loaded

    async def skill_context(self, agent_id: str, session_id: str | None = None) -> SkillContext:
        """The context face of an agent's active skills: the ``<available_skills>``
        block listed to the model and the ``scripts/`` folders put on bash's PATH."""
        names = sorted(await self.active_skills(agent_id, session_id))
        skills = self.skills.active(names)
        return SkillContext(
            names=[s.name for s in skills],
            prompt=available_skills_prompt(skills),
            path=[str(s.scripts_dir) for s in skills if s.scripts_dir is not None],
        )

    # -- RuntimeLog ------------------------------------------------------------------
    def log(self, entry: LogEntry) -> None:
        """Record in RuntimeLog without waiting for the commit (warnings and errors
        also go to the daemon log)."""
        if entry.level in ("warning", "error"):
            logger.log(
                logging.WARNING if entry.level == "warning" else logging.ERROR, entry.message
            )
        task = asyncio.get_running_loop().create_task(self.store.log(entry))
        self._pending_logs.add(task)
        task.add_done_callback(self._pending_logs.discard)

    # -- agents: lineage and inheritance -------------------------------------------
    async def lineage(self, agent_id: str) -> list[ACB]:
        """The agent and its ancestors, root first."""
        chain = [await self.store.get_agent(agent_id)]
        while chain[-1].parent is not None:
            chain.append(await self.store.get_agent(chain[-1].parent))
        chain.reverse()
        return chain

    def effective_of(self, chain: list[ACB]) -> EffectiveConfig:
        """Inherit along a root-first lineage.

        The nearest override wins for model, workspace and max_steps. Skills add
        up: a child adds skills but cannot drop its ancestors' (policy skills
        stay active below them). Scopes narrow: a root agent has the scopes it
        names (else the default agent scopes), each descendant the intersection
        with what it names.
        """
        limits = self.config.aoscb.limits
        model, workspace, max_steps = self.config.aoscb.model, None, limits.max_steps
        skills: dict[str, None] = {}  # ordered set
        scopes: set[str] | None = None
        for acb in chain:
            c = acb.config
            model = c.model if c.model is not None else model
            skills.update(dict.fromkeys(c.skills or ()))
            workspace = c.workspace if c.workspace is not None else workspace
            max_steps = c.max_steps if c.max_steps is not None else max_steps
            if scopes is None:
                scopes = set(DEFAULT_AGENT_SCOPES if acb.scopes is None else acb.scopes)
            elif acb.scopes is not None:
                scopes &= set(acb.scopes)
        return EffectiveConfig(
            model=model,
            skills=list(skills),
            scopes=sorted(scopes if scopes is not None else DEFAULT_AGENT_SCOPES),
            workspace=workspace,
            max_steps=max_steps,
        )

    async def effective(self, agent_id: str) -> EffectiveConfig:
        return self.effective_of(await self.lineage(agent_id))

    async def active_skills(self, agent_id: str, session_id: str | None = None) -> frozenset[str]:
        """System default skills, the agent's (inherited) skills, and those loaded
        in the session."""
        effective = await self.effective(agent_id)
        active = frozenset(self.config.aoscb.default_skills) | frozenset(effective.skills)
        return active | await self.session_skills(session_id) if session_id else active

    async def in_subtree(self, root_id: str, agent_id: str) -> bool:
        """Whether ``agent_id`` is ``root_id`` or one of its descendants."""
        return any(acb.id == root_id for acb in await self.lineage(agent_id))

    # -- history ---------------------------------------------------------------------
    async def append(self, scb: SCB, fact: Fact, *, active: frozenset[str] | None = None) -> int:
        """Append a fact and announce it on ``history.append``."""
        seq = await self.store.append(scb.id, fact)
        hooked = bool(self.hooks.impls("history.append"))
        if not hooked and not self.events.has_subscribers():
            return seq
        event = {
            "session_id": scb.id,
            "agent_id": scb.agent_id,
            "seq": seq,
            "ts": time.time(),
            "fact": fact_to_builtins(fact),
        }
        self.events.publish("history.append", event)
        if hooked:
            self.hooks.notify(
                "history.append",
                event,
                active=active
                if active is not None
                else await self.active_skills(scb.agent_id, scb.id),
            )
        return seq

    # -- the boundary ----------------------------------------------------------------
    async def syscall(
        self, principal: Principal, name: str, params: Mapping[str, Any] | None = None
    ) -> Any:
        """Run one syscall as ``principal``; return its result as plain data.

        Raises :class:`aos.syscalls.SyscallError` with a code and a message.
        """
        return await call(self, principal, name, params)
