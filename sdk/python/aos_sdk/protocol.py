"""The AgentOS wire protocol: frames and messages.

A frame is a 4-byte big-endian unsigned length followed by that many bytes of
MessagePack: one message, a map whose ``type`` field names it. The kernel and
every SDK import these structs, so each message has exactly one definition.
docs/specs/aos-service.md specifies the protocol for other languages.
"""

from __future__ import annotations

import struct
from typing import Any, Literal

import msgspec

from aos_sdk.errors import MAX_FRAME, FrameTooLarge

PROTOCOL_VERSION = 1
FRAME_TIMEOUT = 30.0
"""Seconds a frame may take to arrive whole, once its first byte has."""
"""Largest body a peer accepts (bytes); a longer length prefix is a protocol error."""
HEADER = struct.Struct(">I")

Role = Literal["service", "client"]
HookKind = Literal["gate", "notify", "provide", "register"]
"""How a hook's implementations are called (docs/specs/aos-hooks.md)."""
FailurePolicy = Literal["fail-open", "fail-closed"]
"""What an implementation's failure or timeout means for the operation."""
SyscallErrorCode = Literal["unknown", "invalid", "denied", "not_found", "conflict", "unavailable"]
"""Why a syscall failed (docs/specs/aos-syscall.md#errors)."""
ErrorCode = Literal[SyscallErrorCode, "protocol"]
"""An ``error`` frame's code: a syscall's, or ``protocol`` for a malformed frame."""


class _Message(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=True):
    pass


class HookDecl(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A hook a service implements."""

    name: str
    """Dotted hook name, e.g. ``tool.before``."""
    kind: HookKind | None = None
    """Optional; when given it must match the hook's kind."""
    priority: Literal["first", "normal", "last"] = "normal"
    """Where it runs in the chain: pluggy's tryfirst / registration order / trylast."""
    timeout: float | None = None
    failure: FailurePolicy | None = None


class Hello(_Message, tag="hello"):
    """First message of the connecting side."""

    role: Role
    sdk: str
    """SDK name and version, e.g. ``aos-sdk-python/0.1.0``."""
    protocol: int = PROTOCOL_VERSION
    skill: str | None = None
    """For services: the skill it serves (must match the socket it connected to)."""
    token: str | None = None
    """For clients: a token (agent/service); none on the control socket means the
    peer's own OS user, which is admin when it is the daemon's user."""
    hooks: list[HookDecl] = []
    methods: list[str] = []
    """For services: methods callers may invoke through the ``skill.call`` syscall."""


class Welcome(_Message, tag="welcome"):
    node: str
    version: str
    principal: str
    protocol: int = PROTOCOL_VERSION
    max_frame: int = MAX_FRAME


class HookCall(_Message, tag="hook_call"):
    """Kernel -> service: run your implementation of ``hook``, or (``hook`` =
    ``method:NAME``) your method NAME for a ``skill.call`` with ``args``
    ``{"caller": {...}, "params": {...}}``."""

    id: int
    hook: str
    args: dict[str, Any]
    """``{"input", "output"}`` for gates, ``{"event"}`` for notify, ``{"input"}`` for provide."""
    timeout: float | None = None
    traceparent: str | None = None
    """The W3C trace context of the kernel's span for this call, when the node traces:
    a service's own spans continue it (``aos_sdk.service.traceparent()``)."""


class HookResult(_Message, tag="hook_result"):
    id: int
    result: Any = None
    """The gate's output or verdict, the provide result; null for notify."""
    error: str | None = None
    """Set when the implementation raised: the kernel applies its failure policy."""
    code: ErrorCode | None = None
    """For methods: the error's code as the caller sees it (default ``unavailable``)."""


class Syscall(_Message, tag="syscall"):
    id: int
    name: str
    params: dict[str, Any] = {}
    traceparent: str | None = None
    """The caller's W3C trace context (a service inside a hook call, an agent's
    command from ``TRACEPARENT``): the kernel's span of the syscall joins it."""


class SyscallResult(_Message, tag="syscall_result"):
    id: int
    result: Any = None


class Event(_Message, tag="event"):
    """Kernel -> subscriber: one event of a subscription made with events.subscribe."""

    subscription: int
    topic: str
    data: Any = None


class Ping(_Message, tag="ping"):
    id: int


class Pong(_Message, tag="pong"):
    id: int


class Bye(_Message, tag="bye"):
    reason: str = ""


class Error(_Message, tag="error"):
    """A failed request (``id`` names it) or a protocol error (no ``id``; the
    connection closes after it)."""

    code: ErrorCode
    message: str
    id: int | None = None


Message = (
    Hello
    | Welcome
    | HookCall
    | HookResult
    | Syscall
    | SyscallResult
    | Event
    | Ping
    | Pong
    | Bye
    | Error
)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


class ProtocolError(Exception):
    """The peer broke the protocol; the connection must close."""


def encode_body(message: Message) -> bytes:
    """One frame's MessagePack body. Raises :class:`FrameTooLarge` rather than
    send what the other side would refuse."""
    body = _encoder.encode(message)
    if len(body) > MAX_FRAME:
        raise FrameTooLarge.of(type(message).__name__.lower(), len(body))
    return body


def encode(message: Message) -> bytes:
    """One frame as a stream carries it: length prefix + MessagePack body."""
    body = encode_body(message)
    return HEADER.pack(len(body)) + body


def decode(body: bytes) -> Message:
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"invalid message: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"malformed frame: {exc}") from None


def frame_length(header: bytes, max_frame: int = MAX_FRAME) -> int:
    (length,) = HEADER.unpack(header)
    if length > max_frame:
        raise ProtocolError(f"frame of {length} bytes exceeds the limit of {max_frame}")
    if length == 0:
        raise ProtocolError("empty frame")
    return length
