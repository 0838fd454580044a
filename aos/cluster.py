"""The cluster: this node among the daemons that share one database.

Every daemon registers its node (:mod:`aos.nodes`). On SQLite that is all:
one node serves the database. On PostgreSQL the nodes form a cluster with no
protocol of its own, only the database's:

- **Heartbeats.** Each node stamps ``nodes.heartbeat_at`` every third of the
  node TTL. A node whose heartbeat is older than the TTL is dead: a live node
  takes its sessions' leases over (``take_lease``: one node wins each), records
  their cut tool calls as lost exactly as crash recovery does (never re-run),
  re-queues the requests it had claimed but not started, and answers the
  callers of the dispatches it ran with ``lost``. A node that finds itself
  declared dead at its next heartbeat stops its dispatches at once.
- **Dispatch by queue.** ``session.dispatch`` records a request
  (:mod:`aos.dispatches`) and notifies; a live node whose placements match
  claims it (``FOR UPDATE SKIP LOCKED``) and runs it; the recording node
  answers its caller from the request's row. A stopping node claims nothing.
- **Events across nodes.** What a node publishes on its event bus (facts
  appended, stream deltas) and the queue's changes are sent with ``NOTIFY``:
  outside write transactions, coalesced (what arrives while one is in flight
  goes in the next), each payload at most ~8000 bytes. Facts travel as ids
  (session, seq): a node with subscribers to that session reads them from the
  history, in seq order, so nothing is missed or repeated; stream deltas,
  which are stored nowhere, travel whole. Every claim interval a node also
  polls (the backstop): queued requests, dead nodes, and the history of
  sessions its subscribers follow on other nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from aos import __version__
from aos.dispatches import DispatchRequest, Refusal, placements_of
from aos.facts import fact_to_builtins
from aos.ids import new_id
from aos.nodes import (
    CLAIM_INTERVAL,
    NODE_TTL,
    NodeRecord,
    ServiceState,
    labels_of,
    setting,
)
from aos.principals import Principal
from aos.reactunit import LEASE_TTL, DispatchOutcome, DispatchRefused
from aos.runtimelog import LogEntry
from aos.store import StoreError
from aos.store.postgres import NOTIFY_LIMIT, PostgresStore

if TYPE_CHECKING:
    from aos.kernel import Kernel
    from aos.session import SCB

logger = logging.getLogger("aos")
SPREAD_DELAY = 0.0005
"""Seconds a node waits per dispatch it runs before it claims another, so that
a burst of requests spreads over the nodes rather than going to the quickest."""
KEEP_DONE = 24 * 3600.0
"""Seconds a finished dispatch request is kept (its dispatch is in the history)."""
PRUNE_EVERY = 600.0
FOLLOW_WINDOW = 60.0
"""Seconds after its last fact that a session's relay state is kept (and the
backstop polls it, if its facts came from other nodes)."""
_principal = msgspec.json.Decoder(Principal)


class NodeStatus(msgspec.Struct, kw_only=True):
    id: str
    host: str
    pid: int
    version: str
    labels: list[str]
    state: str
    """running, stopping, stopped or dead (missed its heartbeats; taken over)."""
    alive: bool
    heartbeat_age: float
    """Seconds since its last heartbeat, by the database's clock."""
    services: list[ServiceState]
    sessions: list[str]
    """Sessions whose dispatch it runs now (it holds their lease)."""


class ClusterStatus(msgspec.Struct, kw_only=True):
    shared: bool
    """Whether dispatches go through the queue (nodes on one PostgreSQL database);
    false on SQLite, which serves one node."""
    node_ttl: float
    claim_interval: float
    nodes: list[NodeStatus]


class Cluster:
    """This node's membership: registration, heartbeats, the dispatch queue, the
    event relay and failover (see the module's docstring)."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.node_id = kernel.node_id
        getenv = kernel.config.getenv
        self.ttl = setting(getenv, "AOS_NODE_TTL", NODE_TTL)
        self.interval = setting(getenv, "AOS_CLAIM_INTERVAL", CLAIM_INTERVAL)
        self.labels = labels_of(getenv("AOS_NODE_LABELS"))
        self.placements = placements_of(self.node_id, self.labels)
        store = kernel.store
        self.store: PostgresStore | None = store if isinstance(store, PostgresStore) else None
        """The shared database, when there is one (else this node is alone)."""
        self.running = False
        """Registered and serving (between :meth:`start` and :meth:`stop`)."""
        self.claiming = False
        self.peers = 0
        """Other live nodes, as of the last look."""
        self._tasks: list[asyncio.Task[Any]] = []
        self._runs: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._changed: dict[str, asyncio.Event] = {}
        """Requests this node waits on, set when a notification names them."""
        self._outbox: list[list[Any]] = []
        self._sending: asyncio.Task[None] | None = None
        self._inbox: asyncio.Queue[list[Any]] = asyncio.Queue()
        self._published: dict[str, int] = {}
        """The newest seq of each session whose facts this node has published lately."""
        self._touched: dict[str, float] = {}
        """When each session of ``_published`` last had a fact (monotonic)."""
        self._remote: set[str] = set()
        """Sessions of ``_published`` whose facts came from other nodes: the backstop
        polls them while they are recent."""
        self._subscription = 0
        self._pruned = time.monotonic()

    @property
    def shared(self) -> bool:
        """Whether dispatches go through the queue (a running node on PostgreSQL)."""
        return self.store is not None and self.running

    async def status(self) -> ClusterStatus:
        store = self.kernel.store
        nodes = await store.list_nodes()
        running: dict[str, list[str]] = {}
        for scb in await store.list_sessions(status="running"):
            if scb.lease_owner is not None:
                running.setdefault(scb.lease_owner, []).append(scb.id)
        return ClusterStatus(
            shared=self.store is not None,
            node_ttl=self.ttl,
            claim_interval=self.interval,
            nodes=[
                NodeStatus(
                    id=n.id,
                    host=n.host,
                    pid=n.pid,
                    version=n.version,
                    labels=n.labels,
                    state=n.state,
                    alive=n.alive(self.ttl) if self.store is not None else n.state == "running",
                    heartbeat_age=n.age,
                    services=n.services,
                    sessions=running.get(n.id, []),
                )
                for n in nodes
            ],
        )

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        kernel = self.kernel
        await self._register()
        if self.store is not None:  # what this node's previous life left in the queue
            await self._take_over(self.node_id, "the daemon stopped")
        self.running = True
        if self.store is None:
            return
        await self.store.listen(self._received)
        self._subscription = kernel.events.subscribe(
            self._local_event, topics=frozenset({"history.append", "stream"}), local_only=True
        ).id
        await self._look()
        self.claiming = True
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._every(self.ttl / 3, self._heartbeat)),
            loop.create_task(self._every(self.interval, self._look)),
            loop.create_task(self._claim_loop()),
            loop.create_task(self._relay_loop()),
        ]

    def stop_claiming(self) -> None:
        """Claim no new dispatch (the node is shutting down); others take them."""
        self.claiming = False
        if self.running:
            self._spawn(self.kernel.store.set_node_state(self.node_id, "stopping"))

    async def stop(self) -> None:
        """After the node's dispatches stopped: record how they ended, leave."""
        self.stop_claiming()
        if self._runs:
            await asyncio.wait(self._runs, timeout=10)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.kernel.events.unsubscribe(self._subscription)
        with contextlib.suppress(StoreError):
            await self._send_now()
            await self.kernel.store.set_node_state(self.node_id, "stopped")
        self.running = False

    def _services(self) -> list[ServiceState]:
        services = self.kernel.services
        return [ServiceState(s["skill"], s["state"]) for s in services.status()] if services else []

    async def _every(self, seconds: float, work: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await work()
            except StoreError as exc:
                logger.warning("cluster: %s", exc)
            except Exception:
                logger.exception("cluster: %s failed; retrying", work.__name__)

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)

    # -- heartbeats and failover --------------------------------------------------------
    async def _heartbeat(self) -> None:
        services = msgspec.json.encode(self._services()).decode()
        before = await self.kernel.store.heartbeat_node(self.node_id, services)
        if before is None:  # the row is gone (the table was cleared): register again
            await self._register()
        elif before == "dead":
            logger.error("cluster: this node was declared dead (it missed its heartbeats)")
            for unit in list(self.kernel.dispatches.values()):
                unit.cancel(
                    "stopped: this node missed its heartbeats and another node recovered its "
                    "sessions"
                )

    async def _register(self) -> None:
        stopping = self.running and not self.claiming
        await self.kernel.store.register_node(
            NodeRecord(
                id=self.node_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                version=__version__,
                labels=self.labels,
                services=self._services(),
                state="stopping" if stopping else "running",
            )
        )

    async def _look(self) -> None:
        """The backstop: the nodes (dead ones are taken over), the listener,
        queued requests, followed sessions' facts."""
        store = self.store
        assert store is not None
        nodes = await store.list_nodes()
        others = [n for n in nodes if n.id != self.node_id]
        self.peers = sum(n.alive(self.ttl) for n in others)
        for node in others:
            if node.state in ("running", "stopping") and node.age > self.ttl:
                await self._take_over(
                    node.id, f"node {node.id} died (no heartbeat for {node.age:.0f} s)"
                )
                await store.set_node_state(node.id, "dead")
        await self._refuse_stranded(nodes)
        if time.monotonic() - self._pruned > PRUNE_EVERY:
            self._pruned = time.monotonic()
            await store.prune_dispatches(KEEP_DONE)
        if not store.listening:
            await store.listen(self._received)
            logger.info("cluster: listening again on %s", store.channel)
        self._wake.set()
        now = time.monotonic()
        for session_id, touched in list(self._touched.items()):
            if now - touched > FOLLOW_WINDOW:  # quiet for a while: forgotten
                self._forget(session_id)
            elif session_id in self._remote and session_id not in self.kernel.dispatches:
                self._inbox.put_nowait(["h", session_id, None, None])

    async def _take_over(self, node_id: str, why: str) -> None:
        """Recover what a dead node (or this node's previous life) held: its claimed
        requests, its sessions, its callers' answers; ``why`` says what cut them."""
        store = self.store
        assert store is not None
        kernel = self.kernel
        if requeued := await store.requeue_dispatches(node_id):
            logger.warning("cluster: %s; %d dispatch requests queued again", why, requeued)
            self._send(["q"])
        cut = {r.session_id: r for r in await store.dispatches_of(node_id, ["claimed", "running"])}
        for scb in await store.list_sessions(status="running"):
            if scb.lease_owner != node_id:
                continue
            if not await store.take_lease(scb.id, self.node_id, LEASE_TTL, node_id):
                continue  # another node got there first
            try:
                await kernel.recover_session(scb, why)
                logger.warning("cluster: recovered session %s: %s", scb.id, why)
                if (request := cut.pop(scb.id, None)) is not None:
                    await self._lost(request, scb, why)  # before the session is free again
            finally:
                await store.release_lease(scb.id, self.node_id)
        await store.release_leases_of(node_id)  # sessions it was only starting
        for request in cut.values():
            await self._lost(request, await store.get_session(request.session_id), why)

    async def _refuse_stranded(self, nodes: list[NodeRecord]) -> None:
        """Refuse the requests queued longer than the node TTL that no live node may
        claim (the nodes of their placement died or stopped after they were queued):
        their callers are told, instead of waiting for a node that may never come."""
        store = self.store
        assert store is not None
        live = self._live_placements(nodes)
        for request in await store.queued_dispatches(time.time() - self.ttl):
            if request.placement in live:
                continue
            waited = time.time() - request.created_at
            refusal = Refusal(
                "unavailable",
                f"no live node may run this dispatch (placement {request.placement}; it "
                f"waited {waited:.0f} s in the queue): start a node there, or change the "
                "agent's placement",
            )
            if await store.refuse_dispatch(request.id, msgspec.json.encode(refusal).decode()):
                self.kernel.log(  # the daemon log and the RuntimeLog, by its session
                    LogEntry(
                        kind="cluster.refused",
                        level="warning",
                        message=f"cluster: dispatch {request.dispatch_id} refused: "
                        f"{refusal.message}",
                        session_id=request.session_id,
                        data={"request": request.id, "placement": request.placement},
                    )
                )
                self._send(["r", request.id])

    def _live_placements(self, nodes: list[NodeRecord]) -> set[str]:
        """The placements some running node with a fresh heartbeat may claim."""
        return {
            placement
            for n in nodes
            if n.state == "running" and n.age <= self.ttl
            for placement in placements_of(n.id, n.labels)
        }

    async def _lost(self, request: DispatchRequest, scb: SCB, why: str) -> None:
        """Answer the caller of a dispatch its dead node ran: ``lost``."""
        outcome = DispatchOutcome(
            session_id=scb.id,
            agent_id=scb.agent_id,
            dispatch_id=request.dispatch_id,
            status="lost",
            error=f"{why} during this dispatch; completed steps are kept",
        )
        await self._done(request, outcome)

    # -- the dispatch queue: the caller's side ---------------------------------------------
    async def dispatch(
        self,
        principal: Principal,
        scb: SCB,
        message: str,
        *,
        cwd: str | None,
        model: str | None,
        wait: bool,
    ) -> DispatchOutcome:
        """Queue a dispatch for whichever node may run it; return when it started
        (``wait=False``) or ended. DispatchRefused as the running node refused it."""
        store = self.store
        assert store is not None
        if scb.lease_owner is not None and (scb.lease_expires or 0) > time.time():
            raise DispatchRefused("conflict", _running(scb.id, scb.lease_owner))
        placement = (await self.kernel.agents.effective(scb.agent_id)).placement
        if cwd is not None and placement == "any":
            placement = f"node:{self.node_id}"  # the caller's directory is on this machine
        await self._check_placement(placement)
        request = DispatchRequest(
            id=new_id("dreq"),
            session_id=scb.id,
            dispatch_id=new_id("dsp"),
            origin=self.node_id,
            principal=msgspec.json.encode(principal).decode(),
            message=message,
            cwd=cwd,
            model=model,
            placement=placement,
            created_at=time.time(),
        )
        changed = self._changed[request.id] = asyncio.Event()
        try:
            try:
                await store.enqueue_dispatch(request)
            except StoreError as exc:
                if exc.code == "conflict":
                    raise DispatchRefused("conflict", _running(scb.id, None)) from None
                raise DispatchRefused("unavailable", str(exc)) from None
            self._send(["q"])
            self._wake.set()
            request = await self._until(request.id, changed, ("running", "done"))
            if request.state == "running" and not wait:
                return DispatchOutcome(
                    session_id=scb.id,
                    agent_id=scb.agent_id,
                    dispatch_id=request.dispatch_id,
                    status="running",
                )
            request = await self._until(request.id, changed, ("done",))
        finally:
            self._changed.pop(request.id, None)
        ended = _ended(request)
        if isinstance(ended, Refusal):
            raise DispatchRefused(ended.code, ended.message)
        return ended

    async def interrupt(self, session_id: str, reason: str) -> DispatchOutcome | None:
        """Have the node running the session's queued dispatch stop it; its outcome,
        or None when no queued dispatch runs it."""
        store = self.store
        assert store is not None
        request = await store.pending_dispatch(session_id)
        if request is None:
            return None
        changed = self._changed[request.id] = asyncio.Event()
        try:
            self._send(["i", session_id, request.dispatch_id, reason])
            request = await self._until(request.id, changed, ("done",))
        finally:
            self._changed.pop(request.id, None)
        ended = _ended(request)
        return ended if isinstance(ended, DispatchOutcome) else None

    async def _until(
        self, request_id: str, changed: asyncio.Event, states: tuple[str, ...]
    ) -> DispatchRequest:
        store = self.store
        assert store is not None
        while True:
            changed.clear()
            request = await store.get_dispatch(request_id)
            if request.state in states:
                return request
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await changed.wait()

    async def _check_placement(self, placement: str) -> None:
        store = self.store
        assert store is not None
        nodes = await store.list_nodes()
        if placement not in self._live_placements(nodes):
            alive = ", ".join(n.id for n in nodes if n.alive(self.ttl)) or "none"
            raise DispatchRefused(
                "unavailable",
                f"no live node may run this dispatch (placement {placement}; live nodes: "
                f"{alive}): start a node there, or change the agent's placement",
            )

    # -- the dispatch queue: the running node's side ------------------------------------------
    async def _claim_loop(self) -> None:
        store = self.store
        assert store is not None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()
            while self.claiming:
                if self.kernel.dispatches:
                    await asyncio.sleep(min(len(self.kernel.dispatches), 20) * SPREAD_DELAY)
                try:
                    request = await store.claim_dispatch(self.node_id, self.placements)
                except StoreError as exc:
                    logger.warning("cluster: claiming failed: %s", exc)
                    break
                if request is None:
                    break
                self._spawn(self._run(request))

    async def _run(self, request: DispatchRequest) -> None:
        store = self.store
        assert store is not None
        kernel = self.kernel
        try:
            scb = await store.get_session(request.session_id)
            unit = await kernel.start_dispatch(
                _principal.decode(request.principal),
                scb,
                request.message,
                cwd=request.cwd,
                model=request.model,
                dispatch_id=request.dispatch_id,
            )
        except DispatchRefused as exc:
            await self._done(request, Refusal(exc.code, exc.message))
            return
        except StoreError as exc:
            await self._done(request, Refusal("unavailable", str(exc)))
            return
        except Exception as exc:
            logger.exception("cluster: starting the dispatch of %s failed", request.id)
            await self._done(request, Refusal("unavailable", f"internal error: {exc!r}"))
            return
        with contextlib.suppress(StoreError):  # its end is recorded below in any case
            await store.set_dispatch_state(request.id, "running")
            self._send(["r", request.id])
        outcome = await asyncio.shield(unit.task)
        await self._done(request, outcome)

    async def _done(self, request: DispatchRequest, outcome: DispatchOutcome | Refusal) -> None:
        """Record how a request ended, retrying while the database is away."""
        store = self.store
        assert store is not None
        encoded = msgspec.json.encode(outcome).decode()
        for attempt in range(30):
            try:
                await store.set_dispatch_state(request.id, "done", encoded)
                break
            except StoreError as exc:
                logger.warning("cluster: recording the end of %s failed: %s", request.id, exc)
                await asyncio.sleep(min(0.1 * 2**attempt, 5.0))
        self._send(["r", request.id])

    # -- events across nodes ------------------------------------------------------------------
    def _local_event(self, topic: str, data: Any) -> None:
        if topic == "history.append":
            session_id, seq = data["session_id"], data["seq"]
            self._mark(session_id, seq)
            if self.peers:
                self._send(["h", session_id, data["agent_id"], seq])
        elif self.peers:
            self._send(["s", data])

    def _send(self, item: list[Any]) -> None:
        """Notify the other nodes (coalesced: one round trip carries what came
        meanwhile)."""
        self._outbox.append(item)
        if self._sending is None or self._sending.done():
            self._sending = asyncio.get_running_loop().create_task(self._send_now())

    async def _send_now(self) -> None:
        store = self.store
        if store is None:
            return
        while self._outbox:
            items, self._outbox = self._outbox, []
            try:
                await store.notify(_payloads(self.node_id, items))
            except StoreError as exc:  # the backstop polls catch up
                logger.warning("cluster: notification failed: %s", exc)

    def _received(self, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if message.get("n") == self.node_id:
            return
        for item in message.get("e", ()):
            if item[0] == "q":
                self._wake.set()
            elif item[0] == "r":
                if (changed := self._changed.get(item[1])) is not None:
                    changed.set()
            elif item[0] == "i":
                unit = self.kernel.dispatches.get(item[1])
                if unit is not None and unit.dispatch_id == item[2]:
                    unit.cancel(item[3])
            else:
                self._inbox.put_nowait(item)

    async def _relay_loop(self) -> None:
        """Publish other nodes' events here, in the order they were sent."""
        while True:
            item = await self._inbox.get()
            try:
                if item[0] == "h":
                    await self._relay_facts(item[1], item[2], item[3])
                elif self.kernel.events.wanted("stream", item[1]):
                    self.kernel.events.publish("stream", item[1], relayed=True)
            except StoreError as exc:
                logger.warning("cluster: relaying events failed: %s", exc)
            except Exception:
                logger.exception("cluster: relaying %s failed", item[0])

    async def _relay_facts(self, session_id: str, agent_id: str | None, seq: int | None) -> None:
        """A session's facts up to ``seq`` (None: all there are) that this node
        has not published yet, if anyone here follows it."""
        store = self.store
        assert store is not None
        last = self._published.get(session_id)
        if agent_id is None:
            agent_id = (await store.get_session(session_id)).agent_id
        probe = {"session_id": session_id, "agent_id": agent_id}
        if not self.kernel.events.wanted("history.append", probe):
            if seq is not None:
                self._mark(session_id, seq)
            else:
                self._forget(session_id)  # nobody follows it here any more
            return
        self._remote.add(session_id)
        if last is None:
            last = (seq - 1) if seq is not None else 0
        if seq is not None and seq <= last:
            return
        for entry in await store.read_history(session_id, after=last, until=seq):
            if entry.seq <= self._published.get(session_id, 0):
                continue
            self._mark(session_id, entry.seq)
            event = {
                **probe,
                "seq": entry.seq,
                "ts": entry.ts,
                "fact": fact_to_builtins(entry.fact),
            }
            self.kernel.events.publish("history.append", event, relayed=True)

    def _mark(self, session_id: str, seq: int) -> None:
        """This node has published the session's facts up to ``seq``."""
        self._published[session_id] = max(self._published.get(session_id, 0), seq)
        self._touched[session_id] = time.monotonic()

    def _forget(self, session_id: str) -> None:
        self._published.pop(session_id, None)
        self._touched.pop(session_id, None)
        self._remote.discard(session_id)


def _ended(request: DispatchRequest) -> DispatchOutcome | Refusal:
    """How a ``done`` request ended: its outcome, or why it never started."""
    ended: dict[str, Any] = msgspec.json.decode(request.outcome or "{}")
    if "dispatch_id" in ended:
        return msgspec.convert(ended, DispatchOutcome)
    return msgspec.convert(ended, Refusal)


def _running(session_id: str, owner: str | None) -> str:
    where = f" (on {owner})" if owner else ""
    return (
        f"session {session_id} is running a dispatch{where}: wait for it, "
        f"or stop it with `aos session interrupt {session_id}`"
    )


def _payloads(node_id: str, items: list[list[Any]]) -> list[str]:
    """``items`` in as few NOTIFY payloads as fit; an item too big for one alone
    (a huge stream delta) is left out: its fact follows by id."""
    payloads: list[str] = []
    batch: list[str] = []
    head = json.dumps({"n": node_id, "e": []})[:-2]  # '{"n": "...", "e": ['
    size = len(head) + 2
    for item in items:
        text = json.dumps(item, separators=(",", ":"))
        if len(head) + len(text) + 2 > NOTIFY_LIMIT:
            continue
        if batch and size + len(text) + 1 > NOTIFY_LIMIT:
            payloads.append(head + ",".join(batch) + "]}")
            batch, size = [], len(head) + 2
        batch.append(text)
        size += len(text) + 1
    if batch:
        payloads.append(head + ",".join(batch) + "]}")
    return payloads
