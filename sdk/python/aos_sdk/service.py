"""``define_service``: a skill's service face in a few lines.

```python
from aos_sdk import define_service

@define_service
def service():
    def guard(input_data, output_data):
        if "rm -rf /" in output_data["args"].get("command", ""):
            return {"verdict": "reject", "reason": "blocked"}
        return output_data
    return {"hooks": {"tool.before": guard}}
```

The decorated factory returns ``{"hooks": {hook name: function}}``, and
optionally ``"methods": {name: function(caller, params)}`` (called by agents
and clients through the ``skill.call`` syscall; raise :class:`MethodError` to
refuse) and ``"start": function()`` (run once connected). A gate
function gets ``(input, output)``, a notify function ``(event)``, a provide
function ``(input)``; each may be sync or async. Instead of a bare function a
hook may map to ``{"fn": f, "priority": "first"|"normal"|"last",
"timeout": seconds, "failure": "fail-open"|"fail-closed"}``.

The kernel runs the file with ``python -m aos_sdk.run FILE``; running the file
directly works too. Run anywhere else with ``AOS_URL=ws://HOST:PORT``,
``AOS_SKILL`` and ``AOS_TOKEN`` (``aos service token NAME``), the same file is a
remote service attached over the node's WebSocket face. Inside hook functions, :func:`syscall` calls the kernel as
``service:<skill>`` over the service's own connection.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import os
import signal
import sys
from collections.abc import AsyncGenerator, Callable
from typing import Any

from aos_sdk.client import SDK, connect, handshake, peer_syscall, subscribe_params
from aos_sdk.errors import ConnectionClosed, NotConnected, SyscallFailed
from aos_sdk.peer import Peer
from aos_sdk.protocol import (
    Bye,
    Error,
    ErrorCode,
    Event,
    Hello,
    HookCall,
    HookDecl,
    HookResult,
    Message,
)
from aos_sdk.transport import is_url

CONNECT_TIMEOUT = 10.0
"""Seconds a service waits for the kernel to answer its connect."""

_GATE_ARGS = ("input", "output")


class ServiceDefinitionError(Exception):
    """The factory's return value is not a valid service definition."""


class MethodError(Exception):
    """Raise from a method to refuse a call: ``code`` is what the caller sees
    (``invalid``, ``denied``, ``not_found``, ``conflict``...)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message


class ServiceSpec:
    def __init__(self, factory: Callable[[], dict[str, Any]]) -> None:
        self.factory = factory
        self.hooks: dict[str, Callable[..., Any]] = {}
        self.decls: list[HookDecl] = []
        self.methods: dict[str, Callable[..., Any]] = {}
        self.start: Callable[[], Any] | None = None

    def build(self) -> None:
        definition = self.factory()
        if not isinstance(definition, dict) or not isinstance(definition.get("hooks", {}), dict):
            raise ServiceDefinitionError(
                'the service factory must return {"hooks": {"hook.name": function}}'
            )
        for name, value in definition.get("hooks", {}).items():
            if callable(value):
                fn, options = value, {}
            elif isinstance(value, dict) and callable(value.get("fn")):
                fn, options = value["fn"], {k: v for k, v in value.items() if k != "fn"}
            else:
                raise ServiceDefinitionError(
                    f"hook {name!r} must map to a function or {{'fn': ...}}"
                )
            self.hooks[name] = fn
            self.decls.append(HookDecl(name=name, **options))
        methods = definition.get("methods", {})
        if not isinstance(methods, dict) or not all(callable(m) for m in methods.values()):
            raise ServiceDefinitionError('"methods" must map names to functions(caller, params)')
        self.methods = dict(methods)
        start = definition.get("start")
        if start is not None and not callable(start):
            raise ServiceDefinitionError('"start" must be a function run once connected')
        self.start = start


_registered: list[ServiceSpec] = []
_peer: Peer | None = None


def define_service(factory: Callable[[], dict[str, Any]]) -> ServiceSpec:
    """Declare the service of this skill (see the module docstring)."""
    spec = ServiceSpec(factory)
    _registered.append(spec)
    if factory.__module__ == "__main__":  # the file was run directly
        sys.exit(run(spec))
    return spec


async def leave(reason: str = "") -> None:
    """Leave on purpose: say ``bye`` (with ``reason``) and close the connection;
    the service then exits 0, and the kernel records a clean stop, not a crash
    (it stays stopped until ``aos skill reload``)."""
    if _peer is None:
        raise RuntimeError("leave() works inside a running service")
    _peer.send(Bye(reason=reason))
    await _peer.close(f"left: {reason}" if reason else "left")


async def syscall(name: str, params: dict[str, Any] | None = None) -> Any:
    """Call the kernel from inside a service (as ``service:<skill>``); made while
    handling a hook call or method, it carries that call's trace context."""
    if _peer is None:
        raise RuntimeError("syscall() works inside a running service; scripts use aos_sdk.Client")
    return await peer_syscall(_peer, name, params, _traceparent.get())


_traceparent: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "aos_traceparent", default=None
)


def traceparent() -> str | None:
    """The W3C trace context of the hook call or method being handled, when the
    node traces (OpenTelemetry): start your own spans as its children, e.g.
    ``TraceContextTextMapPropagator().extract({"traceparent": traceparent()})``."""
    return _traceparent.get()


_queues: dict[int, asyncio.Queue[Event | None]] = {}
_early: dict[int, list[Event]] = {}
"""Events that came with (or right after) their subscribe reply, before the queue."""
_done: set[int] = set()


def _on_event(event: Event) -> None:
    queue = _queues.get(event.subscription)
    if queue is not None:
        queue.put_nowait(event)
    elif event.subscription not in _done:
        _early.setdefault(event.subscription, []).append(event)


async def subscribe(
    topics: list[str] | None = None, session_id: str | None = None
) -> AsyncGenerator[Event, None]:
    """Kernel events (``events.subscribe``) on the service's own connection."""
    params = subscribe_params(topics, session_id)
    queue: asyncio.Queue[Event | None] = asyncio.Queue()
    subscribed = await syscall("events.subscribe", params)
    _queues[subscribed["subscription"]] = queue
    for early in _early.pop(subscribed["subscription"], []):
        queue.put_nowait(early)
    try:
        while (event := await queue.get()) is not None:
            yield event
    finally:
        _queues.pop(subscribed["subscription"], None)
        _done.add(subscribed["subscription"])


async def _answer(spec: ServiceSpec, _: Peer, message: Message) -> Message | None:
    if not isinstance(message, HookCall):
        return Error(
            id=getattr(message, "id", None),
            code="protocol",
            message="services answer hook calls only",
        )
    _traceparent.set(message.traceparent)  # this call's task: its handler and syscalls
    if message.hook.startswith("method:"):
        return await _method(spec, message)
    fn = spec.hooks.get(message.hook)
    if fn is None:
        return HookResult(id=message.id, error=f"this service does not implement {message.hook}")
    args = message.args
    try:
        if "output" in args:
            result = fn(*(args[a] for a in _GATE_ARGS))
        elif "event" in args:
            result = fn(args["event"])
        else:
            result = fn(args.get("input"))
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        return HookResult(id=message.id, error=f"{type(exc).__name__}: {exc}")
    return HookResult(id=message.id, result=result)


async def _method(spec: ServiceSpec, message: HookCall) -> HookResult:
    name = message.hook.removeprefix("method:")
    fn = spec.methods.get(name)
    if fn is None:
        return HookResult(id=message.id, error=f"no method {name!r}", code="unknown")
    try:
        result = fn(message.args.get("caller", {}), message.args.get("params", {}))
        if inspect.isawaitable(result):
            result = await result
    except MethodError as exc:
        return HookResult(id=message.id, error=exc.message, code=exc.code)
    except Exception as exc:
        return HookResult(id=message.id, error=f"{type(exc).__name__}: {exc}", code="unavailable")
    return HookResult(id=message.id, result=result)


async def serve(spec: ServiceSpec) -> int:
    """Connect to the kernel, say hello, answer hook calls until the kernel hangs up."""
    global _peer
    target = os.environ.get("AOS_SERVICE_SOCKET") or os.environ.get("AOS_URL")
    skill = os.environ.get("AOS_SKILL")
    if not target or not skill:
        print(
            "aos service: AOS_SKILL and AOS_SERVICE_SOCKET are not set: the kernel starts "
            "services (a remote service sets AOS_SKILL, AOS_URL=ws://... and AOS_TOKEN)",
            file=sys.stderr,
        )
        return 2
    spec.build()
    try:
        peer = Peer(await connect(target, CONNECT_TIMEOUT), on_event=_on_event)
        await handshake(
            peer,
            Hello(
                role="service",
                sdk=SDK,
                skill=skill,
                hooks=spec.decls,
                methods=list(spec.methods),
                token=os.environ.get("AOS_TOKEN") if is_url(target) else None,
            ),
        )
    except NotConnected as exc:
        print(f"aos service {skill}: {exc}", file=sys.stderr)
        return 1
    except (ConnectionClosed, SyscallFailed) as exc:
        print(f"aos service {skill}: the kernel refused the hello: {exc}", file=sys.stderr)
        return 1
    peer.handler = lambda p, m: _answer(spec, p, m)
    _peer = peer
    loop = asyncio.get_running_loop()
    serving = loop.create_task(peer.serve())
    # SIGTERM ends the connection, then the process leaves as after a close: its
    # tasks are cancelled and their cleanup runs (a service's own children stop).
    loop.add_signal_handler(signal.SIGTERM, lambda: loop.create_task(peer.close("SIGTERM")))
    try:
        if spec.start is not None:  # once connected: it may call syscalls
            started = spec.start()
            if inspect.isawaitable(started):
                await started
        await serving
    finally:
        _peer = None
        loop.remove_signal_handler(signal.SIGTERM)
    return 0


def run(spec: ServiceSpec) -> int:
    try:
        return asyncio.run(serve(spec))
    except KeyboardInterrupt:
        return 0
