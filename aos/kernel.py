"""The kernel: configuration, store, hooks and the syscall table, in one object.

Mechanism only. Everything a harness decides enters through a hook; every
state change crosses :meth:`Kernel.syscall`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from aos.agent import ACB, EffectiveConfig
from aos.config import Config
from aos.history import Fact, fact_to_builtins
from aos.hooks import HookRunner
from aos.ids import new_id
from aos.plugins import AOSPluginManager, PluginLoad, allowed_plugins, load_entrypoint_plugins
from aos.principals import DEFAULT_AGENT_SCOPES, Principal, TokenAuthority
from aos.runtimelog import LogEntry
from aos.session import SCB
from aos.store import Store, open_store
from aos.syscalls import call


class Kernel:
    def __init__(
        self,
        config: Config,
        store: Store,
        pm: AOSPluginManager,
        tokens: TokenAuthority,
        plugin_loads: list[PluginLoad],
    ) -> None:
        self.config = config
        self.store = store
        self.pm = pm
        self.tokens = tokens
        self.plugin_loads = plugin_loads
        self.node_id = f"{socket.gethostname()}:{os.getpid()}:{new_id('node')[5:]}"
        self.started_at = time.time()
        self.hooks = HookRunner(pm, default_timeout=config.aoscb.limits.hook_timeout, log=self.log)
        self._pending_logs: set[asyncio.Task[Any]] = set()

    @classmethod
    async def open(cls, config: Config, *, load_plugins: bool = True) -> Kernel:
        """Open the store and load in-process plugins (``aos.skills`` entry points)."""
        store = await open_store(config.db_url)
        pm = AOSPluginManager()
        loads = load_entrypoint_plugins(pm, allowed_plugins()) if load_plugins else []
        tokens = TokenAuthority.from_file(config.paths.state_dir / "token.key")
        kernel = cls(config, store, pm, tokens, loads)
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

    # -- RuntimeLog ------------------------------------------------------------------
    def log(self, entry: LogEntry) -> None:
        """Record in RuntimeLog without waiting for the commit."""
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

    async def active_skills(self, agent_id: str) -> frozenset[str]:
        """System default skills plus the agent's (inherited) skills."""
        effective = await self.effective(agent_id)
        return frozenset(self.config.aoscb.default_skills) | frozenset(effective.skills)

    async def in_subtree(self, root_id: str, agent_id: str) -> bool:
        """Whether ``agent_id`` is ``root_id`` or one of its descendants."""
        return any(acb.id == root_id for acb in await self.lineage(agent_id))

    # -- history ---------------------------------------------------------------------
    async def append(self, scb: SCB, fact: Fact, *, active: frozenset[str] | None = None) -> int:
        """Append a fact and announce it on ``history.append``."""
        seq = await self.store.append(scb.id, fact)
        if self.hooks.impls("history.append"):
            self.hooks.notify(
                "history.append",
                {
                    "session_id": scb.id,
                    "agent_id": scb.agent_id,
                    "seq": seq,
                    "ts": time.time(),
                    "fact": fact_to_builtins(fact),
                },
                active=active if active is not None else await self.active_skills(scb.agent_id),
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
