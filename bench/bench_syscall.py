"""In-process syscall dispatch overhead, the store excluded.

A real :class:`Kernel` (SQLite in a temporary ``AOS_HOME``, no plugins) with
one agent and one session made through syscalls. Interleaved in one loop (the
order of (a) and (b) alternating), so that both see the same machine state:

(a) ``kernel.syscall(ADMIN, "session.append", {"id", "fact"})`` — the whole
    boundary: scope check, params conversion, the handler (which reads the
    session with ``store.get_session`` and appends with ``store.append``), the
    RuntimeLog audit record queued as a background task, result to builtins;
(b) ``kernel.store.append(sid, UserMessage(text="x"))`` alone, the same row;
(c) ``kernel.store.get_session(sid)`` alone, the read (a) makes besides (b).

Overhead excluding the store = p50(a) - p50(b) - p50(c) (target <= 20 µs);
p50(a) - p50(b), which still holds the read (c), is reported too. Both are differences of two ~0.25 ms
commit latencies: their resolution is the commit's jitter (several µs).

The kernel audits every write syscall in RuntimeLog from a background task
(``kernel.log``). After every (a) that record is committed with ``await
kernel.flush_logs()`` outside the timed region (the commit is reported as its
own figure) so that no backlog of audit commits lands in the next timed call.
How a sequential caller fares when they do land there is ``back-to-back``:
batches of calls with no flush in between (``flush_logs`` between batches).

A store-free estimate times the dispatch pieces in a tight loop without I/O:
``principal.allows`` + ``_convert`` (msgspec params conversion) + the
``syscall.before`` lookup + ``msgspec.to_builtins`` of the result; and,
separately, queueing the audit record (``LogEntry`` + task creation; its commit
is not in the figure). In the real path each of these runs right after a
commit, when caches are colder: expect them to cost more there.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import msgspec
from _harness import (
    NS_PER_US,
    Context,
    Result,
    Target,
    micro_results,
    now_ns,
    percentile,
    time_each,
)

from aos.config import load_config
from aos.facts import UserMessage
from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.syscalls import SYSCALLS
from aos.syscalls._table import _audit, _convert
from aos.syscalls.session import Appended

NAME = "syscall"
DESCRIPTION = (
    "in-process syscall dispatch overhead (SQLite, no plugins): session.append via "
    "Kernel.syscall minus store.append, and the dispatch pieces alone"
)

OVERHEAD_P50_US = 20.0
BATCH = 100

APPEND = "session.append"
DIRECT = "direct, audit flushed"
BACK_TO_BACK = "back-to-back"
PIECES = "dispatch pieces"


async def run(ctx: Context) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="aos-bench-") as tmp:
        config = load_config(environ={"AOS_HOME": tmp}, cwd=Path(tmp))
        kernel = await Kernel.open(config, load_plugins=False)
        try:
            return await _measure(ctx, kernel)
        finally:
            await kernel.close()


async def _measure(ctx: Context, kernel: Kernel) -> list[Result]:
    agent = await kernel.syscall(ADMIN, "agent.create", {"name": "bench"})
    session = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]})
    sid: str = session["id"]
    params: dict[str, Any] = {"id": sid, "fact": {"kind": "message.user", "text": "x"}}
    fact = UserMessage(text="x")
    store = kernel.store

    # -- (a), (b), (c) interleaved, audit commits flushed after each (a) -------------
    # The warm-up is not scaled down: a fresh SQLite database's first few hundred
    # commits grow the WAL file and cost about twice the steady state.
    n, warmup = ctx.scale(3000, 300), 500
    full: list[int] = []
    alone: list[int] = []
    read: list[int] = []
    audit: list[int] = []

    async def syscall() -> int:
        t0 = now_ns()
        appended = await kernel.syscall(ADMIN, APPEND, params)
        t1 = now_ns()
        await kernel.flush_logs()
        t2 = now_ns()
        full.append(t1 - t0)
        audit.append(t2 - t1)
        return appended["seq"]

    async def store_append() -> int:
        t0 = now_ns()
        seq = await store.append(sid, fact)
        alone.append(now_ns() - t0)
        return seq

    async def interleaved(i: int) -> None:
        # Alternate which comes first: each follows a commit either way, but
        # not always the same kind of commit.
        if i % 2:
            first, second = await syscall(), await store_append()
        else:
            first, second = await store_append(), await syscall()
        t0 = now_ns()
        await store.get_session(sid)
        read.append(now_ns() - t0)
        if second != first + 1:  # the work was not done: not a figure
            raise RuntimeError(f"expected seq {first + 1}, got {second}")

    ctx.progress(f"sqlite: {n} x (syscall, audit flush, store.append, get_session) after {warmup}")
    await time_each(interleaved, n, warmup=warmup)
    # Each call recorded one sample of each; drop the warm-up's.
    full, audit, alone, read = (s[warmup:] for s in (full, audit, alone, read))

    # -- back-to-back: audit commits interleave with the next call's append ---------
    batches = max(1, n // BATCH)
    ctx.progress(f"sqlite: {batches} batches of {BATCH} back-to-back syscalls")
    back_to_back: list[int] = []
    for _ in range(batches):
        back_to_back += await time_each(lambda _: kernel.syscall(ADMIN, APPEND, params), BATCH)
        await kernel.flush_logs()

    # -- the dispatch pieces, no store -----------------------------------------------
    sc = SYSCALLS[APPEND]
    result = Appended(session_id=sid, seq=1)

    async def dispatch_pieces(_: int) -> None:
        if not ADMIN.allows(sc.scope):
            raise RuntimeError(f"ADMIN lacks {sc.scope}")
        _convert(sc, params)
        if kernel.hooks.impls("syscall.before"):
            raise RuntimeError("no syscall.before implementation expected")
        msgspec.to_builtins(result)

    async def audit_enqueue(_: int) -> None:
        _audit(kernel, ADMIN, APPEND, "ok")

    m = ctx.scale(20_000, 2_000)
    ctx.progress(f"dispatch pieces: {m} after {warmup} warm-up; audit enqueue in batches")
    pieces = await time_each(dispatch_pieces, m, warmup=warmup)
    enqueue: list[int] = []
    for _ in range(max(1, m // 10 // BATCH)):
        enqueue += await time_each(audit_enqueue, BATCH)
        await kernel.flush_logs()

    p50_a, p50_b, p50_c = (percentile(s, 50.0) / NS_PER_US for s in (full, alone, read))
    overhead = p50_a - p50_b
    return [
        *micro_results(DIRECT, f"(a) syscall {APPEND}", full),
        *micro_results(DIRECT, "(b) store.append", alone),
        *micro_results(DIRECT, "(c) store.get_session", read),
        Result(
            case=DIRECT,
            figure="overhead (a) - (b) p50",
            value=overhead,
            unit="µs",
            samples=len(full),
            note="difference of p50s; includes the get_session read (c)",
        ),
        Result(
            case=DIRECT,
            figure="overhead (a) - (b) - (c) p50",
            value=overhead - p50_c,
            unit="µs",
            target=Target("<=", OVERHEAD_P50_US),
            samples=len(full),
            note="difference of p50s: the dispatch without any store call",
        ),
        *micro_results(DIRECT, "audit commit (flush_logs)", audit),
        *micro_results(BACK_TO_BACK, f"syscall {APPEND}", back_to_back),
        *micro_results(
            PIECES,
            "allows+convert+gate lookup+to_builtins",
            pieces,
            note="store-free estimate of the dispatch",
        ),
        *micro_results(PIECES, "audit enqueue", enqueue, note="LogEntry + create_task"),
    ]
