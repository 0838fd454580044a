"""The in-process hook runner's own cost, with hooks that do nothing.

(a) a gate chain of 5 implementations on ``tool.before`` that return ``output``
unchanged, called through :meth:`HookRunner.gate`: p50/p99 per call (target
p50 <= 10 µs); for comparison a bare pluggy call of the same 5 implementations
(``pm.hook.tool_before(...)``: no timeouts, no validation, no awaiting) and the
same chain with 5 coroutine implementations;
(b) a notify fan-out to 5 implementations of ``history.append``: what
:meth:`HookRunner.notify` costs its caller, and the time until all 5 ran
(``notify`` then ``await runner.drain()``).

The runners are built with ``log=None, trace=False``. The cases run in
alternating rounds so that they are compared under the same machine state.
Every figure includes the timer's own floor (two clock reads around an awaited
coroutine), reported as ``empty await``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from _harness import Context, Result, micro_results, now_ns, time_each

from aos.hooks import HookRunner
from aos.hookspecs import hookimpl
from aos.plugins import AOSPluginManager

NAME = "hooks"
DESCRIPTION = (
    "hook runner overhead: a 5-impl tool.before gate chain (vs bare pluggy, vs async impls) "
    "and a 5-impl history.append notify fan-out"
)

CHAIN = 5
ROUNDS = 4
GATE_P50_US = 10.0

GATE_INPUT: dict[str, Any] = {"session_id": "ses_bench", "agent_id": "agt_bench", "call_id": "c1"}
EVENT: dict[str, Any] = {
    "session_id": "ses_bench",
    "agent_id": "agt_bench",
    "seq": 1,
    "ts": 0.0,
    "fact": {"kind": "message.user", "text": "x", "sender": "user"},
}


def bash_output() -> dict[str, Any]:
    return {"tool": "bash", "args": {"command": "ls", "timeout": 5.0}, "cwd": "/tmp", "env": {}}


def _plugin(**impls: Callable[..., Any]) -> object:
    """A plugin object whose attributes are the given hookimpl functions."""
    return type("Plugin", (), {name: staticmethod(fn) for name, fn in impls.items()})()


def _sync_gate_plugin() -> object:
    @hookimpl
    def tool_before(input: Any, output: dict[str, Any]) -> dict[str, Any]:
        return output

    return _plugin(tool_before=tool_before)


def _async_gate_plugin() -> object:
    @hookimpl
    async def tool_before(input: Any, output: dict[str, Any]) -> dict[str, Any]:
        return output

    return _plugin(tool_before=tool_before)


def _notify_plugin(ran: list[int]) -> object:
    @hookimpl
    def history_append(event: Any) -> None:
        ran[0] += 1

    return _plugin(history_append=history_append)


def _runner(make: Callable[[], object]) -> HookRunner:
    pm = AOSPluginManager()
    for i in range(CHAIN):
        pm.register(make(), name=f"bench-{i}")
    return HookRunner(pm, log=None, trace=False)


async def run(ctx: Context) -> list[Result]:
    sync_runner = _runner(_sync_gate_plugin)
    async_runner = _runner(_async_gate_plugin)
    ran = [0]
    notify_runner = _runner(lambda: _notify_plugin(ran))
    for runner, hook in (
        (sync_runner, "tool.before"),
        (async_runner, "tool.before"),
        (notify_runner, "history.append"),
    ):
        if len(runner.impls(hook)) != CHAIN:
            raise RuntimeError(f"expected {CHAIN} implementations of {hook}")

    n, warmup = ctx.scale(20_000, 2_000), ctx.scale(2_000, 200)
    output = bash_output()
    caller = sync_runner.pm.hook.tool_before

    async def empty(_: int) -> None:
        return None

    async def gate_sync(_: int) -> None:
        if await sync_runner.gate("tool.before", GATE_INPUT, output) is not output:
            raise RuntimeError("the sync gate chain changed its output")

    async def gate_async(_: int) -> None:
        if await async_runner.gate("tool.before", GATE_INPUT, output) is not output:
            raise RuntimeError("the async gate chain changed its output")

    async def bare_pluggy(_: int) -> None:
        if len(caller(input=GATE_INPUT, output=output)) != CHAIN:
            raise RuntimeError("the bare pluggy call did not reach every implementation")

    queued: list[int] = []
    completed: list[int] = []

    async def notify(i: int) -> None:
        start = now_ns()
        notify_runner.notify("history.append", EVENT)
        returned = now_ns()
        await notify_runner.drain()
        done = now_ns()
        if i >= warmup:  # time_each's timed calls are numbered from warmup on
            queued.append(returned - start)
            completed.append(done - start)

    cases: dict[str, Callable[[int], Awaitable[None]]] = {
        "empty": empty,
        "gate sync": gate_sync,
        "pluggy": bare_pluggy,
        "gate async": gate_async,
        "notify": notify,
    }
    per_round = n // ROUNDS
    ctx.progress(f"{len(cases)} cases x {ROUNDS} rounds x {per_round} calls after {warmup} warm-up")
    samples: dict[str, list[int]] = {name: [] for name in cases}
    for _ in range(ROUNDS):
        for name, op in cases.items():
            samples[name] += await time_each(op, per_round, warmup=warmup)
    expected_runs = ROUNDS * (warmup + per_round) * CHAIN
    if ran[0] != expected_runs:  # the work was not done: not a figure
        raise RuntimeError(f"notify ran {ran[0]} implementations, expected {expected_runs}")

    chain = f"{CHAIN} sync impls"
    return [
        *micro_results("floor", "empty await", samples["empty"], note="timer + await floor"),
        *micro_results(
            chain,
            "HookRunner.gate",
            samples["gate sync"],
            target_p50_us=GATE_P50_US,
            note="tool.before, each impl returns output unchanged",
        ),
        *micro_results(chain, "bare pluggy call", samples["pluggy"], note="pm.hook.tool_before"),
        *micro_results(f"{CHAIN} async impls", "HookRunner.gate", samples["gate async"]),
        *micro_results(f"{CHAIN} notify impls", "notify, caller", queued),
        *micro_results(
            f"{CHAIN} notify impls", "notify until all ran", completed, note="notify + drain()"
        ),
    ]
