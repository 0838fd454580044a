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

The decorated factory returns ``{"hooks": {hook name: function}}``. A gate
function gets ``(input, output)``, a notify function ``(event)``, a provide
function ``(input)``; each may be sync or async. Instead of a bare function a
hook may map to ``{"fn": f, "priority": "first"|"normal"|"last",
"timeout": seconds, "failure": "fail-open"|"fail-closed"}``.

The kernel runs the file with ``python -m aos_sdk.run FILE``; running the file
directly works too. Inside hook functions, :func:`syscall` calls the kernel as
``service:<skill>`` over the service's own connection.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from aos_sdk.client import SDK, SyscallFailed
from aos_sdk.peer import Peer, RemoteError
from aos_sdk.protocol import (
    MAX_FRAME,
    Error,
    Hello,
    HookCall,
    HookDecl,
    HookResult,
    Message,
    Syscall,
    SyscallResult,
    Welcome,
)

_GATE_ARGS = ("input", "output")


class ServiceDefinitionError(Exception):
    """The factory's return value is not a valid service definition."""


class ServiceSpec:
    def __init__(self, factory: Callable[[], dict[str, Any]]) -> None:
        self.factory = factory
        self.hooks: dict[str, Callable[..., Any]] = {}
        self.decls: list[HookDecl] = []

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


_registered: list[ServiceSpec] = []
_peer: Peer | None = None


def define_service(factory: Callable[[], dict[str, Any]]) -> ServiceSpec:
    """Declare the service of this skill (see the module docstring)."""
    spec = ServiceSpec(factory)
    _registered.append(spec)
    if factory.__module__ == "__main__":  # the file was run directly
        sys.exit(run(spec))
    return spec


async def syscall(name: str, params: dict[str, Any] | None = None) -> Any:
    """Call the kernel from inside a service (as ``service:<skill>``)."""
    if _peer is None:
        raise RuntimeError("syscall() works inside a running service; scripts use aos_sdk.Client")
    try:
        reply: SyscallResult = await _peer.request(
            Syscall(id=_peer.next_id(), name=name, params=params or {})
        )
    except RemoteError as exc:
        raise SyscallFailed(exc.code, exc.message) from None
    return reply.result


async def _answer(spec: ServiceSpec, _: Peer, message: Message) -> Message | None:
    if not isinstance(message, HookCall):
        return Error(
            id=getattr(message, "id", None),
            code="protocol",
            message="services answer hook calls only",
        )
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


async def serve(spec: ServiceSpec) -> int:
    """Connect to the kernel, say hello, answer hook calls until the kernel hangs up."""
    global _peer
    socket_path = os.environ.get("AOS_SERVICE_SOCKET")
    skill = os.environ.get("AOS_SKILL")
    if not socket_path or not skill:
        print(
            "aos service: AOS_SERVICE_SOCKET and AOS_SKILL are not set: the kernel starts services",
            file=sys.stderr,
        )
        return 2
    spec.build()
    reader, writer = await asyncio.open_unix_connection(socket_path, limit=MAX_FRAME + 64)
    peer = Peer(reader, writer)
    peer.send(Hello(role="service", sdk=SDK, skill=skill, hooks=spec.decls))
    reply = await peer.read_message()
    if not isinstance(reply, Welcome):
        detail = (
            f"{reply.code}: {reply.message}" if isinstance(reply, Error) else type(reply).__name__
        )
        print(f"aos service {skill}: the kernel refused the hello: {detail}", file=sys.stderr)
        await peer.close()
        return 1
    peer.handler = lambda p, m: _answer(spec, p, m)
    _peer = peer
    try:
        await peer.serve()
    finally:
        _peer = None
    return 0


def run(spec: ServiceSpec) -> int:
    try:
        return asyncio.run(serve(spec))
    except KeyboardInterrupt:
        return 0
