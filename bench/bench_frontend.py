"""aos-frontend in a real browser: streamed token -> DOM latency, the page load of a
10,000-fact session, and the first page of a 100,000-record runtime log.

A real daemon runs in this event loop (``aos.testing.temporary_daemon``: SQLite under
a short temporary ``AOS_HOME``, ``AOS_DEFAULT_SKILLS=aos-context,aos-skill,
aos-frontend``, the web UI on a free ``AOS_FRONTEND_PORT``); the page is driven by
playwright with Debian's chromium (``/usr/bin/chromium --headless --no-sandbox
--disable-gpu --disable-background-networking``), as tests/test_frontend_browser.py
does. Without playwright or chromium every figure is skipped with the reason.

(1) Streamed token -> DOM. The model is a paced token source in its own process: a
    :class:`ScriptedLLM` whose chat-completions route streams, per request ``n``,
    ``TOKENS`` distinct content deltas ``"r<n>w<i> "`` with ``GAP`` seconds between
    them (ScriptedLLM's own replies send all their chunks at once: a ``Reply``'s
    ``delay`` is only before the first), stamping ``time.time()`` as each chunk is
    handed to the server, just before it is written to the socket. The kernel's
    ``stream`` events are stamped (``time.time()``) by an in-process
    ``kernel.events`` subscriber, called synchronously as the kernel publishes each
    delta. The page, open on the session (``#/sessions/<id>``, its event stream
    proven live by a fact appended and seen first), records every text node added
    under ``#main`` with a ``MutationObserver`` (``performance.timeOrigin +
    performance.now()``, epoch ms); the page's clock is put on Python's by the
    ``page.evaluate`` round trip with the least RTT of 20 (offset = page time - the
    round trip's midpoint). Tokens are matched by their text across the three.
    Dispatches (``session.dispatch``, one model request each, a plain answer) of 50
    tokens at 20 ms (50 tokens/s), 1 warm-up then 6 (``--quick`` 2): ``model chunk
    -> DOM`` p50 (target <= 50 ms) and p99, and its two legs, no targets: ``model
    chunk -> kernel stream event`` (the kernel's LLM client: HTTP, SSE parse, the
    ``stream`` publish; process to process on one clock) and ``kernel stream event
    -> DOM`` (the frontend service's subscription, its SSE stream, the browser's
    ``EventSource``, the page's ``delta`` handler). Tokens the page never showed
    as their own text node are counted (target 0).

(2) Page load of a 10,000-fact session. A session of 10,000 facts appended through
    ``session.append`` (admin ``Client`` on ``aos.sock``) in cycles of four: a
    ``message.user``, a ``message.assistant`` with one ``tool_calls`` entry, its
    ``tool.result`` (five lines of output), a ``message.assistant`` answer; the
    last answer carries a marker. Each load opens a new page of the one browser
    context (which opened the UI's address with its token first, and whose HTTP
    cache is warm, as a revisit's is) and times
    ``page.goto(f"{base}/#/sessions/{id}")`` until a ``wait_for_function`` (polled every animation frame) finds the marker in the
    transcript's last element, and that element inside the window (the chat opens at
    its newest turn): ``page load`` p50 (target <= 1 s) and max over 7 loads
    (``--quick`` 3); also the page's own ``performance.now()`` at that moment
    (navigation start -> last fact in the DOM), no target.

(3) The runtime log's first page. 100,000 records (``--quick`` 20,000) written
    through the store's RuntimeLog writer (``Store.log``, the group-committed
    path every audit record takes), 5,000 at a time; one in ten a warning, a few
    with a rare word. Each load
    opens ``#/log`` (all records, then ``#/log?level=warning``, then
    ``#/log?search=<rare word>``) in a new page and times ``page.goto`` until the
    page's first row shows the newest matching record: ``first page`` p50 for all
    records (target <= 300 ms) and for each filter (no target), over 7 loads
    (``--quick`` 3).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _harness import Context, Result, Target, percentile, server_process
from aiohttp import web
from aos_sdk import Client

from aos.daemon import Daemon
from aos.runtimelog import LogEntry
from aos.testing import ScriptedLLM, free_port, temporary_daemon, wait_for_http

NAME = "frontend"
DESCRIPTION = (
    "aos-frontend in headless chromium: model chunk -> kernel stream event -> DOM latency; "
    "page load of a 10,000-fact session; first page of a 100,000-record log"
)

HERE = Path(__file__).resolve()
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SKILLS = "aos-context,aos-skill,aos-frontend"
TOKENS = 50
GAP = 0.020
TOKEN_P50_MS = 50.0
LOAD_P50_MS = 1000.0
LOG_P50_MS = 300.0
FACTS = 10_000
LOG_RECORDS = 100_000
RARE = "zanzibar"
START_TIMEOUT = 60.0
TIMEOUT_MS = 30_000
STREAM_CASE = "stream, 50 tokens at 20 ms"
LOAD_CASE = f"{FACTS:,} facts"
LOG_CASE = "log of {:,} records"

OBSERVE_JS = """() => {
  window.__seen = [];
  new MutationObserver((records) => {
    const at = performance.timeOrigin + performance.now();
    for (const r of records)
      for (const n of r.addedNodes) if (n.nodeType === 3) window.__seen.push([n.data, at]);
  }).observe(document.getElementById("main"), { childList: true, subtree: true });
}"""


# -- the paced token source, in its own process --------------------------------------------
class PacedLLM(ScriptedLLM):
    """A ScriptedLLM whose chat route streams ``tokens`` content deltas ``gap`` s apart,
    recording ``(token, time.time())`` as each is handed to the server."""

    def __init__(self, tokens: int, gap: float) -> None:
        super().__init__()
        self.tokens = tokens
        self.gap = gap
        self.sent: list[tuple[str, float]] = []
        self.count = 0
        self.sent_lock = threading.Lock()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        with self.sent_lock:
            number = self.count
            self.count += 1
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        async for chunk in self._chunks(number, str(body.get("model") or self.model)):
            await response.write(chunk.encode())
        await response.write_eof()
        return response

    async def _chunks(self, number: int, model: str) -> AsyncIterator[str]:
        def delta(fields: dict[str, Any], finish: str | None = None) -> str:
            chunk = {
                "id": f"chatcmpl-paced{number}",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": fields, "finish_reason": finish}],
            }
            return f"data: {json.dumps(chunk)}\n\n"

        yield delta({"role": "assistant"})
        for i in range(self.tokens):
            await asyncio.sleep(self.gap)
            token = f"r{number}w{i:03d} "
            chunk = delta({"content": token})
            with self.sent_lock:
                self.sent.append((token, time.time()))
            yield chunk
        yield delta({}, "stop")
        yield "data: [DONE]\n\n"


def serve(tokens: int, gap: float) -> None:
    """The token source's process: serve until stdin closes; ``dump`` answers one JSON
    line of the ``[token, time.time()]`` chunks sent since the last dump."""
    llm = PacedLLM(tokens, gap)
    llm.start()
    print(llm.base_url, flush=True)
    seen = 0
    try:
        for line in sys.stdin:
            if line.strip() == "dump":
                with llm.sent_lock:
                    new = llm.sent[seen:]
                seen += len(new)
                print(json.dumps(new), flush=True)
    finally:
        llm.stop()


@dataclass
class TokenSource:
    process: asyncio.subprocess.Process
    base_url: str

    async def sent(self) -> dict[str, float]:
        """token -> epoch seconds it left the server, for the chunks since the last call."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(b"dump\n")
        await self.process.stdin.drain()
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError("the token source's process is gone")
        return {str(token): float(at) for token, at in json.loads(line)}


@contextlib.asynccontextmanager
async def token_source(tokens: int, gap: float) -> AsyncIterator[TokenSource]:
    async with server_process(
        str(HERE), "--serve", str(tokens), str(gap), what="the token source"
    ) as (process, base_url):
        yield TokenSource(process, base_url)


# -- the daemon and the browser ------------------------------------------------------------
def browser_missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed: pip install -e '.[dev]'"
    if not os.path.exists(CHROMIUM):
        return f"no chromium at {CHROMIUM}: apt-get install -y chromium"
    return None


def frontend_running(daemon: Daemon) -> bool:
    kernel = daemon.kernel
    return (
        kernel is not None
        and kernel.services is not None
        and any(
            s["skill"] == "aos-frontend" and s["state"] == "running"
            for s in kernel.services.status()
        )
    )


@contextlib.asynccontextmanager
async def frontend_daemon(ctx: Context, llm_url: str) -> AsyncIterator[tuple[Daemon, str]]:
    project = Path(tempfile.mkdtemp(prefix="aosfe-", dir="/tmp"))
    port = free_port()
    try:
        ctx.progress(f"starting a daemon in this loop (aos-frontend on port {port})")
        async with temporary_daemon(
            project,
            AOS_MODEL="m",
            OPENROUTER_BASE_URL=llm_url,
            AOS_DEFAULT_SKILLS=SKILLS,
            AOS_FRONTEND_PORT=str(port),
        ) as daemon:
            base = f"http://127.0.0.1:{port}"
            async with asyncio.timeout(START_TIMEOUT):
                while not frontend_running(daemon):  # noqa: ASYNC110 - another process starts
                    await asyncio.sleep(0.02)
                await wait_for_http(base)
            yield daemon, base
    finally:
        shutil.rmtree(project, ignore_errors=True)


def ms(seconds: float) -> float:
    return seconds * 1000


def quantiles(
    case: str, figure: str, samples_ms: list[float], target: float | None
) -> list[Result]:
    return [
        Result(
            case=case,
            figure=f"{figure} {name}",
            value=percentile(samples_ms, q),
            unit="ms",
            target=Target("<=", target) if target is not None and name == "p50" else None,
            samples=len(samples_ms),
        )
        for name, q in (("p50", 50.0), ("p99", 99.0))
    ]


def skipped(reason: str) -> list[Result]:
    return [
        Result.skip(
            STREAM_CASE, "model chunk -> DOM p50", "ms", reason, Target("<=", TOKEN_P50_MS)
        ),
        Result.skip(LOAD_CASE, "page load p50", "ms", reason, Target("<=", LOAD_P50_MS)),
        Result.skip(
            LOG_CASE.format(LOG_RECORDS), "first page p50", "ms", reason, Target("<=", LOG_P50_MS)
        ),
    ]


# -- the benchmark -------------------------------------------------------------------------
async def run(ctx: Context) -> list[Result]:
    missing = browser_missing()
    if missing:
        return skipped(missing)
    from playwright.async_api import async_playwright

    results: list[Result] = []
    async with (
        token_source(TOKENS, GAP) as source,
        frontend_daemon(ctx, source.base_url) as (daemon, base),
        Client(daemon.paths.control_socket, token="") as admin,
        async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            # one browser context: it opens the UI's address with its token once (as
            # a person does from `aos status`), and the cookie serves every page after
            context = await browser.new_context(viewport={"width": 1200, "height": 900})
            address = await admin.call("skill.call", {"skill": "aos-frontend", "method": "address"})
            opener = await context.new_page()
            await opener.goto(address["url"])
            await opener.close()
            results += await _stream(ctx, daemon, admin, source, context, base)
            results += await _load(ctx, admin, context, base)
            results += await _log(ctx, daemon, admin, context, base)
        finally:
            await browser.close()
    return results


async def _clock_offset_ms(page: Any) -> tuple[float, float]:
    """(page epoch ms - Python epoch ms, the RTT it was measured with), best of 20."""
    best: tuple[float, float] | None = None
    for _ in range(20):
        before = time.time()
        at = float(await page.evaluate("performance.timeOrigin + performance.now()"))
        after = time.time()
        rtt = ms(after - before)
        if best is None or rtt < best[1]:
            best = (at - ms((before + after) / 2), rtt)
    assert best is not None
    return best


async def _stream(
    ctx: Context, daemon: Daemon, admin: Client, source: TokenSource, context: Any, base: str
) -> list[Result]:
    kernel = daemon.kernel
    assert kernel is not None
    agent = (await admin.call("agent.create", {"name": "bench-stream"}))["agent"]["id"]
    session = (await admin.call("session.create", {"agent_id": agent}))["id"]

    published: dict[str, float] = {}
    finished = asyncio.Event()

    def deliver(topic: str, data: Any) -> None:
        if topic == "stream":
            published.setdefault(data["text"], time.time())
        elif data["fact"]["kind"] == "dispatch.finished":
            finished.set()

    subscription = kernel.events.subscribe(
        deliver, topics=frozenset({"stream", "history.append"}), session_id=session
    )
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        await page.goto(f"{base}/#/sessions/{session}")
        await page.wait_for_selector("#transcript", state="attached")
        # the page's event stream is live once an appended fact shows up
        await admin.call(
            "session.append",
            {"id": session, "fact": {"kind": "message.user", "text": "stream ready"}},
        )
        await page.wait_for_function(
            "() => (document.getElementById('transcript')?.textContent || '')"
            ".includes('stream ready')"
        )
        await page.evaluate(OBSERVE_JS)
        offset, rtt = await _clock_offset_ms(page)

        warmup, n = 1, ctx.scale(6, 2)
        ctx.progress(
            f"stream: {warmup} + {n} dispatches of {TOKENS} tokens, {GAP * 1000:g} ms apart"
        )
        sent: dict[str, float] = {}
        for i in range(warmup + n):
            finished.clear()
            await admin.call(
                "session.dispatch", {"id": session, "message": f"go {i}", "wait": False}
            )
            async with asyncio.timeout(TIMEOUT_MS / 1000):
                await finished.wait()
            await page.wait_for_function(
                "(k) => document.querySelectorAll("
                "'#transcript .bubble.assistant:not(.pending)').length >= k",
                arg=i + 1,
            )
            chunks = await source.sent()
            if i >= warmup:
                sent |= chunks
        seen_raw: list[list[Any]] = await page.evaluate("window.__seen")
    finally:
        kernel.events.unsubscribe(subscription.id)
        await page.close()

    shown: dict[str, float] = {}
    for text, at in seen_raw:
        shown.setdefault(str(text), (float(at) - offset) / 1000)
    to_kernel = [ms(published[t] - at) for t, at in sent.items() if t in published]
    to_dom = [ms(shown[t] - published[t]) for t in sent if t in published and t in shown]
    end_to_end = [ms(shown[t] - at) for t, at in sent.items() if t in shown]
    lost = sum(1 for t in sent if t not in shown)
    note = f"page clock offset {offset:+.2f} ms (evaluate RTT {rtt:.2f} ms)"
    return [
        *quantiles(STREAM_CASE, "model chunk -> DOM", end_to_end, TOKEN_P50_MS),
        *quantiles(STREAM_CASE, "model chunk -> kernel stream event", to_kernel, None),
        *quantiles(STREAM_CASE, "kernel stream event -> DOM", to_dom, None),
        Result(
            case=STREAM_CASE,
            figure="tokens not shown in the DOM",
            value=lost,
            unit="tokens",
            target=Target("<=", 0),
            samples=len(sent),
            note=note,
        ),
    ]


def _facts(marker: str) -> list[dict[str, Any]]:
    facts: list[dict[str, Any]] = []
    for i in range(FACTS // 4):
        call = f"call_{i}"
        output = "\n".join(f"-rw-r--r-- 1 aos aos {i * 7 + j} file_{i}_{j}.txt" for j in range(5))
        facts += [
            {"kind": "message.user", "text": f"Question {i}: what is in directory {i}?"},
            {
                "kind": "message.assistant",
                "text": "Let me look.",
                "tool_calls": [{"id": call, "command": f"ls -l /srv/data/{i}"}],
            },
            {"kind": "tool.result", "call_id": call, "output": output, "exit_code": 0},
            {"kind": "message.assistant", "text": f"Directory {i} holds five text files."},
        ]
    facts[-1] = {"kind": "message.assistant", "text": marker}
    return facts


async def _load(ctx: Context, admin: Client, context: Any, base: str) -> list[Result]:
    agent = (await admin.call("agent.create", {"name": "bench-load"}))["agent"]["id"]
    session = (await admin.call("session.create", {"agent_id": agent}))["id"]
    marker = f"the last fact of {session}"
    ctx.progress(f"page load: appending {FACTS:,} facts through session.append")
    for fact in _facts(marker):
        await admin.call("session.append", {"id": session, "fact": fact})

    loads = ctx.scale(7, 3)
    ctx.progress(f"page load: {loads} loads of #/sessions/{session}")
    found = (
        "(m) => { const last = document.getElementById('transcript')?.lastElementChild;"
        " if (!last || !last.textContent.includes(m)) return false;"
        " const box = last.getBoundingClientRect();"
        " return box.bottom <= window.innerHeight + 1 && box.bottom > 0 ? performance.now() : false; }"
    )
    wall: list[float] = []
    in_page: list[float] = []
    for _ in range(loads):
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        try:
            start = time.perf_counter()
            await page.goto(f"{base}/#/sessions/{session}", wait_until="commit")
            handle = await page.wait_for_function(found, arg=marker, polling="raf")
            wall.append(ms(time.perf_counter() - start))
            in_page.append(float(await handle.json_value()))
        finally:
            await page.close()
    return [
        Result(
            case=LOAD_CASE,
            figure="page load p50",
            value=percentile(wall, 50),
            unit="ms",
            target=Target("<=", LOAD_P50_MS),
            samples=len(wall),
            note="goto -> last fact in the DOM and in the window (raf-polled); HTTP cache warm",
        ),
        Result(
            case=LOAD_CASE, figure="page load max", value=max(wall), unit="ms", samples=len(wall)
        ),
        Result(
            case=LOAD_CASE,
            figure="navigation start -> last fact in DOM p50",
            value=percentile(in_page, 50),
            unit="ms",
            samples=len(in_page),
            note="the page's performance.now()",
        ),
    ]


async def _log(
    ctx: Context, daemon: Daemon, admin: Client, context: Any, base: str
) -> list[Result]:
    kernel = daemon.kernel
    assert kernel is not None
    records = ctx.scale(LOG_RECORDS, LOG_RECORDS // 5)
    case = LOG_CASE.format(records)
    ctx.progress(f"log: writing {records:,} records through the RuntimeLog")
    for batch in range(0, records, 5000):
        await asyncio.gather(
            *(
                kernel.store.log(
                    LogEntry(
                        kind=f"bench.kind{i % 7}",
                        message=f"bench record {i}" + (f" {RARE}" if i % 9973 == 0 else ""),
                        level="warning" if i % 10 == 0 else "info",
                        data={"i": i},
                    )
                )
                for i in range(batch, min(batch + 5000, records))
            )
        )
    newest = {
        "": records - 1,
        "level=warning": max(i for i in range(records) if i % 10 == 0),
        f"search={RARE}": max(i for i in range(records) if i % 9973 == 0),
    }
    loads = ctx.scale(7, 3)
    results: list[Result] = []
    for filters, last in newest.items():
        wall: list[float] = []
        ctx.progress(f"log: {loads} loads of #/log?{filters}")
        for _ in range(loads):
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            try:
                start = time.perf_counter()
                await page.goto(f"{base}/#/log?{filters}", wait_until="commit")
                await page.wait_for_function(
                    "(m) => (document.querySelector('#log tbody tr')?.textContent || '')"
                    ".includes(m)",
                    arg=f"bench record {last}",
                    polling="raf",
                )
                wall.append(ms(time.perf_counter() - start))
            finally:
                await page.close()
        results.append(
            Result(
                case=case,
                figure=f"first page{' (' + filters + ')' if filters else ''} p50",
                value=percentile(wall, 50),
                unit="ms",
                target=Target("<=", LOG_P50_MS) if not filters else None,
                samples=len(wall),
                note="goto -> the newest matching record in the first row",
            )
        )
    return results


# -- the token source's entry point ---------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bench_frontend's token source (see run.py)")
    parser.add_argument("--serve", nargs=2, metavar=("TOKENS", "GAP"), required=True)
    args = parser.parse_args(argv)
    serve(int(args.serve[0]), float(args.serve[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
