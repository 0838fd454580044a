"""aos-mcp: a warm ``mcp call`` from the agent's bash, and what it adds to the context.

A real daemon runs in this event loop (``aos.testing.temporary_daemon``: SQLite
under a short temporary ``AOS_HOME``, ``AOS_DEFAULT_SKILLS=aos-context,
aos-skill,aos-mcp``), its model a :class:`ScriptedLLM`. The project's
``.mcp.json`` names ``tests/fixtures/mcp/demo_server.py`` (an MCP server built
with the official ``mcp`` package, over stdio). Once the aos-mcp service is
``running``, one dispatch's single bash call (in the agent's sandbox, when the
host has one) runs:

(1) ``mcp call demo add '{"a": 1, "b": 2}'`` 20 times to warm up (the first
    starts the server), then 200 times (``--quick`` 30), each timed in bash
    around it: the command's process start, its
    ``skill.call`` through the kernel to the service, the MCP round trip to
    the server, the ``mcp.call`` fact committed in the session, the answer
    printed. p50 (target <= 25 ms) and p99. Timed with bash's
    ``$EPOCHREALTIME``, so no timer process is in the figure.
(2) ``mcp --help`` the same number of times: the command's own start-up (an
    interpreter, the SDK's blocking client imported, no call), p50 and p99.

Before (1), the bytecode of the packages the command imports (``aos_sdk``,
``aos_stdskills``) is compiled, as installing their wheels leaves it: an
editable tree under ``PYTHONDONTWRITEBYTECODE`` (this machine's setting) has
none, and the agent's read-only sandbox cannot write it, so each command would
compile its imports again (~4 ms). The figure is an installed node's.

Then, with ``tests/fixtures/mcp``'s reference server
(``@modelcontextprotocol/server-everything``, installed by ``npm ci`` there)
configured, a new session's system prompt with aos-mcp among the default
skills is compared with one without it: the characters aos-mcp adds (the
issue's bound: < 1,500), skipped when the reference server is not installed.
"""

from __future__ import annotations

import asyncio
import compileall
import json
import shutil
import sys
import tempfile
from pathlib import Path

import aos_sdk
from _harness import Context, Result, Target, latency_results

import aos_stdskills
from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.testing import Reply, ScriptedLLM, first_system_prompt, temporary_daemon

NAME = "mcp"
DESCRIPTION = "aos-mcp: warm `mcp call` round trip from the agent's bash; context growth"

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "tests" / "fixtures" / "mcp" / "demo_server.py"
EVERYTHING = REPO / "tests" / "fixtures" / "mcp" / "node_modules" / ".bin" / "mcp-server-everything"
SKILLS = "aos-context,aos-skill,aos-mcp"
WITHOUT = "aos-context,aos-skill"
CALL_P50_MS = 25.0
GROWTH_LIMIT = 1500.0
START_TIMEOUT = 60.0
WARMUP = 20


def timed_loop(command: str, n: int) -> str:
    """Bash that runs ``command`` n times, one line of nanoseconds per run."""
    return (
        f"for i in $(seq {n}); do s=${{EPOCHREALTIME/./}}; {command} >/dev/null || exit 1; "
        f"e=${{EPOCHREALTIME/./}}; echo $(((e - s) * 1000)); done"
    )


async def run(ctx: Context) -> list[Result]:
    n = ctx.scale(200, 30)
    results = await _call_figures(ctx, n)
    results.append(await _growth(ctx))
    return results


def compile_command_imports() -> None:
    """The bytecode a wheel install of ``aos_sdk`` and ``aos_stdskills`` has."""
    for package in (aos_sdk, aos_stdskills):
        for directory in package.__path__:
            compileall.compile_dir(directory, quiet=1)


async def _call_figures(ctx: Context, n: int) -> list[Result]:
    compile_command_imports()
    project = Path(tempfile.mkdtemp(prefix="aosmcp-", dir="/tmp"))
    call = 'mcp call demo add \'{"a": 1, "b": 2}\''
    script = f"{timed_loop(call, WARMUP)} >/dev/null && {timed_loop(call, n)} && echo -- && {timed_loop('mcp --help', n)}"
    try:
        servers = {"demo": {"command": sys.executable, "args": [str(DEMO)]}}
        (project / ".mcp.json").write_text(json.dumps({"mcpServers": servers}))
        async with ScriptedLLM() as llm:
            llm.add(Reply.tool_call(script, timeout=120), Reply.text("done"))
            ctx.progress("starting a daemon in this loop (aos-mcp, the demo MCP server)")
            async with temporary_daemon(
                project, AOS_MODEL="m", OPENROUTER_BASE_URL=llm.base_url, AOS_DEFAULT_SKILLS=SKILLS
            ) as daemon:
                kernel = daemon.kernel
                assert kernel is not None
                await _service_running(kernel)
                ctx.progress(f"one dispatch: {WARMUP} + {n} `mcp call`, {n} `mcp --help`")
                output = await _one_command(kernel)
    finally:
        shutil.rmtree(project, ignore_errors=True)
    calls, _, starts = output.strip().partition("--")
    if not all(w.isdigit() for w in (calls + starts).split()):
        raise RuntimeError(f"unexpected output of the measuring command: {output[-800:]}")
    call_ns = [int(line) for line in calls.split()]
    start_ns = [int(line) for line in starts.split()]
    if len(call_ns) != n or len(start_ns) != n:
        raise RuntimeError(f"expected {n} timings of each, got: {output[:500]}")
    case = "agent's bash, demo server (stdio)"
    return [
        *latency_results(
            case,
            "warm mcp call round trip",
            call_ns,
            targets_ms={"p50": CALL_P50_MS},
            note="process start + skill.call + MCP round trip + mcp.call fact, timed in bash",
        ),
        *latency_results(case, "mcp command start-up (--help)", start_ns),
    ]


async def _service_running(kernel: Kernel) -> None:
    async with asyncio.timeout(START_TIMEOUT):
        while not any(  # noqa: ASYNC110 - another process starts
            s["skill"] == "aos-mcp" and s["state"] == "running"
            for s in (kernel.services.status() if kernel.services else [])
        ):
            await asyncio.sleep(0.01)


async def _one_command(kernel: Kernel) -> str:
    agent = await kernel.syscall(ADMIN, "agent.create", {"name": "bench"})
    session = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]})
    outcome = await kernel.syscall(
        ADMIN, "session.dispatch", {"id": session["id"], "message": "measure"}
    )
    history = await kernel.syscall(ADMIN, "session.history", {"id": session["id"]})
    [result] = [h["fact"] for h in history if h["fact"]["kind"] == "tool.result"]
    if outcome["status"] != "completed" or result.get("status", "ok") != "ok":
        raise RuntimeError(f"the measuring command failed: {result['output'][:500]}")
    return str(result["output"])


async def _growth(ctx: Context) -> Result:
    case, figure = "system prompt, server-everything configured", "characters aos-mcp adds"
    target = Target("<=", GROWTH_LIMIT)
    if not EVERYTHING.exists():
        why = "install the reference server: cd tests/fixtures/mcp && npm ci"
        return Result.skip(case, figure, "chars", why, target)
    project = Path(tempfile.mkdtemp(prefix="aosmcp-", dir="/tmp"))
    sizes: dict[str, int] = {}
    try:
        servers = {"everything": {"command": str(EVERYTHING), "args": ["stdio"]}}
        (project / ".mcp.json").write_text(json.dumps({"mcpServers": servers}))
        for skills in (WITHOUT, SKILLS):
            ctx.progress(f"the system prompt with default skills {skills}")
            sizes[skills] = len(await first_system_prompt(project, AOS_DEFAULT_SKILLS=skills))
    finally:
        shutil.rmtree(project, ignore_errors=True)
    return Result(
        case=case,
        figure=figure,
        value=float(sizes[SKILLS] - sizes[WITHOUT]),
        unit="chars",
        target=target,
        samples=1,
        note=f"{sizes[WITHOUT]} -> {sizes[SKILLS]} characters; no tool schema is listed",
    )
