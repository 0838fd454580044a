"""One framed connection with requests in flight in both directions.

Both ends of every AgentOS connection (the kernel's side and the SDK's side)
use :class:`Peer`: it reads frames, resolves the futures of our requests when
their answers arrive, and hands the peer's requests to a handler, each in its
own task so that a slow one does not hold up the others.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aos_sdk.errors import ConnectionClosed, FrameTooLarge
from aos_sdk.protocol import (
    Bye,
    Error,
    Event,
    HookCall,
    HookResult,
    Message,
    Ping,
    Pong,
    ProtocolError,
    Syscall,
    SyscallResult,
    decode,
    encode_body,
)
from aos_sdk.transport import Transport

Handler = Callable[["Peer", Message], Awaitable[Message | None]]
"""Answers one request from the other side (hook_call or syscall); may return None."""
EventHandler = Callable[[Event], None]
logger = logging.getLogger("aos_sdk")


class RemoteError(Exception):
    """The other side answered a request with an ``error`` message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Peer:
    def __init__(
        self,
        transport: Transport,
        *,
        handler: Handler | None = None,
        on_event: EventHandler | None = None,
    ) -> None:
        self.transport = transport
        self.handler = handler
        self.on_event = on_event
        self._ids = itertools.count(1)
        self._pending: dict[tuple[type, int], asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = asyncio.Event()
        self.close_reason = ""
        self.bye: Bye | None = None
        """The peer's ``bye``, when it said one (it leaves on purpose)."""

    # -- sending -----------------------------------------------------------------------
    def send(self, message: Message) -> None:
        """Queue one frame (the transport buffers; no await needed). A request too big
        for a frame raises :class:`FrameTooLarge` to its sender; an answer too big
        goes as an error answer instead; an event too big is dropped (logged)."""
        if self.transport.is_closing():
            return
        try:
            body = encode_body(message)
        except FrameTooLarge as exc:
            if isinstance(message, (HookCall, Syscall, Ping)):
                raise
            if isinstance(message, Event):
                logger.warning("event %s not sent: %s", message.topic, exc)
                return
            body = encode_body(
                Error(id=getattr(message, "id", None), code="unavailable", message=str(exc))
            )
        self.transport.send(body)

    async def request(self, message: HookCall | Syscall | Ping) -> Any:
        """Send a request and wait for its answer; raise RemoteError on an error reply.

        Callers bound the wait with ``asyncio.timeout``; a reply arriving after
        the caller gave up is dropped."""
        if self.closed.is_set():
            raise ConnectionClosed(self.close_reason or "connection closed")
        answer_type = {HookCall: HookResult, Syscall: SyscallResult, Ping: Pong}[type(message)]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        key = (answer_type, message.id)
        self._pending[key] = future
        try:
            self.send(message)
            return await future
        finally:
            self._pending.pop(key, None)

    def next_id(self) -> int:
        return next(self._ids)

    # -- receiving ---------------------------------------------------------------------
    async def read_message(self) -> Message:
        """The next message (ProtocolError for a malformed frame; the end of the
        connection is ``IncompleteReadError`` or ``ConnectionError``)."""
        return decode(await self.transport.receive())

    async def serve(self) -> None:
        """Read until the connection ends; answer requests, resolve replies."""
        try:
            while True:
                try:
                    message = await self.read_message()
                except ProtocolError as exc:
                    self.send(Error(code="protocol", message=str(exc)))
                    self.close_reason = f"protocol error: {exc}"
                    return
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.close_reason = self.close_reason or "peer closed the connection"
                    return
                if not self._dispatch(message):
                    return
        finally:
            await self.close()

    def _dispatch(self, message: Message) -> bool:
        """Route one message; False ends the connection."""
        if isinstance(message, (HookResult, SyscallResult, Pong)):
            future = self._pending.get((type(message), message.id))
            if future is not None and not future.done():
                future.set_result(message)
        elif isinstance(message, Error):
            if message.id is None:
                self.close_reason = f"peer reported {message.code}: {message.message}"
                return False
            for answer_type in (SyscallResult, HookResult, Pong):
                future = self._pending.get((answer_type, message.id))
                if future is not None and not future.done():
                    future.set_exception(RemoteError(message.code, message.message))
                    break
        elif isinstance(message, Ping):
            self.send(Pong(id=message.id))
        elif isinstance(message, Event):
            if self.on_event is not None:
                self.on_event(message)
        elif isinstance(message, Bye):
            self.bye = message
            self.close_reason = (
                f"peer said bye: {message.reason}" if message.reason else "peer said bye"
            )
            return False
        elif isinstance(message, (HookCall, Syscall)) and self.handler is not None:
            task = asyncio.get_running_loop().create_task(self._answer(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self.send(
                Error(code="protocol", message=f"unexpected {type(message).__name__} message")
            )
            self.close_reason = f"unexpected {type(message).__name__}"
            return False
        return True

    async def _answer(self, message: HookCall | Syscall) -> None:
        assert self.handler is not None
        try:
            reply = await self.handler(self, message)
        except Exception as exc:  # the handler's own failure becomes an error reply
            reply = Error(id=message.id, code="unavailable", message=f"{type(exc).__name__}: {exc}")
        if reply is not None:
            self.send(reply)

    async def close(self, reason: str | None = None) -> None:
        if reason and not self.close_reason:
            self.close_reason = reason
        if self.closed.is_set():
            return
        self.closed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionClosed(self.close_reason or "connection closed"))
        for task in list(self._tasks):
            task.cancel()
        await self.transport.close()
