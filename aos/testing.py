"""Testing tools for skill authors: a scripted OpenAI-compatible LLM server.

:class:`ScriptedLLM` is a real HTTP server (aiohttp, on 127.0.0.1 with an
ephemeral port, in a daemon thread with its own event loop) that speaks the
Chat Completions API with real Server-Sent Events. It answers each request
with the next scripted :class:`Reply` and records every request it got, so a
test can drive a real daemon end to end without a real model::

    from aos.testing import Reply, ScriptedLLM

    with ScriptedLLM(Reply.tool_call("ls -la"), Reply.text("Done.")) as llm:
        # point the daemon at it: OPENROUTER_BASE_URL=llm.base_url, AOS_MODEL=test-model
        ...
        assert llm.requests[1].body["messages"][-1]["role"] == "tool"

With pytest, the ``scripted_llm`` fixture (``aos.pytest_plugin``) gives a
started server. See docs/testing.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio.to_thread
import msgspec
from aiohttp import web

from aos.facts import Usage

if TYPE_CHECKING:
    from aos_sdk import Client

    from aos.daemon import Daemon

__all__ = [
    "NodeProcess",
    "RecordedRequest",
    "Reply",
    "ScriptedLLM",
    "ScriptedToolCall",
    "first_system_prompt",
    "temporary_daemon",
]

MAX_REQUEST = 32 * 1024 * 1024
"""The largest request body the scripted server takes: providers take prompts of
megabytes (aiohttp's own limit is 1 MiB)."""


@dataclasses.dataclass(frozen=True)
class ScriptedToolCall:
    """One tool call of a scripted reply. ``arguments`` is sent as JSON text; pass a
    ``str`` to send it verbatim (e.g. invalid JSON, to test how that is handled)."""

    name: str
    arguments: Mapping[str, Any] | str
    id: str | None = None

    @classmethod
    def bash(
        cls, command: str, *, id: str | None = None, timeout: float | None = None
    ) -> ScriptedToolCall:
        """A ``bash`` call with the arguments ``{"command": ..., "timeout": ...}``."""
        arguments: dict[str, Any] = {"command": command}
        if timeout is not None:
            arguments["timeout"] = timeout
        return cls("bash", arguments, id)

    def arguments_text(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Reply:
    """One scripted answer. Build it with the class methods:
    :meth:`text`, :meth:`tool_call`, :meth:`tool_calls`, :meth:`error`,
    :meth:`stream_error` and :meth:`disconnect`."""

    content: str = ""
    reasoning: str = ""
    reasoning_field: str = "reasoning"
    """The delta field reasoning is sent in: ``reasoning`` (OpenRouter) or
    ``reasoning_content`` (DeepSeek, vLLM)."""
    signature: str | None = None
    """With ``reasoning``: also send it as OpenRouter's ``reasoning_details``
    (``reasoning.text`` pieces at index 0, the last one carrying this signature),
    as reasoning models that need their signed reasoning back do."""
    calls: tuple[ScriptedToolCall, ...] = ()
    """Tool calls (build with :meth:`tool_call` / :meth:`tool_calls`)."""
    finish_reason: str | None = None
    """Defaults to ``tool_calls`` when there are tool calls, else ``stop``."""
    chunk: int = 8
    """Characters per content/reasoning delta (and the size of tool-argument pieces)."""
    delay: float = 0.0
    """Seconds to wait before answering at all (before the first byte)."""
    usage: Usage | None = None
    """Reported when the request asks for it (``stream_options.include_usage``);
    None reports an estimate (characters / 4) without cost."""
    model: str | None = None
    """The model named in the chunks; defaults to the requested one."""
    status: int = 200
    error_message: str = ""
    """For ``status != 200``: the message of the error body; with status 200, a
    mid-stream error chunk sent after ``content``."""
    error_code: int = 502
    retry_after: float | str | None = None
    cut: bool = False
    """End the stream after ``content`` with neither a finish_reason nor ``[DONE]``."""
    stream: bool = True
    """False: answer one ``chat.completion`` JSON body instead of a stream, as some
    local servers do whatever the request asks."""

    @classmethod
    def text(
        cls,
        text: str,
        *,
        chunk: int = 8,
        reasoning: str = "",
        reasoning_field: str = "reasoning",
        signature: str | None = None,
        delay: float = 0.0,
        usage: Usage | None = None,
        model: str | None = None,
        finish_reason: str = "stop",
    ) -> Reply:
        """A final answer, streamed in deltas of ``chunk`` characters."""
        return cls(
            content=text,
            chunk=chunk,
            reasoning=reasoning,
            reasoning_field=reasoning_field,
            signature=signature,
            delay=delay,
            usage=usage,
            model=model,
            finish_reason=finish_reason,
        )

    @classmethod
    def tool_call(
        cls,
        command: str,
        *,
        id: str | None = None,
        timeout: float | None = None,
        text: str = "",
        **options: Any,
    ) -> Reply:
        """One ``bash`` call (``options`` as for :meth:`text`: reasoning, delay, usage...)."""
        return cls.tool_calls(
            [ScriptedToolCall.bash(command, id=id, timeout=timeout)], text=text, **options
        )

    @classmethod
    def tool_calls(
        cls, calls: Sequence[str | ScriptedToolCall], *, text: str = "", **options: Any
    ) -> Reply:
        """Parallel tool calls: a ``str`` is a ``bash`` command. Their arguments are
        split into pieces sent interleaved across chunks, as a test of assembly by index."""
        scripted = tuple(
            ScriptedToolCall.bash(call) if isinstance(call, str) else call for call in calls
        )
        return cls(content=text, calls=scripted, **options)

    @classmethod
    def error(cls, status: int, message: str, *, retry_after: float | str | None = None) -> Reply:
        """An HTTP error with an OpenAI/OpenRouter-style body
        ``{"error": {"code": status, "message": message}}`` (and ``Retry-After``)."""
        return cls(status=status, error_message=message, retry_after=retry_after)

    @classmethod
    def stream_error(
        cls, message: str, *, after_text: str = "", code: int = 502, chunk: int = 8
    ) -> Reply:
        """HTTP 200, ``after_text`` streamed, then an ``{"error": {...}}`` chunk
        (OpenRouter's mid-stream error, with ``finish_reason: "error"``)."""
        return cls(content=after_text, error_message=message, error_code=code, chunk=chunk)

    @classmethod
    def disconnect(cls, *, after_text: str = "", chunk: int = 8) -> Reply:
        """HTTP 200, ``after_text`` streamed, then the stream just ends (a cut connection)."""
        return cls(content=after_text, cut=True, chunk=chunk)


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """A chat-completions request the server received."""

    body: dict[str, Any]
    headers: dict[str, str]
    """Lower-cased header names."""
    path: str
    time: float
    """``time.monotonic()`` when it arrived."""


ReplySource = Reply | Callable[[dict[str, Any]], Reply]


CONNECT_BURST = 1024
"""Connections the scripted model's socket queues before it accepts them: a
benchmark's 200 sessions connect at once, and past the queue (aiohttp's default
is 128) a SYN is dropped and its client retries a whole second later."""


class ScriptedLLM:
    """A scripted OpenAI-compatible server; see the module docstring.

    ``replies`` are answered in order; when they run out, ``default`` answers
    (a :class:`Reply`, or a callable receiving the request JSON and returning
    one); without a default, an exhausted script answers a 500 error saying so
    (with ``x-should-retry: false``, so clients fail at once).
    """

    def __init__(
        self, *replies: Reply, default: ReplySource | None = None, model: str = "test-model"
    ) -> None:
        self.model = model
        self.default = default
        self.requests: list[RecordedRequest] = []
        self._script: deque[Reply] = deque(replies)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._port: int | None = None

    # --- script ----------------------------------------------------------------

    def add(self, *replies: Reply) -> None:
        """Append replies to the script."""
        with self._lock:
            self._script.extend(replies)

    @property
    def pending(self) -> int:
        """Scripted replies not used yet."""
        with self._lock:
            return len(self._script)

    # --- lifecycle -------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` (for ``OPENROUTER_BASE_URL``)."""
        if self._port is None:
            raise RuntimeError("ScriptedLLM is not started")
        return f"http://127.0.0.1:{self._port}/v1"

    def start(self) -> ScriptedLLM:
        """Start serving (returns once the server accepts connections)."""
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK stalls
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(sock, ready, failure), name="ScriptedLLM", daemon=True
        )
        self._thread.start()
        if not ready.wait(10) or failure:
            raise RuntimeError(f"ScriptedLLM could not start its server: {failure}")
        return self

    def _run(
        self, sock: socket.socket, ready: threading.Event, failure: list[BaseException]
    ) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            runner = web.AppRunner(
                self._app(), access_log=None, handle_signals=False, shutdown_timeout=1
            )
            await runner.setup()
            try:
                await web.SockSite(runner, sock, backlog=CONNECT_BURST).start()
                ready.set()
                await self._stopping.wait()
            finally:
                await runner.cleanup()

        try:
            asyncio.run(serve())
        except BaseException as exc:
            failure.append(exc)
            ready.set()

    def stop(self) -> None:
        """Stop serving (open streams get a second to finish)."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=10)
        self._thread = self._loop = self._stopping = None

    def __enter__(self) -> ScriptedLLM:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> ScriptedLLM:
        return await anyio.to_thread.run_sync(self.start)

    async def __aexit__(self, *exc_info: object) -> None:
        await anyio.to_thread.run_sync(self.stop)

    # --- the HTTP side -----------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST)
        for prefix in ("/v1", ""):
            app.router.add_post(f"{prefix}/chat/completions", self._chat)
            app.router.add_get(f"{prefix}/models", self._models)
        return app

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": self.model, "object": "model", "owned_by": "aos.testing"}],
            }
        )

    def _next_reply(self, body: dict[str, Any]) -> tuple[int, Reply | None]:
        with self._lock:
            number = len(self.requests)
            reply = self._script.popleft() if self._script else None
        if reply is None and self.default is not None:
            reply = self.default if isinstance(self.default, Reply) else self.default(body)
        return number, reply

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = msgspec.json.decode(await request.read())
        except msgspec.DecodeError:
            body = None
        if not isinstance(body, dict):
            return _error_response(400, "ScriptedLLM: the request body is not a JSON object")
        recorded = RecordedRequest(
            body=body,
            headers={k.lower(): v for k, v in request.headers.items()},
            path=request.path,
            time=time.monotonic(),
        )
        number, reply = self._next_reply(body)
        with self._lock:
            self.requests.append(recorded)
        if reply is None:
            return _error_response(
                500,
                f"ScriptedLLM: the script is exhausted (request #{number + 1} has no scripted "
                "reply); add Reply items or set a default",
                headers={"x-should-retry": "false"},
            )
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200:
            headers = {} if reply.retry_after is None else {"Retry-After": str(reply.retry_after)}
            return _error_response(reply.status, reply.error_message, headers=headers)
        model = reply.model or str(body.get("model") or self.model)
        if not reply.stream:
            return web.json_response(_whole(reply, body, model, number + 1))
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        # The events are written at once: a scripted reply has nothing to wait for.
        await response.write("".join(_stream(reply, body, model, number + 1)).encode())
        await response.write_eof()
        return response


def _error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"code": status, "message": message}}, status=status, headers=headers
    )


def _pieces(text: str, size: int) -> list[str]:
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _stream(reply: Reply, request: dict[str, Any], model: str, number: int) -> Iterator[str]:
    """The SSE body of a 200 reply (tool call ids default to ``call_<request#>_<index>``)."""
    ident = f"chatcmpl-{uuid.uuid4().hex[:16]}"
    created = int(time.time())

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        chunk = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
            **extra,
        }
        return f"data: {msgspec.json.encode(chunk).decode()}\n\n"

    def delta(fields: dict[str, Any], finish_reason: str | None = None) -> str:
        return event([{"index": 0, "delta": fields, "finish_reason": finish_reason}])

    yield ": OPENROUTER PROCESSING\n\n"  # a keep-alive comment, as OpenRouter sends
    yield delta({"role": "assistant", "content": ""})
    reasoning = _pieces(reply.reasoning, reply.chunk)
    for n, piece in enumerate(reasoning):
        fields: dict[str, Any] = {reply.reasoning_field: piece}
        if reply.signature is not None:
            detail = {"type": "reasoning.text", "text": piece, "format": "anthropic-claude-v1"}
            last = {"signature": reply.signature} if n == len(reasoning) - 1 else {}
            fields["reasoning_details"] = [{**detail, "index": 0, **last}]
        yield delta(fields)
    for piece in _pieces(reply.content, reply.chunk):
        yield delta({"content": piece})
    if reply.cut:
        return
    if reply.error_message:
        error = {"code": reply.error_code, "message": reply.error_message}
        yield event([{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}], error=error)
        return
    arguments = [call.arguments_text() for call in reply.calls]
    for index, call in enumerate(reply.calls):
        head = {
            "index": index,
            "id": _call_id(call, number, index),
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        yield delta({"tool_calls": [head]})
    # the argument pieces of all calls, interleaved: call 0 piece 0, call 1 piece 0, ...
    split = [_pieces(text, max(1, len(text) // 3 + 1)) for text in arguments]
    for round_ in range(max((len(p) for p in split), default=0)):
        for index, pieces in enumerate(split):
            if round_ < len(pieces):
                piece = {"index": index, "function": {"arguments": pieces[round_]}}
                yield delta({"tool_calls": [piece]})
    finish = _finish_reason(reply)
    yield delta({}, finish)
    if (request.get("stream_options") or {}).get("include_usage"):
        usage = reply.usage or _estimate(request, reply, arguments)
        yield event([], usage=_usage_json(usage))
    yield "data: [DONE]\n\n"


def _call_id(call: ScriptedToolCall, number: int, index: int) -> str:
    """The call's scripted id, else ``call_<request#>_<index>``."""
    return call.id or f"call_{number}_{index}"


def _finish_reason(reply: Reply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.calls else "stop")


def _whole(reply: Reply, request: dict[str, Any], model: str, number: int) -> dict[str, Any]:
    """The reply as one ``chat.completion`` body (a server that does not stream)."""
    arguments = [call.arguments_text() for call in reply.calls]
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.calls:
        message["tool_calls"] = [
            {
                "id": _call_id(call, number, index),
                "type": "function",
                "function": {"name": call.name, "arguments": text},
            }
            for index, (call, text) in enumerate(zip(reply.calls, arguments, strict=True))
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _finish_reason(reply),
            }
        ],
        "usage": _usage_json(reply.usage or _estimate(request, reply, arguments)),
    }


def _estimate(request: dict[str, Any], reply: Reply, arguments: list[str]) -> Usage:
    prompt = max(1, len(msgspec.json.encode(request.get("messages", []))) // 4)
    completion = max(1, (len(reply.content) + len(reply.reasoning) + sum(map(len, arguments))) // 4)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _usage_json(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }
    if usage.cost is not None:
        out["cost"] = usage.cost
    return out


async def wait_for_http(url: str, seconds: float = 30.0) -> None:
    """Until something answers HTTP at ``url`` (any status: a page may want a
    token); TimeoutError after ``seconds``."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as client:
        async with asyncio.timeout(seconds):
            while True:
                try:
                    async with client.get(url):
                        return
                except (aiohttp.ClientConnectionError, TimeoutError):
                    await asyncio.sleep(0.05)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def temporary_daemon(project: Path, **environ: str) -> AsyncIterator[Daemon]:
    """A real daemon in the running event loop, with its own data dir, for
    ``project`` (whose ``skills/`` is the configured skill root).

    ``environ`` holds the settings (``AOS_MODEL``, ``OPENROUTER_BASE_URL``...);
    services get them on top of this process's environment. AOS_HOME is a fresh short
    directory under /tmp (Unix socket paths are limited), removed afterwards; the
    web UI (aos-frontend) gets a free port (AOS_FRONTEND_PORT). Use ``daemon.paths.control_socket`` with
    :class:`aos_sdk.Client` (``token=""``: admin), or ``daemon.kernel`` directly.
    """
    from aos.config import load_config
    from aos.daemon import Daemon

    home = Path(tempfile.mkdtemp(prefix="aos-", dir="/tmp"))
    defaults = {"AOS_HOME": str(home)}
    if "AOS_FRONTEND_PORT" not in os.environ:
        defaults["AOS_FRONTEND_PORT"] = str(free_port())
    config = load_config(environ={**defaults, **environ}, cwd=project)
    daemon = Daemon(config)
    try:
        task = await daemon.start(within=60)
        try:
            yield daemon
        finally:
            if daemon.kernel is not None:
                daemon.kernel.shutdown_requested.set()
            await asyncio.wait([task], timeout=60)
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def first_system_prompt(project: Path, **environ: str) -> str:
    """The system prompt a new agent's first session gets on a node serving
    ``project`` with these settings (a :func:`temporary_daemon` started for it):
    to measure what a skill adds to every agent's context."""
    from aos.principals import ADMIN

    async with temporary_daemon(project, **environ) as daemon:
        kernel = daemon.kernel
        assert kernel is not None
        agent = await kernel.syscall(ADMIN, "agent.create", {"name": "probe"})
        session = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]})
        context = await kernel.syscall(ADMIN, "session.context", {"id": session["id"]})
        return str(context[0]["content"])


class NodeProcess:
    """A daemon in a process of its own (``aos start``) serving ``project``, with
    its own fresh AOS_HOME (under /tmp) and the settings ``environ`` on top of this
    process's environment (its ``AOS_*`` and ``OPENROUTER_*`` left out): several
    of them on one PostgreSQL ``AOS_DB_URL`` make a cluster to test or measure::

        node = NodeProcess(project, AOS_DB_URL=url, AOS_MODEL="m", OPENROUTER_BASE_URL=...)
        node.start()
        async with node.client() as client: ...
        node.kill()   # kill -9
        node.stop()   # aos stop, then its home removed
    """

    def __init__(self, project: Path, **environ: str) -> None:
        self.project = project
        self.home = Path(tempfile.mkdtemp(prefix="aos-", dir="/tmp"))
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("AOS_", "OPENROUTER_"))}
        self.env = {
            **clean,
            "AOS_HOME": str(self.home),
            "AOS_FRONTEND_PORT": str(free_port()),
            **environ,
        }
        from aos.paths import Paths

        self.socket = Paths.resolve(self.home).runtime_dir / "aos.sock"
        self.pid = 0
        self.id = ""
        """The node id, once started."""

    def aos(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the ``aos`` command for this node (its environment, in ``project``)."""
        return subprocess.run(
            [str(Path(sys.executable).parent / "aos"), *args],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def start(self) -> None:
        """``aos start``; RuntimeError with its stderr if the daemon did not start."""
        started = self.aos("start", "--json")
        if started.returncode != 0:
            raise RuntimeError(f"the node did not start: {started.stderr.strip()}")
        self.pid = json.loads(started.stdout)["pid"]
        self.id = json.loads(self.aos("status", "--json").stdout)["node"]

    def kill(self) -> None:
        """``kill -9`` the daemon and wait until it is gone."""
        from aos.daemon import alive

        os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the daemon (killed if ``aos stop`` could not) and remove its home."""
        from aos.daemon import alive

        self.aos("stop")
        if self.pid and alive(self.pid):
            self.kill()
        shutil.rmtree(self.home, ignore_errors=True)

    def client(self) -> Client:
        """An admin client on the node's control socket."""
        from aos_sdk import Client

        return Client(self.socket, token="")


@contextlib.contextmanager
def running_nodes(project: Path, count: int, **environ: str) -> Iterator[list[NodeProcess]]:
    """``count`` :class:`NodeProcess` daemons with the same settings, started one
    after another and all stopped at the end: a cluster, when ``AOS_DB_URL`` names
    one PostgreSQL database."""
    nodes = [NodeProcess(project, **environ) for _ in range(count)]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()
