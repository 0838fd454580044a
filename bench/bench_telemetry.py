"""Tracing's cost: bench_react's kernel overhead per step (SQLite, an in-process
``Kernel``, the scripted model in its own process) with tracing off, then with
every span exported over OTLP/HTTP to a receiver in a child process of its own
(``OTEL_EXPORTER_OTLP_ENDPOINT``), alternating, 2 rounds each (``--quick`` 1).

Figures: the overhead p50 of each (the best round of each, so that one noisy
round does not decide), and ``traced / off`` (target <= 1.15). The receiver
counts what it got: a run whose spans never arrived is an error, not a figure.
"Off" is the same measurement as ``bench_react``'s ``sqlite`` case, so compare
it with that figure from before tracing existed to see that off costs nothing.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from _harness import Context, Result, Target, server_process
from aiohttp import web
from bench_react import _step_case

NAME = "telemetry"
DESCRIPTION = "kernel overhead per step with tracing to a local OTLP receiver vs off"
HERE = Path(__file__).resolve()
RATIO = 1.15


async def run(ctx: Context) -> list[Result]:
    rounds = ctx.scale(2, 1)
    off: list[float] = []
    on: list[float] = []
    async with server_process(str(HERE), "--sink", what="the OTLP receiver") as (sink, url):
        for r in range(rounds):
            ctx.progress(f"round {r + 1}/{rounds}: tracing off")
            off.append((await _step_case(ctx, "sqlite", None))[1])
            ctx.progress(f"round {r + 1}/{rounds}: tracing to {url}")
            on.append((await _step_case(ctx, "sqlite", None, OTEL_EXPORTER_OTLP_ENDPOINT=url))[1])
        received = await _received(sink)
    if received == 0:
        raise RuntimeError("the OTLP receiver got no spans: tracing was not on")
    case = "sqlite, 20-step dispatches"
    return [
        Result(case, "kernel overhead per step p50, tracing off", min(off), "ms", samples=len(off)),
        Result(
            case,
            "kernel overhead per step p50, tracing on",
            min(on),
            "ms",
            samples=len(on),
            note=f"every span exported over OTLP/HTTP ({received} payloads received)",
        ),
        Result(
            case,
            "ratio tracing on / off",
            min(on) / min(off),
            "x",
            Target("<=", RATIO),
            note=f"rounds off {', '.join(f'{x:.3f}' for x in off)}; on {', '.join(f'{x:.3f}' for x in on)} ms",
        ),
    ]


async def _received(sink: asyncio.subprocess.Process) -> int:
    assert sink.stdin is not None and sink.stdout is not None
    sink.stdin.write(b"count\n")
    await sink.stdin.drain()
    return int((await sink.stdout.readline()).decode().strip() or 0)


def sink() -> None:
    """The receiver's process: OTLP/HTTP traces answered 200 until stdin closes;
    ``count`` answers how many payloads arrived."""
    received = [0]

    async def traces(request: web.Request) -> web.Response:
        await request.read()
        received[0] += 1
        return web.Response(content_type="application/x-protobuf")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", traces)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"http://127.0.0.1:{port}", flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            if line.strip() == b"count":
                print(received[0], flush=True)
        await runner.cleanup()

    asyncio.run(main())


if __name__ == "__main__":
    if sys.argv[1:] == ["--sink"]:
        sink()
