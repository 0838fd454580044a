"""Scale-out: three real daemons (``aos start``, each its own AOS_HOME) on one
fresh PostgreSQL schema of ``AOS_BENCH_DB_URL`` (else ``AOS_TEST_DB_URL``, else
the local default), the scripted model behind them.

(1) **Claim latency**: an agent placed on node B, dispatched through node A's
    socket, 100 times (``--quick`` 15) one after another: from the request
    recorded (``dispatch_requests.created_at``, A's clock) to the dispatch
    started on B (its ``dispatch.started`` fact's commit time, B's clock; one
    machine, one clock). It holds A's NOTIFY, B's claim (``FOR UPDATE SKIP
    LOCKED``), B's ``prepare`` (lineage, lease, the ``dispatch.before`` gate)
    and the first commit. p50 (target <= 10 ms), p99.
(2) **Cross-node event latency**: a subscriber on node A follows a session;
    node B appends a fact to it through its own socket, 300 times (``--quick``
    40), one after another: from the call on B to the ``history.append`` event
    on A (B's commit, B's NOTIFY, A reading the fact back by seq). p50 (target
    <= 5 ms), p99; and the same subscriber on B itself, for comparison.
(3) **Failover time**: a dispatch on node B runs ``sleep``; B is killed
    (``kill -9``); the time until its ``dispatch.finished`` (``lost``) is
    committed by A or C, 3 times (``--quick`` 1), with ``AOS_NODE_TTL=3`` and
    ``AOS_CLAIM_INTERVAL=0.5`` (the bound: the TTL plus one interval).
(4) **Appends across nodes**: 48 admin clients append to 48 sessions for 3 s
    (``--quick`` 1 s) through node A alone, then spread over A, B and C:
    appends/s each way and their ratio (3 nodes / 1 node). The nodes, the
    database and this process share the machine's two cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
from _harness import Context, PostgresUnavailable, Result, Target, latency_results, pg_schema
from aos_sdk import Client

from aos.testing import NodeProcess, Reply, ScriptedLLM, running_nodes

NAME = "cluster"
DESCRIPTION = "three nodes on one PostgreSQL: claim latency, cross-node events, failover, appends"

CLAIM_P50_MS = 10.0
EVENT_P50_MS = 5.0
NODE_TTL = 3.0
CLAIM_INTERVAL = 0.5
CLIENTS = 48


async def run(ctx: Context) -> list[Result]:
    try:
        async with pg_schema(ctx, "bench_cluster") as schema, _cluster(ctx, schema.url) as nodes:
            return [
                *await _claims(ctx, nodes, schema.dsn, schema.name),
                *await _events(ctx, nodes),
                await _failover(ctx, nodes),
                *await _appends(ctx, nodes),
            ]
    except PostgresUnavailable as exc:
        return [Result.skip("3 nodes", "claim latency p50", "ms", str(exc))]


@contextlib.asynccontextmanager
async def _cluster(ctx: Context, url: str) -> AsyncIterator[list[NodeProcess]]:
    project = Path(tempfile.mkdtemp(prefix="aosbench-", dir="/tmp"))
    (project / "skills").mkdir()
    async with ScriptedLLM() as llm:
        llm.default = _reply
        try:
            ctx.progress("starting three nodes")
            with running_nodes(
                project,
                3,
                AOS_DB_URL=url,
                AOS_MODEL="m",
                OPENROUTER_BASE_URL=llm.base_url,
                AOS_NODE_TTL=str(NODE_TTL),
                AOS_CLAIM_INTERVAL=str(CLAIM_INTERVAL),
                AOS_DEFAULT_SKILLS="aos-context",
            ) as nodes:
                yield nodes
        finally:
            shutil.rmtree(project, ignore_errors=True)


def _reply(body: dict[str, Any]) -> Reply:
    """``sleep`` for the failover trials, else a one-word answer."""
    if body["messages"][-1]["content"] == "sleep":
        return Reply.tool_call("sleep 60")
    return Reply.text("done")


async def _agent(client: Client, name: str, placement: str) -> str:
    agent = (await client.call("agent.create", {"name": name}))["agent"]["id"]
    await client.call("agent.update", {"id": agent, "config": {"placement": placement}})
    return agent


async def _session(client: Client, agent: str) -> str:
    return (await client.call("session.create", {"agent_id": agent}))["id"]


# -- (1) claim latency ---------------------------------------------------------------
async def _claims(ctx: Context, nodes: list[NodeProcess], dsn: str, schema: str) -> list[Result]:
    a, b, _ = nodes
    n = ctx.scale(100, 15)
    ctx.progress(f"{n} dispatches through node A, placed on node B")
    samples: list[int] = []
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        async with a.client() as client:
            agent = await _agent(client, "claimed", f"node:{b.id}")
            session = await _session(client, agent)
            for _ in range(n):
                outcome = await client.call("session.dispatch", {"id": session, "message": "hi"})
                row = await conn.fetchrow(
                    "SELECT r.created_at, h.ts FROM dispatch_requests r JOIN history h "
                    "ON h.session_id = r.session_id AND h.kind = 'dispatch.started' "
                    "AND h.body->>'dispatch_id' = r.dispatch_id WHERE r.dispatch_id = $1",
                    outcome["dispatch_id"],
                )
                assert row is not None and outcome["status"] == "completed", outcome
                samples.append(int((row["ts"] - row["created_at"]) * 1e9))
    finally:
        await conn.close()
    return latency_results(
        "3 nodes, dispatch via A placed on B",
        "claim latency (recorded on A -> started on B)",
        samples,
        targets_ms={"p50": CLAIM_P50_MS},
    )


# -- (2) cross-node events -------------------------------------------------------------
async def _events(ctx: Context, nodes: list[NodeProcess]) -> list[Result]:
    a, b, _ = nodes
    n = ctx.scale(300, 40)
    results: list[Result] = []
    async with a.client() as on_a, b.client() as on_b:
        agent = await _agent(on_a, "followed", "any")
        for where, subscriber, target in (
            ("append on B -> subscriber on A", on_a, {"p50": EVENT_P50_MS}),
            ("append on B -> subscriber on B (same node)", on_b, None),
        ):
            ctx.progress(f"{n} appends, {where}")
            session = await _session(on_a, agent)
            samples = await _follow(subscriber, on_b, session, n)
            results += latency_results(
                "3 nodes, one session", f"event latency, {where}", samples, targets_ms=target
            )
    return results


async def _follow(subscriber: Client, appender: Client, session: str, n: int) -> list[int]:
    events = subscriber.subscribe(topics=["history.append"], session_id=session)
    arrived: dict[int, int] = {}
    seen = asyncio.Event()

    async def listen() -> None:
        async for event in events:
            arrived[event.data["seq"]] = time.perf_counter_ns()
            seen.set()

    listening = asyncio.create_task(listen())
    await asyncio.sleep(0.3)  # subscribed on both ends
    samples = []
    try:
        for i in range(n):
            fact = {"kind": "message.user", "text": f"note {i}"}
            seen.clear()
            start = time.perf_counter_ns()
            seq = (await appender.call("session.append", {"id": session, "fact": fact}))["seq"]
            async with asyncio.timeout(10):
                while seq not in arrived:
                    await seen.wait()
                    seen.clear()
            samples.append(arrived[seq] - start)
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
        await events.aclose()
    return samples


# -- (3) failover ----------------------------------------------------------------------
async def _failover(ctx: Context, nodes: list[NodeProcess]) -> Result:
    a, b, _ = nodes
    trials = ctx.scale(3, 1)
    seconds: list[float] = []
    async with a.client() as client:
        agent = await _agent(client, "failing", f"node:{b.id}")
        for trial in range(trials):
            ctx.progress(f"failover {trial + 1}/{trials}: kill -9 of node B mid-command")
            session = await _session(client, agent)
            await client.call(
                "session.dispatch", {"id": session, "message": "sleep", "wait": False}
            )
            async with asyncio.timeout(20):
                while not any(  # noqa: ASYNC110 - another process
                    e["fact"]["kind"] == "tool.call"
                    for e in await client.call("session.history", {"id": session})
                ):
                    await asyncio.sleep(0.02)
            killed = time.monotonic()
            await asyncio.to_thread(b.kill)
            async with asyncio.timeout(NODE_TTL * 4 + 10):
                while (await client.call("session.get", {"id": session}))["status"] != "idle":  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            seconds.append(time.monotonic() - killed)
            await asyncio.to_thread(b.start)
    return Result(
        "3 nodes, kill -9 of the running node",
        "failover time (kill -> session recovered), max",
        max(seconds),
        "s",
        Target("<=", NODE_TTL + CLAIM_INTERVAL),
        samples=len(seconds),
        note=f"AOS_NODE_TTL={NODE_TTL:g}, AOS_CLAIM_INTERVAL={CLAIM_INTERVAL:g}; "
        f"each: {', '.join(f'{s:.2f}' for s in seconds)} s",
    )


# -- (4) appends across nodes -------------------------------------------------------------
async def _appends(ctx: Context, nodes: list[NodeProcess]) -> list[Result]:
    duration = ctx.scale(3, 1)
    rates: dict[int, float] = {}
    for count in (1, 3):
        ctx.progress(f"{CLIENTS} clients appending for {duration} s through {count} node(s)")
        rates[count] = await _append_rate(nodes[:count], duration)
    case = f"{CLIENTS} sessions, one client each"
    return [
        Result(case, "appends/s through 1 node", rates[1], "appends/s"),
        Result(case, "appends/s spread over 3 nodes", rates[3], "appends/s"),
        Result(
            case,
            "appends/s ratio, 3 nodes / 1 node",
            rates[3] / rates[1],
            "x",
            note="one database; the nodes, PostgreSQL and the clients share two cores",
        ),
    ]


async def _append_rate(nodes: list[NodeProcess], duration: float) -> float:
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(node.client()) for node in nodes]
        agent = await _agent(clients[0], f"appender{len(nodes)}", "any")
        sessions = [await _session(clients[0], agent) for _ in range(CLIENTS)]
        counts = [0] * CLIENTS
        deadline = time.monotonic() + duration

        async def append(i: int) -> None:
            client = clients[i % len(clients)]
            fact = {"kind": "message.user", "text": "x" * 80}
            while time.monotonic() < deadline:
                await client.call("session.append", {"id": sessions[i], "fact": fact})
                counts[i] += 1

        start = time.monotonic()
        await asyncio.gather(*(append(i) for i in range(CLIENTS)))
        return sum(counts) / (time.monotonic() - start)
