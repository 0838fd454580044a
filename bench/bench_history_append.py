"""Durable SessionHistory append on each backend.

(a) one writer appending sequentially to one session: latency p50/p99;
(b) 50 sessions appending concurrently (one asyncio task each): aggregate
appends/s over the wall clock of the whole run, plus the latency each append
saw under that load.

SQLite runs in a fresh temporary directory. PostgreSQL runs in a fresh schema
``bench_<random>`` of ``AOS_BENCH_DB_URL`` (else ``AOS_TEST_DB_URL``, else the
local default) that is dropped afterwards; an unreachable server is reported
as skipped.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from _harness import Context, Result, Stopwatch, Target, latency_results, now_ns, time_each

from aos.agent import ACB
from aos.config import mask_url
from aos.facts import UserMessage, encode_fact
from aos.ids import new_id
from aos.session import SCB
from aos.store import Store, StoreUnavailable, open_store

NAME = "history_append"
DESCRIPTION = "durable history append: one writer's latency, 50 concurrent sessions' appends/s"

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
FACT_BYTES = 100
SESSIONS = 50

LATENCY_P50_MS = {"sqlite": 0.4, "postgres": 0.5}
THROUGHPUT_PER_S = {"sqlite": 20_000.0, "postgres": 10_000.0}

LATENCY = "append latency"
LOADED = f"append latency, {SESSIONS} sessions"
THROUGHPUT = f"appends/s, {SESSIONS} sessions"

_UNREACHABLE = (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError)


def make_fact(size: int = FACT_BYTES) -> UserMessage:
    """A user message whose stored JSON (kind included) is ``size`` bytes."""
    overhead = len(encode_fact(UserMessage(text="")))
    words = "please summarise the build log and list every failing test by name " * 4
    return UserMessage(text=words[: max(0, size - overhead)])


async def run(ctx: Context) -> list[Result]:
    return [*await _sqlite(ctx), *await _postgres(ctx)]


# -- backends -----------------------------------------------------------------
async def _sqlite(ctx: Context) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="aos-bench-") as tmp:
        store = await open_store(f"sqlite://{Path(tmp) / 'aos.db'}")
        try:
            return await _measure(ctx, "sqlite", store)
        finally:
            await store.close()


def pg_url() -> str:
    return os.environ.get("AOS_BENCH_DB_URL") or os.environ.get("AOS_TEST_DB_URL") or DEFAULT_PG_URL


async def _postgres(ctx: Context) -> list[Result]:
    url = pg_url()
    dsn = _without_schema(url)
    schema = f"bench_{secrets.token_hex(6)}"
    try:
        probe = await asyncpg.connect(dsn, timeout=5)
        await probe.close()
    except _UNREACHABLE as exc:
        return _skipped("postgres", f"PostgreSQL unreachable at {mask_url(url)}: {exc}")
    ctx.progress(f"postgres: {mask_url(dsn)} schema {schema}")
    try:
        try:
            store = await open_store(dsn, schema=schema)
        except StoreUnavailable as exc:
            return _skipped("postgres", str(exc))
        try:
            return await _measure(ctx, "postgres", store)
        finally:
            await store.close()
    finally:
        try:
            await _drop_schema(dsn, schema)
        except _UNREACHABLE as exc:
            ctx.progress(f"warning: could not drop schema {schema}: {exc} (drop it by hand)")


def _without_schema(url: str) -> str:
    """The URL without an AOS ``?schema=`` (the benchmark brings its own schema)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def _skipped(case: str, reason: str) -> list[Result]:
    return [
        Result.skip(case, f"{LATENCY} p50", "ms", reason, Target("<=", LATENCY_P50_MS[case])),
        Result.skip(case, f"{LATENCY} p99", "ms", reason),
        Result.skip(case, THROUGHPUT, "appends/s", reason, Target(">=", THROUGHPUT_PER_S[case])),
        Result.skip(case, f"{LOADED} p50", "ms", reason),
        Result.skip(case, f"{LOADED} p99", "ms", reason),
    ]


# -- the measurements ---------------------------------------------------------
async def _measure(ctx: Context, case: str, store: Store) -> list[Result]:
    fact = make_fact()
    agent = await store.create_agent(ACB(id=new_id("agt"), name=f"bench-{secrets.token_hex(4)}"))

    async def new_session() -> str:
        scb = await store.create_session(SCB(id=new_id("ses"), agent_id=agent.id))
        return scb.id

    # (a) one writer, sequential appends to one session
    session = await new_session()
    # The warm-up is not scaled down: a fresh SQLite database's first few hundred
    # commits grow the WAL file and cost about twice the steady state.
    n, warmup = ctx.scale(2000, 300), 500
    ctx.progress(f"{case}: {n} sequential appends after {warmup} warm-up")
    samples = await time_each(lambda _: store.append(session, fact), n, warmup=warmup)
    results = latency_results(case, LATENCY, samples, targets_ms={"p50": LATENCY_P50_MS[case]})

    # (b) SESSIONS tasks, each appending to its own session
    sessions = [await new_session() for _ in range(SESSIONS)]
    per_task, warm = ctx.scale(1000, 50), ctx.scale(20, 10)
    ctx.progress(f"{case}: {SESSIONS} sessions x {per_task} concurrent appends")
    await _concurrently(sessions, lambda sid, _: store.append(sid, fact), warm)
    latencies: list[int] = []

    async def timed(sid: str, i: int) -> int:
        start = now_ns()
        seq = await store.append(sid, fact)
        latencies.append(now_ns() - start)
        return seq

    with Stopwatch() as sw:
        last = await _concurrently(sessions, timed, per_task)
    if any(seq != warm + per_task for seq in last):  # the work was not done: not a figure
        raise RuntimeError(f"{case}: expected every session to end at seq {warm + per_task}")
    total = SESSIONS * per_task
    results.append(
        Result(
            case=case,
            figure=THROUGHPUT,
            value=total / sw.seconds,
            unit="appends/s",
            target=Target(">=", THROUGHPUT_PER_S[case]),
            samples=total,
            note=f"{total} appends in {sw.seconds:.3f} s wall clock",
        )
    )
    results += latency_results(case, LOADED, latencies)
    return results


async def _concurrently(
    sessions: list[str], append: Callable[[str, int], Awaitable[int]], count: int
) -> list[int]:
    """One task per session appending ``count`` facts in order; each task's last seq."""

    async def writer(sid: str) -> int:
        seq = 0
        for i in range(count):
            seq = await append(sid, i)
        return seq

    return list(await asyncio.gather(*(writer(sid) for sid in sessions)))
