"""How frames travel: a Unix socket stream, or WebSocket messages.

A :class:`~aos_sdk.peer.Peer` speaks the protocol over a :class:`Transport`:

:class:`StreamTransport`
    A byte stream (a Unix socket): each frame is a 4-byte big-endian length and
    that many bytes of MessagePack.
:class:`WebSocketTransport`
    One binary WebSocket message per frame, holding the MessagePack body alone
    (the WebSocket already delimits it, so there is no length prefix). Text
    messages are a protocol error. It wraps aiohttp's server or client socket.

End of stream is ``asyncio.IncompleteReadError`` or a ``ConnectionError`` from
:meth:`Transport.receive`; a malformed frame is a ``ProtocolError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from typing import Any, Protocol

from aos_sdk.errors import MAX_FRAME
from aos_sdk.protocol import FRAME_TIMEOUT, HEADER, ProtocolError, frame_length


class Transport(Protocol):
    async def receive(self) -> bytes:
        """The next frame's MessagePack body."""
        ...

    def send(self, body: bytes) -> None:
        """Queue one frame's body for sending (in order, without waiting)."""
        ...

    def is_closing(self) -> bool: ...

    async def close(self) -> None: ...


class StreamTransport:
    """Length-prefixed frames on a byte stream."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        max_frame: int = MAX_FRAME,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.max_frame = max_frame

    async def receive(self) -> bytes:
        """A connection may stay quiet for ever, but a frame that has begun must
        arrive whole within :data:`FRAME_TIMEOUT` (ProtocolError)."""
        first = await self.reader.readexactly(1)
        try:
            async with asyncio.timeout(FRAME_TIMEOUT):
                header = first + await self.reader.readexactly(HEADER.size - 1)
                return await self.reader.readexactly(frame_length(header, self.max_frame))
        except TimeoutError:
            raise ProtocolError(
                f"a frame did not arrive whole within {FRAME_TIMEOUT:g} s"
            ) from None

    def send(self, body: bytes) -> None:
        self.writer.write(HEADER.pack(len(body)) + body)

    def is_closing(self) -> bool:
        return self.writer.is_closing()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
            await self.writer.wait_closed()


class _WSMessage(Protocol):
    type: enum.IntEnum
    data: Any
    extra: Any


class WebSocket(Protocol):
    """What this module needs of aiohttp's ``web.WebSocketResponse`` and
    ``ClientWebSocketResponse`` (both have it)."""

    @property
    def closed(self) -> bool: ...

    async def receive(self) -> Any: ...

    async def send_bytes(self, data: bytes, compress: int | None = None) -> None: ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...


class WebSocketTransport:
    """One binary WebSocket message per frame. Sends go through one task, so
    frames leave in the order :meth:`send` was called."""

    def __init__(self, ws: WebSocket, max_frame: int = MAX_FRAME, *, owner: Any = None) -> None:
        """``owner``: closed after the WebSocket (a client's ``aiohttp.ClientSession``)."""
        self.ws = ws
        self.max_frame = max_frame
        self._owner = owner
        self._outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self._closing = False

    async def receive(self) -> bytes:
        from aiohttp import WSMsgType  # the SDK needs aiohttp only to speak WebSocket

        message: _WSMessage = await self.ws.receive()
        if message.type == WSMsgType.BINARY:
            body: bytes = message.data
            if not body:
                raise ProtocolError("empty frame")
            if len(body) > self.max_frame:
                raise ProtocolError(
                    f"frame of {len(body)} bytes exceeds the limit of {self.max_frame}"
                )
            return body
        if message.type == WSMsgType.TEXT:
            raise ProtocolError("text WebSocket message: each frame is one binary message")
        if message.type == WSMsgType.ERROR:
            raise ProtocolError(f"WebSocket error: {message.data}")
        # CLOSE, CLOSING, CLOSED: the other side ended the connection
        reason = f" ({message.extra})" if message.type == WSMsgType.CLOSE and message.extra else ""
        raise ConnectionResetError(f"the WebSocket was closed{reason}")

    def send(self, body: bytes) -> None:
        if self._closing:
            return
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_all())
        self._outbox.put_nowait(body)

    async def _send_all(self) -> None:
        while (body := await self._outbox.get()) is not None:
            try:
                await self.ws.send_bytes(body)
            except (ConnectionError, RuntimeError):  # closed under us: nothing more goes
                self._closing = True
                return

    def is_closing(self) -> bool:
        return self._closing or self.ws.closed

    async def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._outbox.put_nowait(None)
        if self._sender is not None:  # what was sent before the close still leaves
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await asyncio.shield(self._sender)
        with contextlib.suppress(Exception):
            await self.ws.close()
        if self._owner is not None:
            await self._owner.close()


async def open_websocket(url: str, max_frame: int = MAX_FRAME) -> WebSocketTransport:
    """Connect to a node's WebSocket face (``ws://`` or ``wss://``)."""
    try:
        import aiohttp
    except ImportError:
        raise ImportError(
            "connecting by ws:// URL needs aiohttp: pip install 'aos-skill-sdk[ws]'"
        ) from None
    session = aiohttp.ClientSession()
    try:
        ws = await session.ws_connect(url, max_msg_size=max_frame, autoping=True)
    except BaseException:
        await session.close()
        raise
    return WebSocketTransport(ws, max_frame, owner=session)


def is_url(target: str) -> bool:
    """Whether a connection target is a WebSocket URL rather than a socket path."""
    return target.startswith(("ws://", "wss://"))
