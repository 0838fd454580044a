"""The ReAct step: kernel overhead per step, 200 sessions at once, context assembly.

The scripted model is :class:`aos.testing.ScriptedLLM` (aiohttp, real SSE)
answering every request with one ``bash`` call of ``true`` (after ``delay``),
run in a child process of its own (``bench_react.py --serve DELAY``): in a
thread of the benchmark's process it shares the GIL with the kernel and adds
its own CPU to the kernel's figures (about 0.7 ms per step and 3 ms per model
round trip when tried).

(1) Kernel overhead per step, on SQLite and on PostgreSQL. An in-process
    :class:`Kernel` (``load_plugins=True``: aos-context provides
    ``session.assemble``; no skill roots and no daemon, so no service hooks)
    runs dispatches of K steps (the agent's ``max_steps`` is K: each ends
    ``max_steps``). One step is the time between two consecutive model requests
    of a dispatch arriving at the scripted model (its ``time.monotonic()``
    stamps): the reply streamed back, compute.after, the assistant fact,
    tool.before, ``bash -c true``, the tool.call and tool.result facts,
    tool.after, the RuntimeLog records, the phase updates, the next assembly,
    compute.before and the next request sent. After each dispatch, the same
    loop replays the dispatch's own model requests (their exact bodies) through
    the kernel's ``LLMClient``, each after an ``aos.bash.run_bash("true")``:
    the rhythm of a dispatch without the kernel's work (back to back, the
    processes would stay hot and the model look faster than in a dispatch).
    Kernel overhead per step =
    p50(step) - p50(model round trip) - p50(bash): subtracted are the model
    (the scripted server and the LLM client's work of sending, streaming and
    parsing) and the command; everything else the kernel does in a step stays
    (target p50 <= 1 ms SQLite, <= 1.5 ms PostgreSQL). A difference of p50s,
    not a p50 of differences. The first dispatches (the counting ones below and
    3 more) are warm-up.

    Its split, per step (info): the store and hook calls one step makes are
    counted (a dispatch of 5 steps minus one of 2, divided by 3); each store
    call kind is then timed alone, interleaved (``append_all`` of the step's
    own facts, ``update_session``, ``read_history`` of the last 3 facts,
    ``get_agent``, ``get_session``): store = sum of count x p50. RuntimeLog
    records are lazy (they ride along with a later commit, or go in a batch
    beside it) and nothing waits for them: their cost is in ``rest``. The
    store figure is what the step's store calls cost alone; in the step two of
    the commits overlap other work (the tool.call's runs with bash, the
    tool.result's with the next model call), so it can exceed the overhead,
    and ``rest`` be negative: the overlap. Gate
    hooks = count x p50 of ``kernel.hooks.gate`` on the step's chains; the
    ``session.assemble`` provider (aos-context, incremental) is timed through
    ``kernel.hooks.provide``. ``rest`` = overhead - store - gate hooks -
    provider: the step's own Python, scheduling, and how much slower the model
    round trip and bash are inside the loop than alone. The LLM client alone is
    ``LLMClient.complete`` of a step's request against its reply pre-rendered
    (a bare aiohttp handler in the same loop: its small share is included); it
    is inside the subtracted model round trip, so not in the overhead.

(2) The peer, on the same PostgreSQL server: LangGraph + ``AsyncPostgresSaver``
    (the optional ``bench`` extra), one step = an async node appending one
    message. Per round, one thread of K steps and one of 2K: per step = the
    difference of their ``ainvoke`` wall times / K, which holds all a step
    costs (its checkpoint write included, with the default async durability
    too, since ``ainvoke`` returns once the writes are done) without a
    thread's set-up: the mean per step that PERFORMANCE.md quotes for the peer.
    Also the node-to-node p50 (from the node's own timestamps), and both again
    with ``durability="sync"``. The ratio aos overhead / LangGraph per step
    (default durability) is the target (goal <= 0.6); the ratio against the
    node-to-node p50 is reported beside it. Skipped when the extra is not
    installed.

(3) 200 sessions x 10 steps at once, model latency 200 ms, SQLite, in a child
    process (``bench_react.py --scale``, so that its peak RSS is this work's
    alone): 200 sessions, then 200 ``kernel.start_dispatch`` started together
    and awaited. Wall time (target <= 3 s; ideal 10 x 0.2 s = 2 s), steps/s,
    peak RSS (``VmHWM``, target <= 300 MB; not ``ru_maxrss``, which survives
    ``execve`` and would report this benchmark process's peak; the scripted
    model's process is not counted), and the CPU the kernel's process, the
    command spawner with its bash children and the scripted model used
    meanwhile, and the CPU floor: that CPU over the usable CPUs, the least wall
    any schedule of this work could take
    on this machine. Then the floors, in the same child: the model alone (200
    tasks x 10 sequential ``LLMClient.complete``, same delay) and bash alone
    (200 tasks x 10 ``run_bash("true")``).

(4) Context assembly of a 10,000-fact history (dicts ``{seq, ts, fact}`` as
    ``kernel.history.view`` returns them: user turns, assistant tool calls,
    tool.call and tool.result facts, final answers) by aos-context's
    ``session_assemble`` itself, with a budget large enough that no compaction
    is proposed: a full rebuild (``rebuild=True``, target p50 <= 100 ms) and an
    incremental step (3 facts appended, then called again; target p50 <= 1 ms;
    10 batches of 100 from the same 10,000 facts). Also, without a target, how
    long ``json.dumps`` of the assembled messages takes: the LLM client encodes
    them into every request.

``--quick``: 3 dispatches of 10 steps, 50 sessions x 5 steps, 2,000 facts.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import os
import resource
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import aiohttp
import asyncpg
import msgspec
from _harness import (
    NS_PER_MS,
    Context,
    PgSchema,
    PostgresUnavailable,
    Result,
    Target,
    child_json,
    latency_results,
    machine_busy_s,
    micro_results,
    now_ns,
    peak_rss_mb,
    percentile,
    pg_schema,
    server_process,
    time_each,
    wait_quiet,
)
from aiohttp import web

from aos import reactunit
from aos.bash import BASH_TOOL, run_bash
from aos.config import Config, load_config
from aos.facts import (
    AssistantMessage,
    Fact,
    ToolCall,
    ToolCallRequest,
    ToolResult,
    Usage,
    UserMessage,
    fact_to_builtins,
)
from aos.kernel import Kernel
from aos.llm import LLMClient, LLMSettings
from aos.principals import ADMIN
from aos.session import SCB
from aos.skills.registry import available_skills_prompt
from aos.spawner import Spawner
from aos.testing import Reply, ScriptedLLM
from aos_stdskills.aos_context import session_assemble

NAME = "react"
DESCRIPTION = (
    "ReAct step: kernel overhead per step (SQLite, PostgreSQL, vs LangGraph+PostgresSaver), "
    "200 sessions x 10 steps at 200 ms model latency, context assembly of 10,000 facts"
)

HERE = Path(__file__).resolve()
MODEL = "bench-model"
COMMAND = "true"
CONTEXT_PROVIDER = "aos-context"

STEP_OVERHEAD_P50_MS = {"sqlite": 1.0, "postgres": 1.5}
LANGGRAPH_RATIO = 0.6
Durability = Literal["async", "sync"]
DURABILITY: tuple[Durability, ...] = ("async", "sync")
"""LangGraph's durability modes measured: its default, and a checkpoint per step
written before the next step runs (what the kernel does for every fact)."""
SCALE_WALL_S = 3.0
SCALE_RSS_MB = 300.0
ASSEMBLE_FULL_P50_MS = 100.0
ASSEMBLE_INCREMENTAL_P50_MS = 1.0

SCALE_DELAY_S = 0.2
BIG_BUDGET = 10**9
"""Tokens: no compaction is ever proposed."""

STORE_OPS = ("append_all", "update_session", "read_history", "get_agent", "get_session")
"""Store calls a step may make; those with a per-step count are timed."""
HOOK_OPS = ("gate", "provide", "notify")
GATES = ("compute.before", "compute.after", "tool.before", "tool.after")
COUNT_STEPS = (2, 5)
"""Dispatch lengths whose difference gives the calls one step makes."""


async def run(ctx: Context) -> list[Result]:
    results = _assembly_figures(ctx)
    sqlite, _ = await _step_case(ctx, "sqlite", None)
    results += sqlite
    results += await _postgres_and_peer(ctx)
    results += await _scale_figures(ctx)
    return results


# -- (1) kernel overhead per step --------------------------------------------------------
async def _postgres_and_peer(ctx: Context) -> list[Result]:
    try:
        async with pg_schema(ctx) as schema:
            results, overhead_ms = await _step_case(ctx, "postgres", schema)
    except PostgresUnavailable as exc:
        return [*_skipped_step("postgres", str(exc)), *_skipped_peer(str(exc))]
    try:
        async with pg_schema(ctx, "bench_lg") as schema:
            results += await _langgraph_figures(ctx, schema, overhead_ms)
    except PostgresUnavailable as exc:
        results += _skipped_peer(str(exc))
    return results


def _skipped_step(case: str, reason: str) -> list[Result]:
    target = Target("<=", STEP_OVERHEAD_P50_MS[case])
    return [Result.skip(case, "kernel overhead per step p50", "ms", reason, target)]


def _skipped_peer(reason: str) -> list[Result]:
    return [
        Result.skip("LangGraph + PostgresSaver", "step p50", "ms", reason),
        Result.skip(
            "postgres vs LangGraph",
            "ratio aos overhead / LangGraph step",
            "x",
            reason,
            Target("<=", LANGGRAPH_RATIO),
        ),
    ]


def kernel_config(tmp: Path, base_url: str, db_url: str | None, **extra: str) -> Config:
    environ = {"AOS_HOME": str(tmp), "AOS_MODEL": MODEL, "OPENROUTER_BASE_URL": base_url}
    if "AOS_SANDBOX" in os.environ:  # compare: AOS_SANDBOX=off python bench/run.py react
        environ["AOS_SANDBOX"] = os.environ["AOS_SANDBOX"]
    if db_url is not None:
        environ["AOS_DB_URL"] = db_url
    return load_config(environ={**environ, **extra}, cwd=tmp)


async def _step_case(
    ctx: Context, case: str, schema: PgSchema | None, **environ: str
) -> tuple[list[Result], float]:
    """The case's figures and its overhead p50 in ms (``environ``: more settings of
    the kernel, e.g. tracing for bench_telemetry)."""
    async with scripted_server(0.0) as llm:
        with tempfile.TemporaryDirectory(prefix="aos-bench-") as tmp:
            config = kernel_config(
                Path(tmp), llm.base_url, schema.url if schema else None, **environ
            )
            kernel = await Kernel.open(config, load_plugins=True)
            try:
                owners = [i.owner for i in kernel.hooks.impls("session.assemble")]
                if CONTEXT_PROVIDER not in owners:
                    raise RuntimeError(f"{CONTEXT_PROVIDER} does not provide session.assemble")
                return await _measure_steps(ctx, case, kernel, llm)
            finally:
                await kernel.close()


# -- the scripted model, in its own process ---------------------------------------------
@dataclass
class ScriptedServer:
    """A :class:`ScriptedLLM` answering every request with a ``bash`` call of
    ``true`` (after ``delay``), in a child process of its own."""

    process: asyncio.subprocess.Process
    base_url: str

    async def requests(self) -> list[tuple[float, dict[str, Any]]]:
        """``(time.monotonic() at arrival, body)`` of each request since the last call."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(b"dump\n")
        await self.process.stdin.drain()
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError("the scripted model's process is gone")
        return [(t, body) for t, body in json.loads(line)]


@contextlib.asynccontextmanager
async def scripted_server(delay: float) -> AsyncIterator[ScriptedServer]:
    async with server_process(
        str(HERE), "--serve", str(delay), what="the scripted model", limit=1 << 28
    ) as (process, base_url):  # a dump is one line
        yield ScriptedServer(process, base_url)


def serve(delay: float) -> None:
    """The scripted model's process: serve until stdin closes; ``dump`` answers
    one JSON line of the requests that arrived since the last dump."""
    llm = ScriptedLLM(default=Reply.tool_call(COMMAND, delay=delay)).start()
    print(llm.base_url, flush=True)
    seen = 0
    try:
        for line in sys.stdin:
            if line.strip() == "dump":
                new = llm.requests[seen:]
                seen += len(new)
                print(json.dumps([[r.time, r.body] for r in new]), flush=True)
    finally:
        llm.stop()


async def _new_session(kernel: Kernel, max_steps: int) -> SCB:
    agent = await kernel.syscall(
        ADMIN,
        "agent.create",
        {"name": f"bench-{time.monotonic_ns()}", "config": {"max_steps": max_steps}},
    )
    session = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]})
    return await kernel.store.get_session(session["id"])


async def _dispatch(kernel: Kernel, scb: SCB, steps: int) -> None:
    unit = await kernel.start_dispatch(ADMIN, scb, "bench: run `true` until stopped")
    outcome = await unit.task
    if outcome.status != "max_steps" or outcome.steps != steps:  # not the work: not a figure
        raise RuntimeError(f"dispatch ended {outcome.status} after {outcome.steps}: {outcome}")
    await kernel.flush_logs()
    await kernel.hooks.drain()


@contextlib.contextmanager
def counting(obj: object, names: tuple[str, ...]) -> Iterator[collections.Counter[str]]:
    """Count calls of ``obj``'s methods ``names`` (instance attributes shadow them)."""
    counts: collections.Counter[str] = collections.Counter()

    def counted(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return method(*args, **kwargs)

        return call

    for name in names:
        setattr(obj, name, counted(name, getattr(obj, name)))
    try:
        yield counts
    finally:
        for name in names:
            delattr(obj, name)


@contextlib.contextmanager
def timing(obj: object, name: str, samples: list[int]) -> Iterator[None]:
    """Record the ns of each awaited call of ``obj.name`` (an instance or module
    attribute, put back afterwards)."""
    method = getattr(obj, name)
    shadowed = name in vars(obj)

    async def call(*args: Any, **kwargs: Any) -> Any:
        start = now_ns()
        try:
            return await method(*args, **kwargs)
        finally:
            samples.append(now_ns() - start)

    setattr(obj, name, call)
    try:
        yield
    finally:
        if shadowed:
            setattr(obj, name, method)
        else:
            delattr(obj, name)


async def _calls_per_step(kernel: Kernel) -> dict[str, float]:
    """``store.<op>`` and ``hooks.<op>``: calls one step makes (a longer dispatch minus
    a shorter one, per extra step)."""
    totals: list[collections.Counter[str]] = []
    for steps in COUNT_STEPS:
        scb = await _new_session(kernel, steps)
        with counting(kernel.store, STORE_OPS) as store, counting(kernel.hooks, HOOK_OPS) as hooks:
            await _dispatch(kernel, scb, steps)
        both = collections.Counter({f"store.{k}": v for k, v in store.items()})
        both.update({f"hooks.{k}": v for k, v in hooks.items()})
        totals.append(both)
    extra = COUNT_STEPS[1] - COUNT_STEPS[0]
    keys = set(totals[0]) | set(totals[1])
    return {k: (totals[1][k] - totals[0][k]) / extra for k in sorted(keys)}


async def _measure_steps(
    ctx: Context, case: str, kernel: Kernel, llm: ScriptedServer
) -> tuple[list[Result], float]:
    steps_per = ctx.scale(20, 10)
    rounds, warmup = ctx.scale(15, 3), 3
    per_step = await _calls_per_step(kernel)

    limits = kernel.config.aoscb.limits
    env = {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}
    step_ns: list[int] = []
    model_ns: list[int] = []
    bash_ns: list[int] = []
    requests: list[dict[str, Any]] = []
    scb: SCB | None = None

    def no_delta(kind: str, text: str) -> None:
        return None

    ctx.progress(
        f"{case}: {warmup} + {rounds} dispatches of {steps_per} steps, each followed by "
        f"its {steps_per} model requests replayed and {steps_per} x bash {COMMAND}"
    )
    for r in range(warmup + rounds):
        keep = r >= warmup
        scb = await _new_session(kernel, steps_per)
        await llm.requests()  # forget the earlier ones
        gc.collect()
        await _dispatch(kernel, scb, steps_per)
        arrived = await llm.requests()
        if len(arrived) != steps_per:
            raise RuntimeError(f"{len(arrived)} model requests for {steps_per} steps")
        bodies = [body for _, body in arrived]
        workspace = kernel.config.paths.data_dir / "workspaces" / scb.agent_id
        # In the loop's own rhythm: bash, then the model, step after step (the
        # processes wake as they do in a dispatch, not hot from a tight loop).
        for body in bodies:
            start = now_ns()
            result = await run_bash(
                COMMAND,
                spawner=kernel.sandboxes.spawner_for(str(workspace)),
                cwd=str(workspace),
                env=env,
                time_limit=limits.tool_timeout,
                output_cap=limits.tool_output_cap,
            )
            elapsed = now_ns() - start
            if result.exit_code != 0:
                raise RuntimeError(f"bash {COMMAND} exited {result.exit_code}")
            if keep:
                bash_ns.append(elapsed)
            start = now_ns()
            done = await kernel.llm.complete(
                model=body["model"],
                messages=body["messages"],
                tools=body.get("tools"),
                params={},
                on_delta=no_delta,
            )
            elapsed = now_ns() - start
            if [json.loads(c.arguments)["command"] for c in done.tool_calls] != [COMMAND]:
                raise RuntimeError(f"replayed request answered {done}")
            if keep:
                model_ns.append(elapsed)
        if keep:
            step_ns += [round((b - a) * 1e9) for (a, _), (b, _) in pairwise(arrived)]
            requests = bodies
    assert scb is not None

    # Diagnosis, not in the figure above: the model and bash as timed inside the loop.
    inside = ctx.scale(3, 1)
    ctx.progress(f"{case}: {inside} more dispatches timing the model call and bash inside")
    model_inside: list[int] = []
    bash_inside: list[int] = []
    with timing(kernel.llm, "complete", model_inside), timing(reactunit, "run_bash", bash_inside):
        for _ in range(inside):
            await _dispatch(kernel, await _new_session(kernel, steps_per), steps_per)

    store_est, store_notes = await _store_split(ctx, case, kernel, scb, per_step)
    hooks_est, provider_ns, hooks_notes = await _hooks_split(ctx, kernel, scb, per_step)
    client_ns = await _client_alone(ctx, llm, requests[len(requests) // 2])

    p50_step, p50_model, p50_bash = (
        percentile(s, 50.0) / NS_PER_MS for s in (step_ns, model_ns, bash_ns)
    )
    overhead = p50_step - p50_model - p50_bash
    provider_ms = percentile(provider_ns, 50.0) / NS_PER_MS * per_step.get("hooks.provide", 0)
    rest = overhead - store_est - hooks_est - provider_ms
    results = [
        *latency_results(
            case,
            "step",
            step_ns,
            note=f"between consecutive model requests of a dispatch ({steps_per} steps each)",
        ),
        *latency_results(
            case,
            "model round trip (subtracted)",
            model_ns,
            note="the dispatch's own requests replayed through kernel.llm.complete",
        ),
        *latency_results(case, f"bash {COMMAND} (subtracted)", bash_ns, note="run_bash alone"),
        Result(
            case=case,
            figure="kernel overhead per step p50",
            value=overhead,
            unit="ms",
            target=Target("<=", STEP_OVERHEAD_P50_MS[case]),
            samples=len(step_ns),
            note="p50(step) - p50(model round trip) - p50(bash)",
        ),
        Result(
            case=case,
            figure="  of which store (est.)",
            value=store_est,
            unit="ms",
            note=f"{store_notes} (timed alone; in the step the tool.call and tool.result "
            "commits overlap bash and the next model call)",
        ),
        Result(
            case=case,
            figure="  of which gate hooks (est.)",
            value=hooks_est,
            unit="ms",
            note=hooks_notes,
        ),
        Result(
            case=case,
            figure="  of which session.assemble provider",
            value=provider_ms,
            unit="ms",
            note=f"{CONTEXT_PROVIDER}, incremental, p50 x {per_step.get('hooks.provide', 0):g}",
        ),
        Result(
            case=case,
            figure="  of which rest",
            value=rest,
            unit="ms",
            note="overhead - store - gate hooks - provider: the step's own Python and scheduling",
        ),
        *latency_results(
            case,
            "model round trip inside the loop",
            model_inside,
            note="diagnosis: kernel.llm.complete timed inside the dispatch (not subtracted)",
        ),
        *latency_results(
            case,
            "bash + tool.call fact inside the loop",
            bash_inside,
            note="diagnosis: run_bash timed inside the dispatch, its on_start append included",
        ),
        *micro_results(
            case,
            "LLM client alone (in the model round trip)",
            client_ns,
            note="LLMClient.complete of a step's request against a pre-rendered reply",
        ),
    ]
    return results, overhead


async def _store_split(
    ctx: Context, case: str, kernel: Kernel, scb: SCB, per_step: dict[str, float]
) -> tuple[float, str]:
    """Each per-step store call timed alone, interleaved: sum of count x p50 (ms), a note."""
    store = kernel.store
    history = await store.read_history(scb.id)
    step = (AssistantMessage, ToolCall, ToolResult)
    facts: Sequence[Fact] = [e.fact for e in history if isinstance(e.fact, step)][-3:]
    phases = ("assemble", "compute", "tool")
    current = await store.get_session(scb.id)
    last = history[-1].seq
    samples: dict[str, list[int]] = {op: [] for op in STORE_OPS}

    async def one_of_each(i: int) -> None:
        nonlocal current, last
        t0 = now_ns()
        # A step commits the assistant reply with the tool.call, then the tool.result.
        last = (await store.append_all(scb.id, facts[:2] if i % 2 else facts[2:]))[-1]
        t1 = now_ns()
        current = await store.update_session(
            msgspec.structs.replace(current, phase=phases[i % len(phases)])
        )
        t2 = now_ns()
        read = await store.read_history(scb.id, after=last - 3)
        t3 = now_ns()
        await store.get_agent(scb.agent_id)
        t4 = now_ns()
        await store.get_session(scb.id)
        t5 = now_ns()
        if len(read) != 3:
            raise RuntimeError(f"read {len(read)} facts, expected 3")
        for op, ns in zip(STORE_OPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            samples[op].append(ns)

    n, warmup = ctx.scale(1000, 200), 200
    ctx.progress(f"{case}: store calls alone, interleaved: {n} rounds after {warmup}")
    await time_each(one_of_each, n, warmup=warmup)
    total = 0.0
    notes = []
    for op in STORE_OPS:
        count = per_step.get(f"store.{op}", 0)
        if not count:
            continue
        p50 = percentile(samples[op][warmup:], 50.0) / NS_PER_MS
        total += count * p50
        notes.append(f"{count:g} x {op} {p50 * 1000:.0f} µs")
    untimed = [
        k for k, v in per_step.items() if k.startswith("store.") and v and k[6:] not in STORE_OPS
    ]
    if untimed:
        notes.append(f"untimed: {', '.join(untimed)}")
    return total, "; ".join(notes)


async def _hooks_split(
    ctx: Context, kernel: Kernel, scb: SCB, per_step: dict[str, float]
) -> tuple[float, list[int], str]:
    """The step's gate chains (count x p50, ms), the provider's samples, a note."""
    active = await kernel.agents.active_skills(scb.agent_id, scb.id)
    scope = {"session_id": scb.id, "agent_id": scb.agent_id, "step": 1, "call_id": "call_1_0"}
    outputs: dict[str, dict[str, Any]] = {
        "compute.before": {"messages": [], "model": MODEL, "params": {}, "tools": [BASH_TOOL]},
        "compute.after": {
            "content": "",
            "reasoning": "",
            "tool_calls": [],
            "finish_reason": "tool_calls",
        },
        "tool.before": {"tool": "bash", "args": {"command": COMMAND}, "cwd": "/tmp", "env": {}},
        "tool.after": {"output": "", "exit_code": 0, "status": "ok"},
    }
    n, warmup = ctx.scale(5000, 500), 200
    gate_ns: list[int] = []
    for hook in GATES:
        gate_ns += await time_each(
            lambda _, h=hook: kernel.hooks.gate(h, scope, dict(outputs[h]), active=active),
            n // len(GATES),
            warmup=warmup,
        )
    impls = sum(1 for h in GATES for i in kernel.hooks.impls(h) if i.owner in active)
    skills = kernel.skills.active(sorted(active))
    request = {
        "session_id": scb.id,
        "agent_id": scb.agent_id,
        "history": await kernel.history.view(scb.id),
        "skills": [{"name": s.name, "description": s.description} for s in skills],
        "skills_prompt": available_skills_prompt(skills),
        "budget": kernel.config.aoscb.limits.context_budget,
        "model": MODEL,
        "rebuild": False,
    }
    provider_ns = await time_each(
        lambda _: kernel.hooks.provide("session.assemble", request, active=active),
        ctx.scale(2000, 300),
        warmup=warmup,
    )
    count = per_step.get("hooks.gate", 0)
    p50 = percentile(gate_ns, 50.0) / NS_PER_MS
    note = f"{count:g} x gate {p50 * 1000:.1f} µs ({impls} implementations in the step's chains)"
    if per_step.get("hooks.notify"):
        note += f"; {per_step['hooks.notify']:g} notify untimed"
    return count * p50, provider_ns, note


async def _client_alone(ctx: Context, llm: ScriptedServer, body: dict[str, Any]) -> list[int]:
    """``LLMClient.complete`` of ``body`` against its reply pre-rendered, served by a
    bare aiohttp handler in this loop (no scripting, no other process)."""
    async with aiohttp.ClientSession() as raw:
        async with raw.post(f"{llm.base_url}/chat/completions", json=body) as response:
            rendered = await response.read()

    async def canned(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=rendered, content_type="text/event-stream")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", canned)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    settings = LLMSettings(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}/v1")
    try:
        async with LLMClient(settings) as client:

            async def complete(_: int) -> None:
                done = await client.complete(
                    model=body["model"],
                    messages=body["messages"],
                    tools=body.get("tools"),
                    params={},
                )
                if not done.tool_calls:
                    raise RuntimeError(f"the pre-rendered reply gave {done}")

            n = ctx.scale(2000, 300)
            ctx.progress(
                f"LLM client alone: {n} completes of a {len(body['messages'])}-message request"
            )
            return await time_each(complete, n, warmup=200)
    finally:
        await runner.cleanup()


# -- (2) the peer: LangGraph + PostgresSaver ------------------------------------------------
async def _langgraph_figures(
    ctx: Context, schema: PgSchema, aos_overhead_ms: float
) -> list[Result]:
    try:
        from langchain_core.messages import (  # pyright: ignore[reportMissingImports]
            AIMessage,
            HumanMessage,
        )
        from langgraph.checkpoint.postgres.aio import (  # pyright: ignore[reportMissingImports]
            AsyncPostgresSaver,
        )
        from langgraph.graph import (  # pyright: ignore[reportMissingImports]
            END,
            START,
            MessagesState,
            StateGraph,
        )
        from psycopg.conninfo import make_conninfo  # pyright: ignore[reportMissingImports]
    except ImportError as exc:
        return _skipped_peer(f"install the bench extra (pip install -e '.[bench]'): {exc}")

    steps_per = ctx.scale(20, 10)
    rounds, warmup = ctx.scale(15, 3), 1
    stamps: list[int] = []
    limit = [0]
    """Steps of the thread being run."""

    # Plain annotations: LangGraph evaluates them, and this module's are strings
    # naming things imported in this function.
    async def step(state: Any) -> dict[str, Any]:
        stamps.append(now_ns())
        return {"messages": [AIMessage(content=f"ran `{COMMAND}`: exit 0")]}

    def more(state: Any) -> str:
        return "step" if len(state["messages"]) <= limit[0] else END

    builder = StateGraph(MessagesState)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", more)

    conn = await asyncpg.connect(schema.dsn, timeout=10)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema.name}"')
    finally:
        await conn.close()
    ctx.progress(
        f"LangGraph + AsyncPostgresSaver: {warmup} + {rounds} rounds of a thread of "
        f"{steps_per} steps and one of {2 * steps_per}, per durability mode"
    )
    node_ns: dict[str, list[int]] = {mode: [] for mode in DURABILITY}
    slope_ns: dict[str, list[int]] = {mode: [] for mode in DURABILITY}
    # LangGraph's own way to connect (autocommit, prepare_threshold=0, dict rows),
    # working in the fresh schema.
    conninfo = make_conninfo(schema.dsn, options=f"-c search_path={schema.name}")
    async with AsyncPostgresSaver.from_conn_string(conninfo) as saver:
        await saver.setup()
        graph = builder.compile(checkpointer=saver)

        async def thread(mode: Durability, steps: int, name: str) -> int:
            stamps.clear()
            limit[0] = steps
            gc.collect()
            start = now_ns()
            await graph.ainvoke(
                {"messages": [HumanMessage(content="bench")]},
                {"configurable": {"thread_id": name}, "recursion_limit": steps * 2 + 10},
                durability=mode,
            )
            wall = now_ns() - start
            if len(stamps) != steps:
                raise RuntimeError(f"LangGraph ran {len(stamps)} steps, expected {steps}")
            return wall

        for r in range(warmup + rounds):
            for mode in DURABILITY:
                short = await thread(mode, steps_per, f"bench-{mode}-{r}-short")
                intervals = [b - a for a, b in pairwise(stamps)]
                long = await thread(mode, 2 * steps_per, f"bench-{mode}-{r}-long")
                if r >= warmup:
                    node_ns[mode] += intervals
                    slope_ns[mode].append((long - short) // steps_per)

    case = "LangGraph + PostgresSaver"
    per_step = percentile(slope_ns["async"], 50.0) / NS_PER_MS
    results: list[Result] = []
    for mode in DURABILITY:
        label = f"{case}, durability={mode}" + (" (default)" if mode == "async" else "")
        results += latency_results(
            label,
            "per step",
            slope_ns[mode],
            note=f"(ainvoke wall of {2 * steps_per} steps - of {steps_per}) / {steps_per}: "
            "everything a step costs, its checkpoint write included, without the thread's "
            "set-up",
        )
        results += latency_results(
            label,
            "node to node",
            node_ns[mode],
            note="between consecutive runs of the node (with async durability a step's "
            "checkpoint write is still going on then)",
        )
    node_p50 = percentile(node_ns["async"], 50.0) / NS_PER_MS
    results += [
        Result(
            case="postgres vs LangGraph",
            figure="ratio aos overhead / LangGraph step",
            value=aos_overhead_ms / per_step,
            unit="x",
            target=Target("<=", LANGGRAPH_RATIO),
            samples=len(slope_ns["async"]),
            note=f"aos kernel overhead per step p50 {aos_overhead_ms:.3f} ms / LangGraph "
            f"(default durability) per step p50 {per_step:.3f} ms",
        ),
        Result(
            case="postgres vs LangGraph",
            figure="ratio aos overhead / LangGraph node to node",
            value=aos_overhead_ms / node_p50,
            unit="x",
            samples=len(node_ns["async"]),
            note=f"against the node-to-node p50 {node_p50:.3f} ms (default durability), "
            "which leaves out the checkpoint writes still in flight",
        ),
    ]
    return results


# -- (3) many sessions at once -------------------------------------------------------------
async def _scale_figures(ctx: Context) -> list[Result]:
    sessions, steps = ctx.scale(200, 50), ctx.scale(10, 5)
    ctx.progress(
        f"scale: {sessions} sessions x {steps} steps at {SCALE_DELAY_S * 1000:.0f} ms model "
        "latency, in a child process (then the model and bash floors)"
    )
    f: dict[str, Any] = await child_json(
        str(HERE),
        "--scale",
        str(sessions),
        str(steps),
        str(SCALE_DELAY_S),
        what="the scale child",
    )
    total = sessions * steps
    case = f"{sessions} sessions x {steps} steps"
    full = sessions == 200 and steps == 10
    ideal = steps * SCALE_DELAY_S
    cpus = len(os.sched_getaffinity(0))
    cpu_floor = (f["cpu_self_s"] + f["cpu_children_s"] + f["cpu_server_s"]) / cpus

    def floor(what: str, key: str, note: str) -> Result:
        value = f[key]
        if value is None:
            return Result.skip(f"{case}, {what}", "wall", "s", note)
        return Result(
            case=f"{case}, {what}", figure="wall", value=value, unit="s", samples=total, note=note
        )

    return [
        Result(
            case=case,
            figure="wall",
            value=f["wall_s"],
            unit="s",
            target=Target("<=", SCALE_WALL_S) if full else None,
            samples=total,
            note=f"all dispatches started at once, SQLite; ideal {ideal:g} s "
            f"({steps} x {SCALE_DELAY_S:g} s model); the scripted model in its own process; "
            f"started once the machine was quiet (busy {f['busy_before']:.0%} of its CPUs)",
        ),
        Result(
            case=case, figure="steps/s", value=total / f["wall_s"], unit="steps/s", samples=total
        ),
        Result(
            case=case,
            figure="peak RSS",
            value=f["peak_rss_mb"],
            unit="MB",
            target=Target("<=", SCALE_RSS_MB) if full else None,
            note=f"VmHWM of the kernel's process ({f['rss_before_mb']:.0f} MB before the "
            "dispatches); the scripted model's process is not counted",
        ),
        Result(
            case=case,
            figure="dispatch p50",
            value=f["dispatch_p50_s"],
            unit="s",
            samples=sessions,
            note="start_dispatch -> outcome, per session",
        ),
        Result(
            case=case,
            figure="dispatch max",
            value=f["dispatch_max_s"],
            unit="s",
            samples=sessions,
            note="the slowest session's start_dispatch -> outcome",
        ),
        Result(
            case=case,
            figure="kernel process CPU",
            value=f["cpu_self_s"],
            unit="s",
            note=f"user+sys of the kernel's process during the run; the spawner with its bash children "
            f"{f['cpu_children_s']:.2f} s, the scripted model's process {f['cpu_server_s']:.2f} s",
        ),
        Result.skip(case, "other processes' CPU", "s", "no /proc/stat")
        if f["cpu_others_s"] is None
        else Result(
            case=case,
            figure="other processes' CPU",
            value=f["cpu_others_s"],
            unit="s",
            note="the machine's busy CPU during the run less the kernel's, the spawner's and the "
            "scripted model's: noise that a missed wall target may owe to",
        ),
        floor(
            "model alone",
            "model_wall_s",
            f"{sessions} tasks x {steps} sequential LLMClient.complete (as the kernel's), same delay",
        ),
        floor(
            "bash alone",
            "bash_wall_s",
            f"{sessions} tasks x {steps} sequential run_bash({COMMAND!r})",
        ),
        Result(
            case=case,
            figure="CPU floor",
            value=cpu_floor,
            unit="s",
            note=f"(kernel + bash children + scripted model CPU) / {cpus} usable CPUs: no "
            "schedule of this work finishes sooner on this machine",
        ),
    ]


def _cpu_of(pid: int, *, children: bool = False) -> float:
    """user+sys seconds of a live process (Linux ``/proc``), with ``children`` those
    of the children it has reaped too."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(field) for field in fields[11 : 15 if children else 13])
    return ticks / os.sysconf("SC_CLK_TCK")


def _spawnerd_of(pid: int) -> int:
    """The spawner process itself: ``pid``, or inside its sandbox (bubblewrap's
    descendant), whose children's CPU is the commands'."""
    for _ in range(4):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"bwrap" not in argv[0] and any(b"_spawnerd" in arg for arg in argv):
            return pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if not children:
            break
        pid = int(children[0])
    return pid


def _cpu_self() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


async def scale_child(sessions: int, steps: int, delay: float) -> dict[str, Any]:
    """In the child: the run, its peak RSS, then the model and bash floors."""
    figures: dict[str, Any] = {}
    async with scripted_server(delay) as llm:
        with tempfile.TemporaryDirectory(prefix="aos-bench-") as tmp:
            config = kernel_config(Path(tmp), llm.base_url, None, AOS_MAX_STEPS=str(steps))
            kernel = await Kernel.open(config, load_plugins=True)
            try:
                agent = await kernel.syscall(ADMIN, "agent.create", {"name": "bench"})
                scbs = []
                for _ in range(sessions):
                    made = await kernel.syscall(
                        ADMIN, "session.create", {"agent_id": agent["agent"]["id"]}
                    )
                    scbs.append(await kernel.store.get_session(made["id"]))
                workspace = kernel.config.paths.data_dir / "workspaces" / agent["agent"]["id"]
                workspace.mkdir(parents=True, exist_ok=True)
                gc.collect()
                figures["rss_before_mb"] = peak_rss_mb()

                async def one(scb: SCB) -> float:
                    start = now_ns()
                    unit = await kernel.start_dispatch(ADMIN, scb, "bench: run `true`")
                    outcome = await unit.task
                    if outcome.status != "max_steps" or outcome.steps != steps:
                        raise RuntimeError(f"dispatch ended {outcome.status}: {outcome}")
                    return (now_ns() - start) / 1e9

                box = kernel.sandboxes.spawner_for(str(workspace))
                await box.start()
                assert box.pid is not None
                spawner = _spawnerd_of(box.pid)
                figures["busy_before"] = await wait_quiet()
                machine = machine_busy_s()
                cpu_self = _cpu_self()
                cpu_children = _cpu_of(spawner, children=True)
                cpu_server = _cpu_of(llm.process.pid)
                start = now_ns()
                durations = await asyncio.gather(*(one(scb) for scb in scbs))
                figures["wall_s"] = (now_ns() - start) / 1e9
                figures["peak_rss_mb"] = peak_rss_mb()
                figures["cpu_self_s"] = _cpu_self() - cpu_self
                figures["cpu_children_s"] = _cpu_of(spawner, children=True) - cpu_children
                figures["cpu_server_s"] = _cpu_of(llm.process.pid) - cpu_server
                after = machine_busy_s()
                figures["cpu_others_s"] = (
                    None
                    if machine is None or after is None
                    else max(
                        0.0,
                        after
                        - machine
                        - figures["cpu_self_s"]
                        - figures["cpu_children_s"]
                        - figures["cpu_server_s"],
                    )
                )
                figures["dispatch_p50_s"] = percentile(durations, 50.0)
                figures["dispatch_max_s"] = max(durations)
                await kernel.flush_logs()

                figures["model_wall_s"] = await _concurrent_wall(
                    sessions, steps, lambda: _one_complete(kernel.llm)
                )
                env = {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}
                bash = str(workspace)
                figures["bash_wall_s"] = await _concurrent_wall(
                    sessions,
                    steps,
                    lambda: _one_bash(kernel.sandboxes.spawner_for(bash), bash, env),
                )
            finally:
                await kernel.close()
    return figures


async def _concurrent_wall(tasks: int, each: int, op: Callable[[], Awaitable[object]]) -> float:
    async def worker() -> None:
        for _ in range(each):
            await op()

    start = now_ns()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return (now_ns() - start) / 1e9


async def _one_complete(client: LLMClient) -> None:
    messages = [{"role": "user", "content": "bench: run `true`"}]
    done = await client.complete(model=MODEL, messages=messages, tools=[BASH_TOOL])
    if not done.tool_calls:
        raise RuntimeError(f"the scripted model answered {done}")


async def _one_bash(spawner: Spawner, cwd: str, env: dict[str, str]) -> None:
    result = await run_bash(
        COMMAND, spawner=spawner, cwd=cwd, env=env, time_limit=60, output_cap=32_768
    )
    if result.exit_code != 0:
        raise RuntimeError(f"bash {COMMAND} exited {result.exit_code}")


# -- (4) context assembly -----------------------------------------------------------------
def turn_facts(turn: int) -> list[Fact]:
    """One user turn: the ask, 4 tool calls with their results, the answer (14 facts)."""
    facts: list[Fact] = [UserMessage(text=f"turn {turn}: find why test_{turn} fails and fix it")]
    for i in range(4):
        facts += step_facts(turn, i)
    facts.append(
        AssistantMessage(
            text=f"Fixed test_{turn}: the fixture used a stale path. All tests pass now.",
            finish_reason="stop",
            model=MODEL,
            usage=Usage(prompt_tokens=1200, completion_tokens=40, total_tokens=1240),
        )
    )
    return facts


def step_facts(turn: int, i: int) -> list[Fact]:
    """One tool step: the assistant's call, the tool.call, the tool.result (3 facts)."""
    call_id = f"call_{turn}_{i}"
    command = f"grep -rn 'test_{turn}' tests/ src/ | head -n {20 + i}"
    output = "\n".join(
        f"tests/test_mod_{turn}.py:{10 * j + i}: def test_{turn}_{j}():" for j in range(4)
    )
    return [
        AssistantMessage(
            tool_calls=[ToolCallRequest(id=call_id, command=command)],
            finish_reason="tool_calls",
            model=MODEL,
            usage=Usage(prompt_tokens=1000, completion_tokens=30, total_tokens=1030),
        ),
        ToolCall(call_id=call_id, command=command, cwd="/work/project", timeout=120.0, pgid=4242),
        ToolResult(call_id=call_id, output=output, exit_code=0),
    ]


def synthetic_history(n: int) -> list[dict[str, Any]]:
    """``n`` facts as ``kernel.history.view`` returns them."""
    history: list[dict[str, Any]] = []
    turn = 0
    while len(history) < n:
        for fact in turn_facts(turn):
            history.append(
                {"seq": len(history) + 1, "ts": time.time(), "fact": fact_to_builtins(fact)}
            )
        turn += 1
    del history[n:]
    return history


def _assembly_figures(ctx: Context) -> list[Result]:
    facts = ctx.scale(10_000, 2_000)
    base = synthetic_history(facts)
    request: dict[str, Any] = {
        "session_id": f"ses_bench_context_{os.getpid()}",
        "agent_id": "agt_bench",
        "history": base,
        "skills": [],
        "skills_prompt": "",
        "budget": BIG_BUDGET,
        "model": MODEL,
        "rebuild": True,
    }

    def assemble(history: list[dict[str, Any]], rebuild: bool) -> list[dict[str, Any]]:
        result = session_assemble({**request, "history": history, "rebuild": rebuild})
        if "compaction" in result:
            raise RuntimeError("compaction proposed: the budget is not large enough")
        return result["messages"]

    repeats = ctx.scale(20, 5)
    ctx.progress(f"context: {facts:,} facts, {repeats} full rebuilds")
    messages = assemble(base, True)  # warm-up
    gc.collect()
    full: list[int] = []
    encode: list[int] = []
    for _ in range(repeats):
        start = now_ns()
        assemble(base, True)
        full.append(now_ns() - start)
        start = now_ns()
        json.dumps(messages)
        encode.append(now_ns() - start)

    # Batches from the same base, so that the history stays near its size:
    # an incremental call still walks the whole message list.
    batches, per_batch = ctx.scale(10, 3), 100
    ctx.progress(f"context: {batches} x {per_batch} incremental steps of 3 facts")
    incremental: list[int] = []
    for _ in range(batches):
        history = list(base)
        assemble(history, True)
        gc.collect()
        for i in range(per_batch):
            for fact in step_facts(10**6 + i, 0):
                history.append(
                    {"seq": len(history) + 1, "ts": time.time(), "fact": fact_to_builtins(fact)}
                )
            start = now_ns()
            got = assemble(history, False)
            incremental.append(now_ns() - start)
            if len(got) != len(messages) + 2 * (i + 1):  # not the work: not a figure
                raise RuntimeError(f"incremental step {i}: {len(got)} messages")

    case = f"context, {facts:,} facts"
    return [
        *latency_results(
            case,
            "full rebuild",
            full,
            targets_ms={"p50": ASSEMBLE_FULL_P50_MS},
            note=f"aos-context session_assemble(rebuild=True) -> {len(messages):,} messages",
        ),
        *latency_results(
            case,
            "incremental step",
            incremental,
            targets_ms={"p50": ASSEMBLE_INCREMENTAL_P50_MS},
            note=f"3 facts appended (assistant tool call, tool.call, tool.result), then called "
            f"again; up to {3 * per_batch} facts past the {facts:,}",
        ),
        *latency_results(
            case,
            "messages JSON-encoded",
            encode,
            note="json.dumps of the assembled messages: what the LLM client sends each step",
        ),
    ]


# -- the scale child's entry point ----------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bench_react's child processes (see run.py)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--scale", nargs=3, metavar=("SESSIONS", "STEPS", "DELAY"))
    which.add_argument("--serve", type=float, metavar="DELAY", help="the scripted model")
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return 0
    sessions, steps, delay = int(args.scale[0]), int(args.scale[1]), float(args.scale[2])
    print(json.dumps(asyncio.run(scale_child(sessions, steps, delay))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
