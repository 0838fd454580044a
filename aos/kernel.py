"""The kernel: the composition root, the dispatch table and recovery.

Mechanism only. Everything a harness decides enters through a hook; every
state change crosses :meth:`Kernel.syscall`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import msgspec

from aos.agent import Agents
from aos.bash import kill_group
from aos.cluster import Cluster
from aos.config import Config
from aos.context import SessionContext
from aos.events import EventBus
from aos.facts import DispatchFinished, DispatchStarted, ToolResult, open_calls
from aos.history import SessionHistory
from aos.hooks import HookPolicy, HookRunner
from aos.ids import new_id
from aos.llm import LLMClient, LLMSettings
from aos.plugins import AOSPluginManager, PluginLoad, allowed_plugins, load_entrypoint_plugins
from aos.principals import InvalidToken, Principal, TokenAuthority
from aos.reactunit import LEASE_TTL, DispatchRefused, ReActUnit
from aos.remotes import GRANT_ENDED, GRANTS_FILE, RemoteGrants
from aos.runtimelog import LogEntry
from aos.sandbox import Layout, Sandboxes, probe
from aos.session import SCB, Sessions, outcome_of
from aos.skills.registry import SkillEvent, SkillRegistry, agents_skills_dirs, default_roots
from aos.store import Store, open_store
from aos.syscalls import call
from aos.telemetry import Telemetry

logger = logging.getLogger("aos")


def _group_of_session(pgid: int, session_id: str) -> bool:
    """Whether process group ``pgid`` still runs a command of ``session_id`` (its
    leader's environment says so): never kill a recycled process group."""
    try:
        environ = Path(f"/proc/{pgid}/environ").read_bytes()
    except OSError:
        return False
    return f"AOS_SESSION_ID={session_id}".encode() in environ.split(b"\0")


def node_id(state_dir: Path) -> str:
    """This node's stable id (host + a random id kept in the state dir), so a
    restarted daemon recognises the leases its previous life held."""
    path = state_dir / "node.id"
    try:
        ident = path.read_text().strip()
    except FileNotFoundError:
        state_dir.mkdir(parents=True, exist_ok=True)
        ident = new_id("node")
        path.write_text(ident + "\n")
    return f"{socket.gethostname()}:{ident}"


class ServiceStatusSource(Protocol):
    def status(self) -> list[dict[str, Any]]: ...

    async def restart(self, name: str) -> None: ...

    async def call_method(
        self, skill: str, method: str, caller: dict[str, Any], params: dict[str, Any]
    ) -> Any: ...

    async def settle(self, skills: Iterable[str]) -> None: ...


class Kernel:
    """One node's kernel: it builds the concepts and holds them together.

    It owns the configuration, the store, the hook runner, the token authority,
    the skill registry, the event bus and the sandboxes, and composes from them
    SessionHistory (:attr:`history`), Agent inheritance (:attr:`agents`) and
    SessionContext (:attr:`context`). Itself it keeps the running dispatches
    (:meth:`start_dispatch`, :meth:`stop_dispatches`), the recovery of those a
    crash cut (:meth:`recover`), RuntimeLog writes (:meth:`log`), the skill
    events that (un)register hooks, and the boundary: :meth:`syscall`.
    """

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
        self.node_id = node_id(config.paths.state_dir)
        self.started_at = time.time()
        self.telemetry = Telemetry.from_env(
            config.getenv, self.node_id, active=lambda: len(self.dispatches)
        )
        """OpenTelemetry traces (off unless an OTLP endpoint is configured)."""
        self.hooks = HookRunner(
            pm,
            default_timeout=config.aoscb.limits.hook_timeout,
            log=self.log,
            telemetry=self.telemetry,
        )
        self._pending_logs: set[asyncio.Task[Any]] = set()
        self._unlogged = 0
        """RuntimeLog records the store failed to write (said in the daemon log)."""
        self.events = EventBus()
        self.shutdown_requested = asyncio.Event()
        self.shutdown_reason = ""
        """Set by kernel.shutdown; the daemon watches it."""
        self.services: ServiceStatusSource | None = None
        """The daemon's service supervisor, when there is one."""
        self.agent_socket: Path | None = None
        """The socket agents' bash reaches the kernel through (set by the daemon)."""
        self.ws_url: str | None = None
        """The WebSocket face's URL, while the daemon listens on one."""
        self.remotes = RemoteGrants(config.paths.state_dir / GRANTS_FILE)
        """Remote services' grants: their names guard every agent, like system skills."""
        self.remotes.subscribe(lambda change, grant: self._refresh_system())
        self.llm_settings = LLMSettings.from_env(config.getenv)
        self._llm: LLMClient | None = None
        self.sandboxes = Sandboxes(
            probe(config.aoscb.sandbox, config.getenv("PATH")),
            self._sandbox_layout,
            config.paths.runtime_dir / "pasta",
        )
        """Start the agents' bash commands, each in its sandbox (aos/sandbox.py)."""
        self.dispatches: dict[str, ReActUnit] = {}
        """Running dispatches on this node, by session id."""
        self._starting: set[str] = set()
        self.history = SessionHistory(
            store,
            self.events,
            self.hooks,
            lambda agent, session: self.agents.active_skills(agent, session),
        )
        """SessionHistory: views, appends (write-ahead) and their announcement."""
        self.agents = Agents(store, lambda: self.config.aoscb, self.history.loaded_skills)
        """Agents and their inheritance: lineage, effective configuration, active skills."""
        self.sessions = Sessions(store)
        self.cluster = Cluster(self)
        """This node among the daemons on its database (started by the daemon)."""
        self.context = SessionContext(
            config, skills, self.history, self.agents, self.hooks, lambda: self.llm, self.log
        )
        """SessionContext: assembly through session.assemble, the skills' context faces."""
        self._plugins = {
            load.name: pm.get_plugin(load.name) for load in plugin_loads if not load.error
        }
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
        await self.stop_dispatches("interrupted: the daemon is shutting down")
        if self._llm is not None:
            await self._llm.close()
        await self.sandboxes.aclose()
        await self.hooks.drain()
        await self.flush_logs()
        await self.telemetry.close()
        await self.store.close()

    async def flush_logs(self) -> None:
        """Commit every RuntimeLog record written so far now, and wait for it."""
        written = list(self._pending_logs)
        if written:
            await asyncio.sleep(0)  # records just written reach the store
            await self.store.flush()
            await asyncio.gather(*written, return_exceptions=True)

    # -- skills ----------------------------------------------------------------------
    def _on_skill_event(self, event: SkillEvent) -> None:
        """Keep hook registrations, declared policies and the system skills in step
        with the registry: a plugin skill's hooks fire only while it is the active
        skill of its name, and a node-installed skill's for every agent."""
        self.context.forget_faces()
        skill = event.skill
        self._refresh_system()
        self._sync_plugin(skill.name)
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

    def authenticate(self, token: str) -> Principal:
        """The principal of a token presented in a hello: InvalidToken when it is
        malformed, forged or expired, or a remote service's revoked or replaced one."""
        principal = self.tokens.verify(token)
        if principal.token_id is not None and not self.remotes.valid(principal):
            raise InvalidToken(GRANT_ENDED)
        return principal

    def _refresh_system(self) -> None:
        """The owners whose hooks apply to every agent: the node's system skills and
        its remote services."""
        self.hooks.system = self.remotes.names() | frozenset(
            s.name for s in self.skills.all() if s.system and s.status != "shadowed"
        )

    def _sync_plugin(self, name: str) -> None:
        """An entry-point plugin's hooks are registered only while its skill is the
        active winner of its name (a drop-in skill of that name shadows it)."""
        plugin = self._plugins.get(name)
        if plugin is None:
            return
        winner = self.skills.get(name)
        wanted = winner is not None and winner.entry_point is not None and winner.status == "active"
        if wanted and not self.pm.is_registered(plugin) and not self.pm.has_plugin(name):
            self.pm.register(plugin, name=name)
        elif not wanted and self.pm.is_registered(plugin):
            self.pm.unregister(plugin)

    @property
    def system_skills(self) -> frozenset[str]:
        """The skills installed on the node (a skill root, pip), not standard ones:
        their hooks apply to every agent's operations whatever its active skills
        (docs/specs/aos-hooks.md#scoping-to-active-skills). The context face does not
        list them unless they are active too."""
        return self.hooks.system

    def _sandbox_layout(self) -> Layout:
        """What the agents' sandboxes hold: skill roots readable, the node's own
        directories (and an SQLite database's) and its ``.env`` hidden, its
        aoscb.json read-only, agent.sock their door."""
        paths = self.config.paths
        hidden = [paths.config_dir, paths.data_dir, paths.state_dir, paths.runtime_dir]
        if self.store.backend == "sqlite":
            hidden.append(Path(self.store.url.removeprefix("sqlite://")).parent)
        roots = [root.path for root in self.skills.roots if root.path is not None]
        roots += agents_skills_dirs(self.config)  # roots at the next start if they appear
        roots += [Path(s.path) for s in self.skills.all() if s.root in ("plugin", "standard")]
        env_file = [self.config.env_file] if self.config.env_file else []
        return Layout.of(
            readable=roots,
            hidden=hidden,
            agent_socket=self.agent_socket,
            hidden_files=env_file,
            frozen_files=[self.config.aoscb_file] if self.config.aoscb_file else [],
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
        task.add_done_callback(self._logged)

    def _logged(self, task: asyncio.Task[int]) -> None:
        """A RuntimeLog record that could not be written (the database is down) is
        said in the daemon log instead, never raised into the void."""
        self._pending_logs.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        self._unlogged += 1
        if self._unlogged == 1 or self._unlogged % 100 == 0:
            logger.warning(
                "RuntimeLog records not written: %d so far (%s)", self._unlogged, task.exception()
            )

    # -- the ReAct loop's needs ---------------------------------------------------------
    @property
    def llm(self) -> LLMClient:
        if self._llm is None:
            self._llm = LLMClient(self.llm_settings)
        return self._llm

    # -- dispatch, interrupt, recovery -------------------------------------------------
    async def start_dispatch(
        self,
        principal: Principal,
        scb: SCB,
        message: str,
        *,
        cwd: str | None = None,
        model: str | None = None,
        dispatch_id: str | None = None,
    ) -> ReActUnit:
        """Start a ReActUnit on a session here (raises DispatchRefused if it
        cannot); its ``task`` ends with the DispatchOutcome. ``dispatch_id``: the
        one a queued request chose."""
        if scb.id in self.dispatches or scb.id in self._starting:
            raise DispatchRefused(
                "conflict",
                f"session {scb.id} is running a dispatch: wait for it, or stop it with "
                f"`aos session interrupt {scb.id}`",
            )
        unit = ReActUnit(self, scb, principal, message, cwd=cwd, model=model)
        if dispatch_id is not None:
            unit.dispatch_id = dispatch_id
        self._starting.add(scb.id)  # a second dispatch arriving meanwhile is refused
        try:
            await unit.prepare()
        finally:
            self._starting.discard(scb.id)
        unit.task = asyncio.get_running_loop().create_task(unit.run())
        self.dispatches[scb.id] = unit
        unit.task.add_done_callback(lambda _: self.dispatches.pop(scb.id, None))
        return unit

    async def stop_dispatches(self, reason: str) -> None:
        """Interrupt every running dispatch (recording ``reason``) and wait for them."""
        units = list(self.dispatches.values())
        for unit in units:
            unit.cancel(reason)
        if units:
            await asyncio.gather(*(u.task for u in units), return_exceptions=True)

    async def recover(self) -> list[str]:
        """Finish dispatches cut by a crash: sessions marked running whose lease
        expired or was held by this node's previous life. A tool call without a
        result is recorded as lost (its process group killed), never re-run."""
        recovered = []
        for scb in await self.store.list_sessions(status="running"):
            if scb.id in self.dispatches:
                continue
            mine = scb.lease_owner == self.node_id
            expired = scb.lease_owner is None or (scb.lease_expires or 0) < time.time()
            if not (mine or expired):
                continue
            if not await self.store.acquire_lease(scb.id, self.node_id, LEASE_TTL):
                continue  # another node got there first
            stopped = (
                "the daemon stopped"
                if mine or scb.lease_owner is None
                else f"node {scb.lease_owner} stopped renewing its lease"
            )
            try:
                await self.recover_session(scb, stopped)
                recovered.append(scb.id)
            finally:
                await self.store.release_lease(scb.id, self.node_id)
        return recovered

    async def recover_session(self, scb: SCB, stopped: str) -> None:
        """Close the session's cut dispatch; ``stopped`` says what cut it."""
        history = await self.store.read_history(scb.id)
        started = next((e for e in reversed(history) if isinstance(e.fact, DispatchStarted)), None)
        open_dispatch = started is not None and not any(
            isinstance(e.fact, DispatchFinished) and e.fact.dispatch_id == started.fact.dispatch_id  # type: ignore[union-attr]
            for e in history
            if e.seq > started.seq
        )
        if started is not None and open_dispatch:
            tail = [e.fact for e in history if e.seq > started.seq]
            for call in open_calls(tail):
                ran = call.started
                if ran is not None and ran.pgid is not None and _group_of_session(ran.pgid, scb.id):
                    kill_group(ran.pgid)
                output = (
                    f"lost: {stopped} while this command ran; it was not re-run"
                    if ran is not None
                    else f"not run: {stopped} before this command started"
                )
                await self.history.append(
                    scb,
                    ToolResult(
                        call_id=call.request.id, index=call.index, output=output, status="lost"
                    ),
                )
            finished = DispatchFinished(
                dispatch_id=started.fact.dispatch_id,  # type: ignore[union-attr]
                status="lost",
                error=f"{stopped} during this dispatch; completed steps are kept",
            )
            await self.history.append(scb, finished)
            self.hooks.notify(
                "dispatch.after",
                {
                    "session_id": scb.id,
                    "agent_id": scb.agent_id,
                    "dispatch_id": finished.dispatch_id,
                    "status": "lost",
                    "answer": None,
                    "error": finished.error,
                    "steps": 0,
                    "usage": None,
                },
                active=await self.agents.active_skills(scb.agent_id, scb.id),
            )
        current = await self.store.get_session(scb.id)
        ended = (
            outcome_of("lost", f"{stopped} during this dispatch")
            if open_dispatch
            else current.outcome
        )
        await self.store.update_session(
            msgspec.structs.replace(current, status="idle", phase="", outcome=ended)
        )
        self.log(
            LogEntry(
                kind="dispatch.recovered",
                level="warning",
                session_id=scb.id,
                agent_id=scb.agent_id,
                message=f"session {scb.id}: recovered a dispatch cut by a crash",
            )
        )

    # -- the boundary ----------------------------------------------------------------
    async def syscall(
        self, principal: Principal, name: str, params: Mapping[str, Any] | None = None
    ) -> Any:
        """Run one syscall as ``principal``; return its result as plain data.

        Raises :class:`aos.syscalls.SyscallError` with a code and a message.
        """
        return await call(self, principal, name, params)
