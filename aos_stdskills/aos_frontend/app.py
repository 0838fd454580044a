"""aos-frontend's web app: a JSON API onto syscalls, live events, the static page.

Every ``/api`` endpoint maps onto one syscall made over the service's own
connection (as ``service:aos-frontend``): the kernel checks each against the
scopes in SKILL.md, and there is no generic pass-through, so the page can reach
nothing else. Syscall errors keep their code (``denied`` -> 403, ``not_found``
-> 404, ``conflict`` -> 409...).

Live updates are Server-Sent Events. The service holds one ``events.subscribe``
subscription (:class:`Hub`) and fans its events out to the open streams:
``/api/sessions/{id}/events`` sends the session's facts after a given ``seq``
(from ``session.history``, then as they are appended; the ``seq`` is the event
id, so a reconnecting browser resumes where it stopped) and the model's
``stream`` deltas; ``/api/events`` tells pages that something changed;
``/api/log/stream`` tails the RuntimeLog (``log.read`` with ``after_id``).

Security (:class:`Guard`): every request must carry the access token, on a
loopback address too (an agent's processes share the host's loopback):
``Authorization: Bearer``, the ``aos_frontend_token_<port>`` cookie, or ``?token=``,
which sets that HttpOnly cookie (``access.py`` says where the token comes
from); on a loopback address the ``Host`` header must
name a loopback host (no DNS rebinding); state-changing requests must be JSON
from the page's own origin (no cross-site form posts); every response carries a
strict Content-Security-Policy. User content is escaped by the page, which
builds its DOM with ``textContent`` only: the API returns text as it is.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import ipaddress
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from aos_sdk import SyscallFailed
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # access.py beside this file (also in a copy of the skill)
    sys.path.insert(0, str(HERE))

from access import HOW_TO_OPEN, page_url  # noqa: E402

STATIC = HERE / "static"
COOKIE = "aos_frontend_token"
"""The cookie's name, followed by ``_<port>``: cookies ignore ports, and two nodes' UIs on
one host must not overwrite each other's."""
TOPICS = ["history.append", "stream", "skill", "service"]
QUEUE_LIMIT = 10_000
"""Events one open stream may fall behind by; past it the stream ends and the
browser reconnects (resuming from history by ``seq``)."""
KEEPALIVE = 15.0
LOG_POLL = 1.0
MAX_LOG_LIMIT = 1000
LOG_FILTERS = ("session_id", "agent_id", "kind", "level", "skill", "search")
"""``log.read``'s filters the log page and its live tail pass through."""
HTTP_STATUS = {
    "invalid": 400,
    "unknown": 400,
    "denied": 403,
    "not_found": 404,
    "conflict": 409,
    "unavailable": 503,
}
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]

Call = Callable[[str, dict[str, Any]], Awaitable[Any]]
EventSource = Callable[[], AsyncIterator[tuple[str, Any]]]


@dataclass(frozen=True)
class Settings:
    token: str
    """The access token every request must carry: there is no open mode."""
    host: str = "127.0.0.1"
    port: int = 3000

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def cookie(self) -> str:
        return f"{COOKIE}_{self.port}"

    @property
    def url(self) -> str:
        """The address without its token (what logs may show)."""
        return page_url(self.host, self.port)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# -- the event hub -----------------------------------------------------------------------


@dataclass(eq=False)
class Listener:
    topics: frozenset[str]
    session_id: str | None = None
    queue: asyncio.Queue[tuple[str, Any] | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_LIMIT)
    )

    def wants(self, topic: str, data: Any) -> bool:
        if topic not in self.topics:
            return False
        if self.session_id is None or topic not in ("history.append", "stream"):
            return True
        return isinstance(data, dict) and data.get("session_id") == self.session_id

    def drain(self) -> list[tuple[str, Any] | None]:
        items: list[tuple[str, Any] | None] = []
        while not self.queue.empty():
            items.append(self.queue.get_nowait())
        return items


class Hub:
    """One kernel subscription for the whole service, fanned out to open streams."""

    def __init__(self, source: EventSource) -> None:
        self.source = source
        self.listeners: set[Listener] = set()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    def listen(self, topics: frozenset[str], session_id: str | None = None) -> Listener:
        listener = Listener(topics, session_id)
        self.listeners.add(listener)
        return listener

    def drop(self, listener: Listener) -> None:
        self.listeners.discard(listener)

    async def _run(self) -> None:
        try:
            async for topic, data in self.source():
                for listener in list(self.listeners):
                    if listener.wants(topic, data):
                        try:
                            listener.queue.put_nowait((topic, data))
                        except asyncio.QueueFull:  # too slow: it ends and reconnects
                            self.drop(listener)
                            listener.queue.get_nowait()
                            listener.queue.put_nowait(None)
        except Exception as exc:
            print(f"aos-frontend: the event subscription failed: {exc}", file=sys.stderr)
        finally:
            for listener in list(self.listeners):
                self.drop(listener)
                with contextlib.suppress(asyncio.QueueFull):
                    listener.queue.put_nowait(None)


def sse(data: Any, event: str | None = None, ident: int | None = None) -> str:
    lines = []
    if event is not None:
        lines.append(f"event: {event}")
    if ident is not None:
        lines.append(f"id: {ident}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))  # one line
    return "\n".join(lines) + "\n\n"


def event_stream(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# -- security ----------------------------------------------------------------------------------


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class Guard:
    """Token, Host and Origin checks, and security headers, around the whole app."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        request = Request(scope)
        refusal = self.refusal(request)
        if refusal is None and self.wants_cookie(request):
            refusal = self.set_cookie(request)
        await (refusal or self.app)(scope, receive, send_with_headers)

    def refusal(self, request: Request) -> Response | None:
        api = request.url.path.startswith("/api/")
        host = _host_name(request.headers.get("host", ""))
        if self.settings.loopback and not is_loopback(host) and host != self.settings.host:
            return _refuse(
                api, 421, "misdirected", f"aos-frontend answers to a loopback host, not {host!r}"
            )
        if not self.authorized(request, self.settings.token):
            return _refuse(
                api,
                401,
                "unauthorized",
                f"aos-frontend needs its access token: {HOW_TO_OPEN} "
                "(or send Authorization: Bearer TOKEN)",
            )
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            origin = request.headers.get("origin")
            if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
                return _refuse(api, 403, "denied", f"cross-origin request from {origin} refused")
            if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                return _refuse(api, 415, "invalid", "send the request body as application/json")
        return None

    def authorized(self, request: Request, token: str) -> bool:
        offered = []
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            offered.append(header[7:].strip())
        offered.append(request.cookies.get(self.settings.cookie, ""))
        offered.append(request.query_params.get("token", ""))
        wanted = token.encode()
        return any(hmac.compare_digest(o.encode(), wanted) for o in offered if o)

    def wants_cookie(self, request: Request) -> bool:
        """The page opened with a right ?token=: it is remembered in a cookie."""
        return (
            request.method == "GET"
            and "token" in request.query_params
            and not request.url.path.startswith("/api/")
        )

    def set_cookie(self, request: Request) -> Response:
        """Remember the token in an HttpOnly cookie and drop it from the address."""
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            self.settings.cookie, self.settings.token, httponly=True, samesite="strict", path="/"
        )
        return response


def _refuse(api: bool, status: int, code: str, message: str) -> Response:
    if api:
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)
    return PlainTextResponse(message + "\n", status_code=status)


# -- the app -------------------------------------------------------------------------------------


class BadRequest(Exception):
    status = 400
    code = "invalid"


class TooLarge(BadRequest):
    status = 413
    code = "too_large"


MAX_BODY = 1024 * 1024
"""Bytes a request body may have (a message, an agent's settings): more is a 413."""


N = TypeVar("N", int, float)


def _number(request: Request, name: str, kind: type[N], what: str) -> N | None:
    """A numeric query parameter (absent or empty: None); a bad one is a BadRequest."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise BadRequest(f"{name} must be {what}, not {raw!r}") from None


def _int(request: Request, name: str, default: int | None = None) -> int | None:
    value = _number(request, name, int, "an integer")
    return default if value is None else value


def _float(request: Request, name: str) -> float | None:
    return _number(request, name, float, "a number")


def _text(request: Request, name: str) -> str | None:
    return request.query_params.get(name) or None


def _flag(request: Request, name: str) -> bool | None:
    """A yes/no query parameter: ``1``, ``true`` or ``yes`` (absent: None)."""
    raw = request.query_params.get(name)
    return None if raw is None else raw.lower() in ("1", "true", "yes")


def _list(request: Request, name: str) -> list[str] | None:
    """A comma-separated query parameter (absent: None)."""
    raw = request.query_params.get(name)
    return None if raw is None else [item for item in raw.split(",") if item]


async def _body(request: Request) -> dict[str, Any]:
    """The JSON object of the request, read up to :data:`MAX_BODY` bytes."""
    too_large = TooLarge(
        f"the request body is over {MAX_BODY // 1024 // 1024} MiB: send less (a long text "
        "belongs in a file in the agent's workspace)"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadRequest("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def _error(code: str, message: str, syscall: str | None = None) -> JSONResponse:
    error = {"code": code, "message": message}
    if syscall is not None:
        error["syscall"] = syscall
    return JSONResponse({"error": error}, status_code=HTTP_STATUS.get(code, 500))


def create_app(settings: Settings, call: Call, hub: Hub) -> ASGIApp:
    """The ASGI app: ``call(name, params)`` makes a syscall as the service."""

    async def run(name: str, params: dict[str, Any]) -> Response:
        try:
            return JSONResponse(await call(name, params))
        except SyscallFailed as exc:
            return _error(exc.code, exc.message, name)
        except (RuntimeError, ConnectionError) as exc:  # the kernel connection is gone
            return _error("unavailable", f"{name}: {exc}", name)

    def endpoint(
        build: Callable[[Request], Awaitable[tuple[str, dict[str, Any]]]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            try:
                name, params = await build(request)
            except BadRequest as exc:
                return JSONResponse(
                    {"error": {"code": exc.code, "message": str(exc)}}, status_code=exc.status
                )
            return await run(name, {k: v for k, v in params.items() if v is not None})

        return handle

    def path_call(
        syscall: str, **from_path: str
    ) -> Callable[[Request], Awaitable[tuple[str, dict[str, Any]]]]:
        """A syscall whose params are the route's path params (param=path name)."""

        async def build(r: Request) -> tuple[str, dict[str, Any]]:
            return syscall, {param: r.path_params[key] for param, key in from_path.items()}

        return build

    # -- agents
    async def agent_list(r: Request) -> tuple[str, dict[str, Any]]:
        return "agent.list", {"parent": _text(r, "parent"), "status": _text(r, "status")}

    async def agent_create(r: Request) -> tuple[str, dict[str, Any]]:
        body = await _body(r)
        config = dict(body.get("config") or {})
        if body.get("model"):
            config["model"] = body["model"]
        params: dict[str, Any] = {
            "name": body.get("name"),
            "parent": body.get("parent") or None,
            "config": config,
        }
        if body.get("scopes") is not None:
            params["scopes"] = body["scopes"]
        return "agent.create", params

    async def agent_update(r: Request) -> tuple[str, dict[str, Any]]:
        """The page sends the agent's whole config (agent.update replaces it)."""
        body = await _body(r)
        params: dict[str, Any] = {"id": r.path_params["id"], "config": body.get("config")}
        if body.get("name"):
            params["name"] = body["name"]
        if body.get("parent") is not None:  # moved ("" makes it a root agent; null: kept)
            params["parent"] = body["parent"]
        return "agent.update", params

    # -- sessions
    async def session_list(r: Request) -> tuple[str, dict[str, Any]]:
        return "session.list", {
            "agent_id": _text(r, "agent_id"),
            "status": _text(r, "status"),
            "outcome": _text(r, "outcome"),
            "search": _text(r, "search"),
            "limit": _int(r, "limit"),
        }

    async def session_update(r: Request) -> tuple[str, dict[str, Any]]:
        body = await _body(r)
        return "session.update", {"id": r.path_params["id"], "title": body.get("title")}

    async def session_create(r: Request) -> tuple[str, dict[str, Any]]:
        body = await _body(r)
        return "session.create", {"agent_id": body.get("agent_id"), "title": body.get("title")}

    async def session_history(r: Request) -> tuple[str, dict[str, Any]]:
        return "session.history", {
            "id": r.path_params["id"],
            "after": _int(r, "after"),
            "until": _int(r, "until"),
            "limit": _int(r, "limit"),
            "kinds": _list(r, "kinds"),
            "newest": _flag(r, "newest"),
        }

    async def session_context(r: Request) -> tuple[str, dict[str, Any]]:
        return "session.context", {"id": r.path_params["id"], "explain": _flag(r, "explain")}

    async def session_dispatch(r: Request) -> tuple[str, dict[str, Any]]:
        body = await _body(r)
        message = body.get("message")
        return "session.dispatch", {"id": r.path_params["id"], "message": message, "wait": False}

    # -- skills, hooks, log
    def log_filters(r: Request) -> dict[str, Any]:
        return {name: _text(r, name) for name in LOG_FILTERS}

    async def usage(r: Request) -> tuple[str, dict[str, Any]]:
        return "session.usage", {"ids": _list(r, "ids"), "by": _text(r, "by")}

    async def log_read(r: Request) -> tuple[str, dict[str, Any]]:
        limit = _int(r, "limit", 100) or 100
        return "log.read", {
            **log_filters(r),
            "since": _float(r, "since"),
            "until": _float(r, "until"),
            "after_id": _int(r, "after_id"),
            "before_id": _int(r, "before_id"),
            "limit": max(1, min(limit, MAX_LOG_LIMIT)),
            "newest_first": _flag(r, "newest_first"),
        }

    # -- live streams
    async def session_events(request: Request) -> Response:
        session_id = request.path_params["id"]
        try:
            after = int(
                request.headers.get("last-event-id") or request.query_params.get("after") or 0
            )
        except ValueError:
            return _error("invalid", "after must be an integer")
        listener = hub.listen(frozenset({"history.append", "stream"}), session_id)
        try:  # listening first, then reading: a fact appended in between is not lost
            backlog = await call("session.history", {"id": session_id, "after": after})
        except SyscallFailed as exc:
            hub.drop(listener)
            return _error(exc.code, exc.message, "session.history")

        def render(topic: str, data: dict[str, Any]) -> str:
            if topic == "stream":
                return sse({k: data.get(k) for k in ("kind", "text", "dispatch_id")}, event="delta")
            entry = {k: data.get(k) for k in ("session_id", "seq", "ts", "fact")}
            return sse(entry, event="fact", ident=data["seq"])

        async def body() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                last = after
                for entry in backlog:
                    yield render("history.append", entry)
                    last = max(last, entry["seq"])
                queued = listener.drain()
                # deltas queued before a fact the backlog already held belong to a
                # message the page has whole: skip them
                stale = [
                    i
                    for i, item in enumerate(queued)
                    if item is not None and item[0] == "history.append" and item[1]["seq"] <= last
                ]
                pending = collections.deque(queued[stale[-1] + 1 :] if stale else queued)
                while True:  # what was queued meanwhile, then what comes
                    if pending:
                        item = pending.popleft()
                    else:
                        try:
                            item = await asyncio.wait_for(listener.queue.get(), KEEPALIVE)
                        except TimeoutError:
                            yield ": keep-alive\n\n"
                            continue
                    if item is None:
                        break
                    topic, data = item
                    if topic == "history.append":
                        if data["seq"] <= last:
                            continue
                        last = data["seq"]
                    yield render(topic, data)
            finally:
                hub.drop(listener)

        return event_stream(body())

    async def node_events(request: Request) -> Response:
        """What changed anywhere: pages reload what they show."""
        listener = hub.listen(frozenset({"history.append", "skill", "service"}))

        def summary(topic: str, data: Any) -> dict[str, Any]:
            if topic == "history.append":
                fact = data.get("fact") or {}
                return {
                    "topic": topic,
                    "session_id": data.get("session_id"),
                    "agent_id": data.get("agent_id"),
                    "seq": data.get("seq"),
                    "kind": fact.get("kind"),
                }
            return {"topic": topic, **(data if isinstance(data, dict) else {"data": data})}

        async def body() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                while True:
                    try:
                        item = await asyncio.wait_for(listener.queue.get(), KEEPALIVE)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if item is None:
                        break
                    yield sse(summary(*item), event="change")
            finally:
                hub.drop(listener)

        return event_stream(body())

    async def log_stream(request: Request) -> Response:
        try:
            filters = {k: v for k, v in log_filters(request).items() if v is not None}
            start = _int(request, "after_id")
            if request.headers.get("last-event-id"):
                start = int(request.headers["last-event-id"])
        except (BadRequest, ValueError) as exc:
            return _error("invalid", str(exc))
        try:
            if start is None:  # from now on
                newest = await call("log.read", {**filters, "limit": 1, "newest_first": True})
                start = newest[0]["id"] if newest else 0
        except SyscallFailed as exc:
            return _error(exc.code, exc.message, "log.read")

        async def body() -> AsyncIterator[str]:
            last = start or 0
            yield "retry: 2000\n\n"
            quiet = 0.0
            while True:
                try:
                    entries = await call("log.read", {**filters, "after_id": last, "limit": 200})
                except SyscallFailed as exc:
                    yield sse({"code": exc.code, "message": exc.message}, event="failure")
                    return
                for entry in entries:
                    last = entry["id"]
                    yield sse(entry, event="log", ident=entry["id"])
                if entries:
                    quiet = 0.0
                    continue
                await asyncio.sleep(LOG_POLL)
                quiet += LOG_POLL
                if quiet >= KEEPALIVE:
                    quiet = 0.0
                    yield ": keep-alive\n\n"

        return event_stream(body())

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def no_content(request: Request) -> Response:
        return Response(status_code=204)

    async def not_found(request: Request) -> Response:
        return _error("not_found", f"no API endpoint {request.method} {request.url.path}")

    get, post = ["GET"], ["POST"]
    routes = [
        Route("/", index),
        Route("/favicon.ico", no_content),
        Route("/api/agents", endpoint(agent_list), methods=get),
        Route("/api/agents", endpoint(agent_create), methods=post),
        Route("/api/agents/{id}", endpoint(path_call("agent.get", id="id")), methods=get),
        Route("/api/agents/{id}", endpoint(agent_update), methods=post),
        Route(
            "/api/agents/{id}/archive", endpoint(path_call("agent.archive", id="id")), methods=post
        ),
        Route("/api/sessions", endpoint(session_list), methods=get),
        Route("/api/sessions", endpoint(session_create), methods=post),
        Route("/api/sessions/{id}", endpoint(path_call("session.get", id="id")), methods=get),
        Route("/api/sessions/{id}", endpoint(session_update), methods=post),
        Route("/api/sessions/{id}/history", endpoint(session_history), methods=get),
        Route("/api/sessions/{id}/dispatch", endpoint(session_dispatch), methods=post),
        Route(
            "/api/sessions/{id}/interrupt",
            endpoint(path_call("session.interrupt", id="id")),
            methods=post,
        ),
        Route(
            "/api/sessions/{id}/archive",
            endpoint(path_call("session.archive", id="id")),
            methods=post,
        ),
        Route(
            "/api/sessions/{id}/context",
            endpoint(session_context),
            methods=get,
        ),
        Route("/api/sessions/{id}/events", session_events, methods=get),
        Route("/api/skills", endpoint(path_call("skill.list")), methods=get),
        Route("/api/skills/{name}", endpoint(path_call("skill.get", name="name")), methods=get),
        Route(
            "/api/skills/{name}/reload",
            endpoint(path_call("skill.reload", name="name")),
            methods=post,
        ),
        Route("/api/hooks", endpoint(path_call("hook.list")), methods=get),
        Route("/api/node", endpoint(path_call("kernel.status")), methods=get),
        Route("/api/usage", endpoint(usage), methods=get),
        Route("/api/log", endpoint(log_read), methods=get),
        Route("/api/log/stream", log_stream, methods=get),
        Route("/api/events", node_events, methods=get),
        Route("/api/{rest:path}", not_found, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Guard(Starlette(routes=routes), settings)
