"""The sandbox's cost: a command's start, sandboxed and not.

Both cases run the same ``run_bash("true")`` through a real spawner: the
node's unsandboxed one, and the spawner inside a bubblewrap sandbox of one
workspace (built as the kernel builds it, ``aos.sandbox.Layout``). The
sandbox is built before the timed calls, as it is after a workspace's first
command; building it is reported apart. Target: the sandboxed p50 at most 2x
the unsandboxed p50. The cases run in alternating rounds, so both see the
same machine state.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from _harness import Context, Result, Target, latency_results, now_ns, percentile, time_each

from aos.bash import run_bash
from aos.sandbox import Layout, probe
from aos.spawner import Spawner

NAME = "sandbox"
DESCRIPTION = "bash command start: in a bubblewrap sandbox vs unsandboxed (p50 ratio <= 2)"

ROUNDS = 4
RATIO = 2.0
ENV = {"PATH": os.defpath, "LANG": "C.UTF-8"}


async def _true(spawner: Spawner, workspace: str) -> None:
    result = await run_bash(
        "true", spawner=spawner, cwd=workspace, env=ENV, time_limit=30, output_cap=1024
    )
    if result.exit_code != 0:
        raise RuntimeError(f"`true` ended {result.status}: {result.output}")


async def run(ctx: Context) -> list[Result]:
    isolation = probe("auto")
    if not isolation.available or isolation.bwrap is None:
        reason = isolation.problem
        return [
            Result.skip("sandboxed", "command start p50", "ms", reason),
            Result.skip("ratio", "sandboxed / unsandboxed p50", "x", reason),
        ]
    with tempfile.TemporaryDirectory(prefix="aos-bench-") as home:
        workspace = Path(home) / "workspace"
        workspace.mkdir()
        layout = Layout.of(readable=[], hidden=[Path(home) / "state"], agent_socket=None)
        plain = Spawner()
        boxed = Spawner(layout.argv(isolation.bwrap, str(workspace), "on"))
        builds: list[int] = []
        try:
            for _ in range(ctx.scale(5, 2)):  # building a sandbox: its first command's extra
                start = now_ns()
                await boxed.start()
                builds.append(now_ns() - start)
                await boxed.aclose()
            await plain.start()
            n, warmup = ctx.scale(2000, 200), 50
            per_round = n // ROUNDS
            ctx.progress(f"2 cases x {ROUNDS} rounds x {per_round} commands")
            samples: dict[str, list[int]] = {"plain": [], "boxed": []}
            for _ in range(ROUNDS):
                samples["plain"] += await time_each(
                    lambda _: _true(plain, str(workspace)), per_round, warmup=warmup
                )
                samples["boxed"] += await time_each(
                    lambda _: _true(boxed, str(workspace)), per_round, warmup=warmup
                )
        finally:
            await plain.aclose()
            await boxed.aclose()
    ratio = percentile(samples["boxed"], 50) / percentile(samples["plain"], 50)
    return [
        *latency_results("unsandboxed", "command start to exit", samples["plain"]),
        *latency_results(
            "sandboxed",
            "command start to exit",
            samples["boxed"],
            note="bubblewrap sandbox already built",
        ),
        Result(
            case="ratio",
            figure="sandboxed / unsandboxed p50",
            value=ratio,
            unit="x",
            target=Target("<=", RATIO),
            samples=len(samples["boxed"]),
        ),
        Result(
            case="sandboxed",
            figure="building a sandbox p50",
            value=percentile(builds, 50) / 1e6,
            unit="ms",
            samples=len(builds),
            note="bubblewrap + the spawner's start: once per workspace",
        ),
    ]
