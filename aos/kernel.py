"""The kernel: configuration, store, hooks and the syscall table, in one object.

Mechanism only. Everything a harness decides enters through a hook; every
state change crosses :meth:`Kernel.syscall`.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgspec

from aos.agent import ACB, EffectiveConfig
from aos.bash import kill_group
from aos.config import Config
from aos.events import EventBus
from aos.history import (
    ContextCompacted,
    DispatchFinished,
    DispatchStarted,
    Fact,
    ToolResult,
    decode_fact,
    encode_fact,
    fact_kind,
    fact_to_builtins,
    open_calls,
)
from aos.hooks import HookError, HookPolicy, HookRunner
from aos.ids import new_id
from aos.llm import LLMClient, LLMError, LLMSettings
from aos.plugins import AOSPluginManager, PluginLoad, allowed_plugins, load_entrypoint_plugins
from aos.principals import DEFAULT_AGENT_SCOPES, Principal, TokenAuthority
from aos.reactunit import LEASE_TTL, DispatchRefused, ReActUnit
from aos.runtimelog import LogEntry
from aos.sandbox import Layout, Network, Sandboxes, SandboxMode, probe
from aos.session import SCB
from aos.skills.registry import (
    SkillEvent,
    SkillRegistry,
    agents_skills_dirs,
    available_skills_prompt,
    default_roots,
)
from aos.store import Store, open_store
from aos.syscalls import call

logger = logging.getLogger("aos")
HISTORY_CACHE_SESSIONS = 256
FACE_CACHE = 256
"""Context faces kept (one per distinct set of active skills)."""
SUMMARY_INSTRUCTION = (
    "Summarize this earlier part of an agent's session for the agent itself: the goals, "
    "what was done (commands and their outcomes), facts learned, and what is still open. "
    "Be concise and concrete; keep names, paths and numbers."
)


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


def _assembled(result: Any) -> tuple[list[dict[str, Any]], Mapping[str, Any] | None]:
    """A provider's answer: a list of messages, or {"messages", "compaction"}."""
    if isinstance(result, list):
        return result, None
    if isinstance(result, Mapping) and isinstance(result.get("messages"), list):
        return result["messages"], result.get("compaction")
    raise HookError(
        "session.assemble", f"session.assemble returned {type(result).__name__}, not messages"
    )


class ServiceStatusSource(Protocol):
    def status(self) -> list[dict[str, Any]]: ...

    async def restart(self, name: str) -> None: ...

    async def call_method(
        self, skill: str, method: str, caller: dict[str, Any], params: dict[str, Any]
    ) -> Any: ...

    async def settle(self, skills: Iterable[str]) -> None: ...


@dataclass
class _HistoryView:
    """One session's facts as this kernel knows them, in ``seq`` order."""

    facts: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = False
    """False until read from the store, and again once a fact was seen to land
    past a gap (another writer's fact in between): a read is then due."""

    reassemble: bool = False
    """Facts put in ahead of their commit were taken out again: a context built
    incrementally from them must be rebuilt."""
    reading: asyncio.Event | None = None
    """Set when the read under way ends (other readers wait for it)."""
    committing: asyncio.Task[list[int]] | None = None
    """The commit of facts put in ahead, which later appends wait for."""

    @property
    def last_seq(self) -> int:
        return self.facts[-1]["seq"] if self.facts else 0

    def extend(self, entries: Iterable[dict[str, Any]]) -> None:
        """Add entries that follow on; one past a gap marks the view incomplete."""
        for entry in entries:
            last = self.last_seq
            if entry["seq"] == last + 1:
                self.facts.append(entry)
            elif entry["seq"] > last:
                self.complete = False

    def retract(self, ahead: list[dict[str, Any]]) -> None:
        """Take out facts put in ahead of their commit, and all after them."""
        for i in range(len(self.facts) - 1, -1, -1):
            if self.facts[i] is ahead[0]:
                del self.facts[i:]
                break
        self.complete = False
        self.reassemble = True


def _entries(seqs: Iterable[int], facts: Sequence[Fact]) -> list[dict[str, Any]]:
    """History view entries (``{seq, ts, fact}``) for facts appended now."""
    now = time.time()
    return [
        {"seq": seq, "ts": now, "fact": fact_to_builtins(fact)}
        for seq, fact in zip(seqs, facts, strict=True)
    ]


@dataclass(frozen=True)
class SkillContext:
    """The context face of a set of active skills."""

    names: list[str]
    """The active skills found in the registry, by name."""
    listed: list[dict[str, str]]
    """``[{"name", "description"}]``, as ``session.assemble`` gets them."""
    prompt: str
    """The ``<available_skills>`` block listed to the model."""
    path: list[str]
    """Their ``scripts/`` folders, for bash's PATH."""


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
        self.node_id = node_id(config.paths.state_dir)
        self.started_at = time.time()
        self.hooks = HookRunner(pm, default_timeout=config.aoscb.limits.hook_timeout, log=self.log)
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
        self._histories: collections.OrderedDict[str, _HistoryView] = collections.OrderedDict()
        self._plugins = {
            load.name: pm.get_plugin(load.name) for load in plugin_loads if not load.error
        }
        self._faces: dict[frozenset[str], SkillContext] = {}
        self._loaded: dict[str, tuple[int, frozenset[str]]] = {}
        """session id -> (facts of its history view read, skills loaded in it)."""
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
        self._faces.clear()
        skill = event.skill
        self.hooks.system = frozenset(
            s.name for s in self.skills.all() if s.system and s.status != "shadowed"
        )
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

    async def session_skills(self, session_id: str) -> frozenset[str]:
        """Skills loaded in a session (skill.loaded facts not undone by skill.unloaded),
        kept up incrementally from the same history view the context is built from."""
        history = await self.history_view(session_id)
        done, loaded = self._loaded.get(session_id, (0, frozenset()))
        if done > len(history):  # the view was dropped from the cache and rebuilt
            done, loaded = 0, frozenset()
        if done < len(history):
            names = set(loaded)
            for item in history[done:]:
                fact = item["fact"]
                if fact["kind"] == "skill.loaded":
                    names.add(fact["skill"])
                elif fact["kind"] == "skill.unloaded":
                    names.discard(fact["skill"])
            done, loaded = len(history), frozenset(names)
            self._loaded[session_id] = (done, loaded)
        return loaded

    async def skill_context(self, agent_id: str, session_id: str | None = None) -> SkillContext:
        """The context face of an agent's active skills (in a session)."""
        return self.context_face(await self.active_skills(agent_id, session_id))

    def context_face(self, active: frozenset[str]) -> SkillContext:
        """The context face of these active skills, kept until the registry changes
        (a ReAct step needs it twice: for the context and for bash's PATH)."""
        face = self._faces.get(active)
        if face is None:
            skills = self.skills.active(sorted(active))
            face = SkillContext(
                names=[s.name for s in skills],
                listed=[{"name": s.name, "description": s.description} for s in skills],
                prompt=available_skills_prompt(skills),
                path=[str(d) for s in skills if (d := s.scripts_dir) is not None],
            )
            if len(self._faces) >= FACE_CACHE:
                self._faces.clear()
            self._faces[active] = face
        return face

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

        The nearest override wins for model, workspace, max_steps and sandbox;
        ``network`` too, except that ``none`` holds for the whole subtree below it. Skills add
        up: a child adds skills but cannot drop its ancestors' (policy skills
        stay active below them). Scopes narrow: a root agent has the scopes it
        names (else the default agent scopes), each descendant the intersection
        with what it names.
        """
        limits = self.config.aoscb.limits
        model, workspace, max_steps = self.config.aoscb.model, None, limits.max_steps
        network: Network = "on"
        sandbox: SandboxMode = self.config.aoscb.sandbox
        skills: dict[str, None] = {}  # ordered set
        scopes: set[str] | None = None
        for acb in chain:
            c = acb.config
            model = c.model if c.model is not None else model
            skills.update(dict.fromkeys(c.skills or ()))
            workspace = c.workspace if c.workspace is not None else workspace
            max_steps = c.max_steps if c.max_steps is not None else max_steps
            if network != "none" and c.network is not None:  # none is never widened below
                network = c.network
            sandbox = c.sandbox if c.sandbox is not None else sandbox
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
            network=network,
            sandbox=sandbox,
        )

    async def effective(self, agent_id: str) -> EffectiveConfig:
        return self.effective_of(await self.lineage(agent_id))

    async def active_skills(
        self,
        agent_id: str,
        session_id: str | None = None,
        *,
        effective: EffectiveConfig | None = None,
    ) -> frozenset[str]:
        """System default skills, the agent's (inherited) skills, and those loaded
        in the session. ``effective``: the agent's, when the caller has it already."""
        effective = effective or await self.effective(agent_id)
        active = frozenset(self.config.aoscb.default_skills) | frozenset(effective.skills)
        return active | await self.session_skills(session_id) if session_id else active

    async def in_subtree(self, root_id: str, agent_id: str) -> bool:
        """Whether ``agent_id`` is ``root_id`` or one of its descendants."""
        return any(acb.id == root_id for acb in await self.lineage(agent_id))

    # -- history ---------------------------------------------------------------------
    async def append(self, scb: SCB, fact: Fact, *, active: frozenset[str] | None = None) -> int:
        """Append a fact and announce it on ``history.append``."""
        [seq] = await self.append_all(scb, [fact], active=active)
        return seq

    @staticmethod
    def check_fact(fact: Fact) -> None:
        """Refuse a fact that could not be read back: history is append-only, so
        it would break the session for good."""
        try:
            decode_fact(encode_fact(fact))
        except msgspec.ValidationError as exc:
            raise HookError(
                "history.append", f"refusing to record an invalid {fact_kind(fact)} fact: {exc}"
            ) from None

    async def append_all(
        self, scb: SCB, facts: Sequence[Fact], *, active: frozenset[str] | None = None
    ) -> list[int]:
        """Append facts in order, in one commit, and announce each on ``history.append``.

        The facts are checked first (:meth:`check_fact`)."""
        for fact in facts:
            self.check_fact(fact)
        ahead = self._histories.get(scb.id)
        if ahead is not None and ahead.committing is not None:  # after the facts put in ahead
            await asyncio.wait([ahead.committing])
        seqs = await self.store.append_all(scb.id, facts)
        entries = _entries(seqs, facts)
        view = self._histories.get(scb.id)
        if view is not None:
            view.extend(entries)
        await self._announce(scb, entries, active)
        return seqs

    def append_ahead(
        self, scb: SCB, facts: Sequence[Fact], *, active: frozenset[str] | None = None
    ) -> asyncio.Task[list[int]] | None:
        """Start appending facts, and put them in this kernel's history view at once:
        the caller may build on them (the next step's context) while they commit.
        They are announced once committed, as always; the task ends then.

        The view holds them under the ``seq`` they will get unless another writer's
        fact lands first; then, or if the commit fails, they are taken out of the
        view again, which is read anew and reassembled from scratch. None when the
        view cannot take facts ahead (not read yet, or a gap to read first): use
        :meth:`append_all` then."""
        view = self._histories.get(scb.id)
        if view is None or not view.complete:
            return None
        for fact in facts:
            self.check_fact(fact)
        ahead = _entries(range(view.last_seq + 1, view.last_seq + 1 + len(facts)), facts)
        view.facts.extend(ahead)
        view.committing = asyncio.get_running_loop().create_task(
            self._commit_ahead(scb, facts, ahead, view, active)
        )
        return view.committing

    async def _commit_ahead(
        self,
        scb: SCB,
        facts: Sequence[Fact],
        ahead: list[dict[str, Any]],
        view: _HistoryView,
        active: frozenset[str] | None,
    ) -> list[int]:
        try:
            seqs = await self.store.append_all(scb.id, facts)
        except BaseException:
            view.retract(ahead)
            self._loaded.pop(scb.id, None)
            raise
        finally:
            if view.committing is asyncio.current_task():
                view.committing = None
        if seqs == [entry["seq"] for entry in ahead]:
            await self._announce(scb, ahead, active)
            return seqs
        view.retract(ahead)  # another writer's fact came first
        self._loaded.pop(scb.id, None)
        await self._announce(scb, _entries(seqs, facts), active)
        return seqs

    async def _announce(
        self, scb: SCB, entries: list[dict[str, Any]], active: frozenset[str] | None
    ) -> None:
        """``history.append`` for committed facts: the event topic and the hook."""
        events = [{"session_id": scb.id, "agent_id": scb.agent_id, **e} for e in entries]
        for event in events:  # subscribers first: in seq order, whatever waits below
            self.events.publish("history.append", event)
        if self.hooks.impls("history.append"):
            if active is None:
                active = await self.active_skills(scb.agent_id, scb.id)
            for event in events:
                self.hooks.notify("history.append", event, active=active)

    # -- the ReAct loop's needs ---------------------------------------------------------
    @property
    def llm(self) -> LLMClient:
        if self._llm is None:
            self._llm = LLMClient(self.llm_settings)
        return self._llm

    async def history_view(self, session_id: str, *, refresh: bool = False) -> list[dict[str, Any]]:
        """The session's facts as plain data (``{seq, ts, fact}``), kept per session.

        Facts this kernel appends join the view as they are committed, so a
        dispatch reads nothing back. The store is read when the view may lack
        facts: on first use, after another writer's fact was seen to land
        between two of ours (a gap in ``seq``), or when ``refresh`` asks for
        whatever other writers committed meanwhile."""
        view = self._histories.get(session_id)
        if view is None:
            view = self._histories[session_id] = _HistoryView()
        self._histories.move_to_end(session_id)
        while len(self._histories) > HISTORY_CACHE_SESSIONS:
            self._histories.popitem(last=False)
        while view.reading is not None or refresh or not view.complete:
            if view.reading is not None:  # one read at a time: wait for it, then look again
                await view.reading.wait()
                continue
            refresh = False
            view.complete = True  # a gap seen while the read is under way clears it again
            view.reading = asyncio.Event()
            try:
                entries = await self.store.read_history(session_id, after=view.last_seq)
                view.extend(
                    {"seq": e.seq, "ts": e.ts, "fact": fact_to_builtins(e.fact)} for e in entries
                )
            except BaseException:
                view.complete = False
                raise
            finally:
                view.reading.set()
                view.reading = None
        return view.facts

    async def assemble(
        self,
        scb: SCB,
        *,
        active: frozenset[str],
        rebuild: bool = False,
        record: bool = True,
        effective: EffectiveConfig | None = None,
    ) -> list[dict[str, Any]]:
        """SessionHistory -> SessionContext through the ``session.assemble`` provider.

        A provider may ask for older turns to be compacted (``compaction``); the
        kernel then asks the model for the summary (the provider's fallback if
        that fails), records a ``context.compacted`` fact and assembles again."""
        face = self.context_face(active)
        effective = effective or await self.effective(scb.agent_id)
        history = await self.history_view(scb.id, refresh=rebuild)
        view = self._histories.get(scb.id)
        if view is not None and view.reassemble:  # facts taken ahead were taken out again
            view.reassemble, rebuild = False, True
        request = {
            "session_id": scb.id,
            "agent_id": scb.agent_id,
            "history": history,
            "skills": face.listed,
            "skills_prompt": face.prompt,
            "budget": self.config.aoscb.limits.context_budget,
            "prompt": self.config.aoscb.prompt,
            "model": effective.model,
            "rebuild": rebuild,
        }
        result = await self.hooks.provide("session.assemble", request, active=active)
        messages, compaction = _assembled(result)
        if compaction is None or not record:
            return messages
        summary = await self._summarize(compaction, effective.model)
        await self.append(
            scb,
            ContextCompacted(summary=summary, through_seq=int(compaction["through_seq"])),
            active=active,
        )
        request["history"] = await self.history_view(scb.id)
        messages, _ = _assembled(
            await self.hooks.provide("session.assemble", request, active=active)
        )
        return messages

    async def _summarize(self, compaction: Mapping[str, Any], model: str | None) -> str:
        fallback = str(compaction.get("fallback") or "")
        turns = compaction.get("summarize")
        if not turns or model is None:
            return fallback
        try:
            done = await self.llm.complete(
                model=model,
                messages=[
                    {"role": "system", "content": SUMMARY_INSTRUCTION},
                    {"role": "user", "content": json.dumps(turns, ensure_ascii=False)},
                ],
            )
        except LLMError as exc:
            self.log(
                LogEntry(
                    kind="context.summary",
                    level="warning",
                    message=f"summary failed, using the fallback: {exc.message}",
                )
            )
            return fallback
        return done.content.strip() or fallback

    # -- dispatch, interrupt, recovery -------------------------------------------------
    async def start_dispatch(
        self,
        principal: Principal,
        scb: SCB,
        message: str,
        *,
        cwd: str | None = None,
        model: str | None = None,
    ) -> ReActUnit:
        """Start a ReActUnit on a session (raises DispatchRefused if it cannot);
        its ``task`` ends with the DispatchOutcome."""
        if scb.id in self.dispatches or scb.id in self._starting:
            raise DispatchRefused(
                "conflict",
                f"session {scb.id} is running a dispatch: wait for it, or stop it with "
                f"`aos session interrupt {scb.id}`",
            )
        unit = ReActUnit(self, scb, principal, message, cwd=cwd, model=model)
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
                await self._recover_session(scb, stopped)
                recovered.append(scb.id)
            finally:
                await self.store.release_lease(scb.id, self.node_id)
        return recovered

    async def _recover_session(self, scb: SCB, stopped: str) -> None:
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
                await self.append(
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
            await self.append(scb, finished)
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
                active=await self.active_skills(scb.agent_id, scb.id),
            )
        current = await self.store.get_session(scb.id)
        await self.store.update_session(msgspec.structs.replace(current, status="idle", phase=""))
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
