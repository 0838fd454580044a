"""The daemon's wire: a service's gate hook, a control-socket syscall, a cold start.

A real :class:`Daemon` runs in this event loop (SQLite under a short temporary
``AOS_HOME``; the skill root a temporary directory holding a copy of
``skills/my-guard``, the seed service, which passes ``ls`` through unchanged).
Once the my-guard service is ``running``:

(1) ``kernel.hooks.gate("tool.before", ...)`` called sequentially: the round
    trip kernel -> my-guard's process -> kernel over its service socket, with
    the hook runner on top (target p50 <= 200 µs, p99 <= 1 ms);
(2) the same call from 32 concurrent tasks, all on the service's one
    connection: calls/s over the wall clock (target >= 20,000/s), and the
    latency one call sees under that load;
    (1) and (2) again with ``sdk/typescript/examples/ts-guard``, the same
    guard written with the TypeScript SDK and run by ``node`` (target p50 <=
    250 µs; skipped until the SDK is built: ``npm ci && npm run build``);
    (1) and (2) again with each guard attached as a remote service over the
    daemon's WebSocket face on loopback (``AOS_WS_LISTEN=127.0.0.1:0``, the
    token of ``service.token``; no skill installed): target p50 <= 400 µs;
(3) ``hook.list`` (pure kernel: no store, no audit, no file system) over the
    control socket as admin (``Client(aos.sock, token="")``) from a separate
    process, which is how the CLI reaches the daemon (target p50 <= 250 µs);
    without targets, ``skill.list`` the same way (it also stats each skill's
    ``scripts/``) and ``hook.list`` from a client in the daemon's own event
    loop (no process hop: both ends' Python on one core).

The daemon is then stopped (``kernel.shutdown_requested``) and

(4) ``python -m aos --home HOME up --quiet`` is started 5 times (``--quick`` 3)
    in a project directory holding a copy of the repository's ``skills/``, with
    the default configuration (no ``AOS_*`` variables) and a fresh ``HOME``
    each time (the database is created and migrated every time). From the
    spawn, ``kernel.status`` is polled every 10 ms through the control socket
    until it answers and reports my-guard ``running``: that is ready (target
    p50 <= 1.5 s). ``kernel.shutdown`` then stops it; how long until the
    process exits is reported without a target.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _harness import (
    NS_PER_MS,
    Context,
    Result,
    Target,
    child_json,
    latency_results,
    micro_results,
    now_ns,
    time_each,
)
from aos_sdk.client import Client, NotConnected
from aos_sdk.peer import ConnectionClosed

from aos.config import load_config
from aos.daemon import Daemon, DaemonPaths
from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.services import command_for

NAME = "wire"
DESCRIPTION = (
    "daemon wire: out-of-process gate hook round trip (sequential, 32 in flight), "
    "control-socket syscall, daemon cold start to ready"
)

REPO = Path(__file__).resolve().parent.parent
HOOK = "tool.before"
GATE_INPUT: dict[str, Any] = {"session_id": "s"}
IN_FLIGHT = 32
CONTROL_SYSCALL = "hook.list"
OTHER_SYSCALL = "skill.list"

GATE_P50_US = 200.0
TS_GATE_P50_US = 250.0
WS_GATE_P50_US = 400.0
TS_SDK = REPO / "sdk" / "typescript"
GATE_P99_US = 1000.0
GATE_CALLS_PER_S = 20_000.0
SYSCALL_P50_US = 250.0
COLD_START_P50_MS = 1500.0

START_TIMEOUT_NS = 30 * 1_000_000_000
POLL_INTERVAL = 0.01

CLIENT_SCRIPT = """
import asyncio, gc, json, sys, time
from aos_sdk.client import Client

async def main(socket, name, n, warmup):
    async with Client(socket, token="") as client:
        for _ in range(warmup):
            await client.call(name)
        gc.collect()
        samples = []
        for _ in range(n):
            start = time.perf_counter_ns()
            await client.call(name)
            samples.append(time.perf_counter_ns() - start)
    print(json.dumps(samples))

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""


def bash_output() -> dict[str, Any]:
    return {"tool": "bash", "args": {"command": "ls"}, "cwd": "/tmp", "env": {}}


def clean_environ() -> dict[str, str]:
    """This process's environment without ``AOS_*``: the default configuration."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}


def short_tempdir(prefix: str) -> Path:
    """Under /tmp: Unix socket paths (the home's ``run/``) are limited to 107 bytes."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def service_state(kernel: Kernel, name: str) -> str:
    if kernel.services is None:
        return "absent"
    found = [s["state"] for s in kernel.services.status() if s["skill"] == name]
    return found[0] if found else "absent"


@dataclass(frozen=True)
class Guard:
    """A tool.before guard service the gate figures are measured with."""

    name: str
    source: Path
    p50_us: float
    program: str
    """The service program in ``source``."""
    node_modules: Path | None = None
    """Linked into the copy's node_modules as `npm install` would (a Node service)."""
    over_ws: bool = False
    """Attached as a remote service over the WebSocket face, not spawned by the node."""

    @property
    def case(self) -> str:
        return f"{self.name} service" + (" over WebSocket" if self.over_ws else "")

    def remote(self) -> Guard:
        """The same guard, run as a remote service on loopback."""
        return dataclasses.replace(self, p50_us=WS_GATE_P50_US, over_ws=True)

    def install(self, root: Path) -> None:
        target = root / self.name
        shutil.copytree(self.source, target)
        if self.node_modules is not None:
            (target / "node_modules").mkdir()
            (target / "node_modules" / "aos-skill-sdk").symlink_to(self.node_modules)

    def missing(self) -> str | None:
        """Why it cannot run here, or None."""
        if self.node_modules is None:
            return None
        if shutil.which("node") is None:
            return "needs node (>= 20)"
        if not (self.node_modules / "dist" / "esm" / "index.js").exists():
            return "build the TypeScript SDK first: cd sdk/typescript && npm ci && npm run build"
        return None


MY_GUARD = Guard("my-guard", REPO / "skills" / "my-guard", GATE_P50_US, "service.py")
TS_GUARD = Guard(
    "ts-guard", TS_SDK / "examples" / "ts-guard", TS_GATE_P50_US, "service.mjs", TS_SDK
)


async def run(ctx: Context) -> list[Result]:
    results: list[Result] = []
    async with running_daemon(ctx, MY_GUARD) as daemon:
        assert daemon.kernel is not None
        results += await _gate_figures(ctx, daemon.kernel, MY_GUARD)
        results += await _syscall_figures(ctx, daemon.paths)
    for guard in (TS_GUARD, MY_GUARD.remote(), TS_GUARD.remote()):
        why = guard.missing()
        if why is None:
            async with running_daemon(ctx, guard) as daemon:
                assert daemon.kernel is not None
                results += await _gate_figures(ctx, daemon.kernel, guard)
        else:
            target = Target("<=", guard.p50_us)
            results.append(Result.skip(guard.case, "gate round trip p50", "µs", why, target))
    results += await _cold_start_figures(ctx)
    return results


# -- the daemon in this loop ---------------------------------------------------------------
@contextlib.asynccontextmanager
async def running_daemon(ctx: Context, guard: Guard) -> AsyncIterator[Daemon]:
    """A daemon serving a copy of ``guard``, its service running; stopped cleanly after."""
    home, project = short_tempdir("aosb"), short_tempdir("aosp")
    remote: asyncio.subprocess.Process | None = None
    try:
        root = project / ("remote" if guard.over_ws else "skills")  # remote: no skill root
        guard.install(root)
        environ = {"AOS_HOME": str(home), "AOS_SKILL_ROOTS": str(project / "skills")}
        if guard.over_ws:
            environ["AOS_WS_LISTEN"] = "127.0.0.1:0"
        config = load_config(environ=environ, cwd=project)
        daemon = Daemon(config)
        ctx.progress(f"starting a daemon in this loop (AOS_HOME {home})")
        task = await daemon.start(within=30)
        try:
            kernel = daemon.kernel
            assert kernel is not None
            if guard.over_ws:
                remote = await _attach_remote(kernel, guard, root / guard.name)
            async with asyncio.timeout(30):
                while service_state(kernel, guard.name) != "running":
                    if task.done():
                        raise RuntimeError(f"the daemon stopped before {guard.name} ran")
                    if remote is not None and remote.returncode is not None:
                        raise RuntimeError(f"the remote {guard.name} exited: {remote.returncode}")
                    await asyncio.sleep(0.01)
            impls = kernel.hooks.impls(HOOK)
            if [(i.owner, i.where) for i in impls] != [(guard.name, "service")]:
                found = [(i.owner, i.where) for i in impls]
                raise RuntimeError(
                    f"expected {HOOK} implemented by the {guard.name} service only: {found}"
                )
            yield daemon
        finally:
            if daemon.kernel is not None:
                daemon.kernel.shutdown_requested.set()
            async with asyncio.timeout(30):
                await asyncio.gather(task, return_exceptions=True)
    finally:
        if remote is not None and remote.returncode is None:
            remote.kill()
        if remote is not None:
            await remote.wait()
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(project, ignore_errors=True)


async def _attach_remote(
    kernel: Kernel, guard: Guard, directory: Path
) -> asyncio.subprocess.Process:
    """Grant ``guard.name`` and start its program as a remote service would run:
    only the node's URL, the skill name and the token in its environment."""
    minted = await kernel.syscall(ADMIN, "service.token", {"name": guard.name})
    env = {
        **clean_environ(),
        "AOS_URL": minted["url"],
        "AOS_SKILL": guard.name,
        "AOS_TOKEN": minted["token"],
    }
    return await asyncio.create_subprocess_exec(
        *command_for(directory / guard.program), cwd=directory, env=env
    )


async def _gate_figures(ctx: Context, kernel: Kernel, guard: Guard) -> list[Result]:
    output = bash_output()

    async def gate(_: int) -> None:
        result = await kernel.hooks.gate(HOOK, GATE_INPUT, output)
        if result["args"]["command"] != "ls":  # the work was not done: not a figure
            raise RuntimeError(f"{guard.name} changed the output: {result}")

    n, warmup = ctx.scale(5000, 500), ctx.scale(500, 100)
    ctx.progress(f"gate {HOOK} via {guard.name}: {n} sequential calls after {warmup} warm-up")
    sequential = await time_each(gate, n, warmup=warmup)

    total = ctx.scale(20_000, 2_000)
    per_task = total // IN_FLIGHT
    under_load: list[int] = []

    async def worker(calls: int, record: bool) -> None:
        for _ in range(calls):
            start = now_ns()
            await gate(0)
            if record:
                under_load.append(now_ns() - start)

    ctx.progress(f"gate {HOOK} via {guard.name}: {IN_FLIGHT} tasks x {per_task} calls")
    await asyncio.gather(*(worker(warmup // IN_FLIGHT + 1, False) for _ in range(IN_FLIGHT)))
    gc.collect()
    start = now_ns()
    await asyncio.gather(*(worker(per_task, True) for _ in range(IN_FLIGHT)))
    wall_ns = now_ns() - start
    done = per_task * IN_FLIGHT
    if len(under_load) != done:
        raise RuntimeError(f"{len(under_load)} concurrent calls completed, expected {done}")

    case = guard.case
    return [
        *micro_results(
            case,
            "gate round trip",
            sequential,
            target_p50_us=guard.p50_us,
            target_p99_us=GATE_P99_US,
            note=f"kernel.hooks.gate({HOOK}) -> service process -> kernel, sequential"
            + (" (loopback WebSocket)" if guard.over_ws else ""),
        ),
        Result(
            case=f"{case}, {IN_FLIGHT} in flight",
            figure="gate calls/s",
            value=done / (wall_ns / 1e9),
            unit="calls/s",
            target=Target(">=", GATE_CALLS_PER_S),
            samples=done,
            note=f"{IN_FLIGHT} tasks on the service's one connection; total / wall clock",
        ),
        *micro_results(f"{case}, {IN_FLIGHT} in flight", "gate latency", under_load),
    ]


async def _syscall_figures(ctx: Context, paths: DaemonPaths) -> list[Result]:
    n, warmup = ctx.scale(5000, 500), ctx.scale(500, 100)
    socket = paths.control_socket
    separate: dict[str, list[int]] = {}
    for name in (CONTROL_SYSCALL, OTHER_SYSCALL):
        ctx.progress(f"{name} over {socket.name} from another process: {n} after {warmup}")
        separate[name] = await _client_process(socket, name, n, warmup)

    ctx.progress(f"{CONTROL_SYSCALL} over {socket.name} from this loop: {n} after {warmup}")
    async with Client(socket, token="", connect_timeout=5) as client:
        same_loop = await time_each(lambda _: client.call(CONTROL_SYSCALL), n, warmup=warmup)

    case = "control socket, admin"
    return [
        *micro_results(
            case,
            f"{CONTROL_SYSCALL} round trip",
            separate[CONTROL_SYSCALL],
            target_p50_us=SYSCALL_P50_US,
            note="client in another process (as the CLI); pure kernel: no store, no audit, no stat",
        ),
        *micro_results(
            case,
            f"{OTHER_SYSCALL} round trip",
            separate[OTHER_SYSCALL],
            note="client in another process; stats each skill's scripts/ dir",
        ),
        *micro_results(
            f"{case}, same loop",
            f"{CONTROL_SYSCALL} round trip",
            same_loop,
            note="client in the daemon's own event loop: no process hop",
        ),
    ]


async def _client_process(socket: Path, name: str, n: int, warmup: int) -> list[int]:
    """Per-call ns of ``name`` timed by a Client in a separate process (this loop keeps serving)."""
    samples: list[int] = await child_json(
        "-c", CLIENT_SCRIPT, str(socket), name, str(n), str(warmup), what=f"the {name} client"
    )
    if len(samples) != n:
        raise RuntimeError(f"the {name} client timed {len(samples)} calls, expected {n}")
    return samples


# -- cold start ----------------------------------------------------------------------------
async def _cold_start_figures(ctx: Context) -> list[Result]:
    repeats = ctx.scale(5, 3)
    project = short_tempdir("aosp")
    answered: list[int] = []
    ready: list[int] = []
    stopped: list[int] = []
    try:
        shutil.copytree(REPO / "skills", project / "skills")
        for i in range(repeats):
            home = short_tempdir("aosb")
            try:
                first, running, stop = await _start_once(project, home)
            finally:
                shutil.rmtree(home, ignore_errors=True)
            ctx.progress(
                f"cold start {i + 1}/{repeats}: status answers {first / NS_PER_MS:.0f} ms, "
                f"{MY_GUARD.name} running {running / NS_PER_MS:.0f} ms, stop {stop / NS_PER_MS:.0f} ms"
            )
            answered.append(first)
            ready.append(running)
            stopped.append(stop)
    finally:
        shutil.rmtree(project, ignore_errors=True)

    case = "aos up, default skills"
    return [
        *latency_results(
            case,
            f"spawn -> {MY_GUARD.name} running",
            ready,
            targets_ms={"p50": COLD_START_P50_MS},
            note="fresh AOS_HOME; kernel.status polled every 10 ms over the control socket",
        ),
        *latency_results(case, "spawn -> kernel.status answers", answered),
        *latency_results(case, "kernel.shutdown -> exit", stopped),
    ]


async def _start_once(project: Path, home: Path) -> tuple[int, int, int]:
    """ns from spawn until kernel.status answers, until my-guard runs; then kernel.shutdown -> exit."""
    paths = DaemonPaths.of(load_config(environ={"AOS_HOME": str(home)}, cwd=project))
    stderr_path = home / "up.stderr"
    answered: int | None = None
    with stderr_path.open("wb") as stderr:
        start = now_ns()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aos",
            "--home",
            str(home),
            "up",
            "--quiet",
            cwd=project,
            env=clean_environ(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
    client = Client(paths.control_socket, token="", connect_timeout=0)
    try:
        while True:
            if process.returncode is not None:
                raise RuntimeError(
                    f"aos up exited with {process.returncode} while starting: "
                    f"{stderr_path.read_text(errors='replace')[-2000:]}"
                )
            if now_ns() - start > START_TIMEOUT_NS:
                raise RuntimeError(f"aos up was not ready after {START_TIMEOUT_NS / 1e9:g}s")
            try:
                status = await client.call("kernel.status")
            except (NotConnected, ConnectionClosed, OSError, asyncio.IncompleteReadError):
                await asyncio.sleep(POLL_INTERVAL)
                continue
            elapsed = now_ns() - start
            answered = elapsed if answered is None else answered
            if any(
                s["skill"] == MY_GUARD.name and s["state"] == "running" for s in status["services"]
            ):
                break
            await asyncio.sleep(POLL_INTERVAL)
        stop_start = now_ns()
        with contextlib.suppress(ConnectionClosed):
            await client.call("kernel.shutdown", {"reason": "bench"})
        async with asyncio.timeout(30):
            await process.wait()
        stopped = now_ns() - stop_start
    finally:
        await client.close()
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise RuntimeError(
            f"aos up exited with {process.returncode} after kernel.shutdown: "
            f"{stderr_path.read_text(errors='replace')[-2000:]}"
        )
    return answered, elapsed, stopped
