"""A syscall client: for the CLI, for skill scripts and for services.

``Client()`` reads ``AOS_SOCKET`` and ``AOS_TOKEN`` from the environment (what
the kernel hands to agents' bash and to services). It reconnects when the
daemon restarts: a call made while disconnected waits for the daemon (up to
``connect_timeout``); a call cut by a disconnect raises :class:`ConnectionClosed`
(its outcome is unknown, so it is not sent twice).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncGenerator
from pathlib import Path
from types import TracebackType
from typing import Any

from aos_sdk import __version__
from aos_sdk.errors import ConnectionClosed, NotConnected, SyscallFailed
from aos_sdk.peer import Peer, RemoteError
from aos_sdk.protocol import MAX_FRAME, Error, Event, Hello, Syscall, SyscallResult, Welcome
from aos_sdk.transport import StreamTransport, Transport, is_url, open_websocket

SDK = f"aos-sdk-python/{__version__}"
EARLY_EVENTS = 1000


def _connect_unix(path: Path) -> socket.socket:
    """A connected non-blocking Unix socket. A local connect completes at once or
    fails; EAGAIN means the daemon's accept queue is full (asyncio's own connect
    takes that for "in progress" and hands back a socket that never connected)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.connect(str(path))
    except BaseException:
        sock.close()
        raise
    return sock


def _daemon_not_there_yet(exc: OSError) -> bool:
    """A connect worth retrying: no socket yet, nobody listening, or the daemon's
    accept queue full (aiohttp's connect errors carry the OS's as ``os_error``)."""
    cause = getattr(exc, "os_error", exc)
    return isinstance(cause, FileNotFoundError | ConnectionRefusedError | BlockingIOError)


def _why_not(target: str, exc: OSError) -> str:
    if isinstance(exc, BlockingIOError):
        return (
            f"the AgentOS daemon at {target} accepts no more connections right now "
            "(its queue is full): try again in a moment"
        )
    return f"no AgentOS daemon at {target}: {exc.strerror or exc}"


async def connect(target: str, patience: float) -> Transport:
    """A transport to the daemon at ``target`` (a socket path or a ws:// URL),
    retrying for ``patience`` seconds while no daemon answers."""
    deadline = asyncio.get_running_loop().time() + patience
    delay = 0.05
    while True:
        try:
            if is_url(target):
                return await open_websocket(target)
            reader, writer = await asyncio.open_unix_connection(
                sock=_connect_unix(Path(target)), limit=MAX_FRAME + 64
            )
            return StreamTransport(reader, writer)
        except OSError as exc:  # aiohttp's connection errors are OSErrors too
            if not _daemon_not_there_yet(exc):
                raise
            if asyncio.get_running_loop().time() + delay > deadline:
                raise NotConnected(_why_not(target, exc)) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


async def handshake(peer: Peer, hello: Hello) -> Welcome:
    """Say hello and read the kernel's welcome; its refusal raises
    :class:`SyscallFailed` (the connection is closed)."""
    peer.send(hello)
    try:
        reply = await peer.read_message()
    except (asyncio.IncompleteReadError, ConnectionError):
        await peer.close()
        raise ConnectionClosed("the kernel hung up before answering the hello") from None
    if isinstance(reply, Welcome):
        return reply
    await peer.close()
    if isinstance(reply, Error):
        raise SyscallFailed(reply.code, reply.message)
    raise SyscallFailed("protocol", f"expected welcome, got {type(reply).__name__}")


async def peer_syscall(
    peer: Peer, name: str, params: dict[str, Any] | None, traceparent: str | None = None
) -> Any:
    """One syscall over a connection; an error reply raises :class:`SyscallFailed`.
    ``traceparent``: the caller's W3C trace context, which the kernel's span joins."""
    try:
        reply: SyscallResult = await peer.request(
            Syscall(id=peer.next_id(), name=name, params=params or {}, traceparent=traceparent)
        )
    except RemoteError as exc:
        raise SyscallFailed(exc.code, exc.message) from None
    return reply.result


def subscribe_params(topics: list[str] | None, session_id: str | None) -> dict[str, Any]:
    """The params of ``events.subscribe`` (absent ones take the kernel's defaults)."""
    params: dict[str, Any] = {}
    if topics is not None:
        params["topics"] = topics
    if session_id is not None:
        params["session_id"] = session_id
    return params


class Client:
    def __init__(
        self,
        socket: str | Path | None = None,
        token: str | None = None,
        *,
        connect_timeout: float = 10.0,
    ) -> None:
        """``socket``: the daemon's Unix socket, or a ``ws://``/``wss://`` URL of
        its WebSocket face; default ``AOS_SOCKET``, else ``AOS_URL``."""
        target = str(socket or os.environ.get("AOS_SOCKET") or os.environ.get("AOS_URL") or "")
        if not target:
            raise NotConnected("no socket given and neither AOS_SOCKET nor AOS_URL is set")
        self.target = target
        self.token = token if token is not None else os.environ.get("AOS_TOKEN")
        self.connect_timeout = connect_timeout
        self.welcome: Welcome | None = None
        self._peer: Peer | None = None
        self._serve: asyncio.Task[None] | None = None
        self._queues: dict[int, asyncio.Queue[Event | None]] = {}
        self._early: dict[int, list[Event]] = {}
        """Events that arrived before their subscription's queue (the reply and the
        first events can come in one read)."""
        self._finished: set[int] = set()
        """Subscriptions given up (the kernel streams them until the connection ends)."""
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._peer is not None and not self._peer.closed.is_set()

    async def connect(self) -> Welcome:
        """Connect and say hello (retrying until ``connect_timeout`` while no daemon answers)."""
        async with self._lock:
            if self.connected and self.welcome is not None:
                return self.welcome
            transport = await connect(self.target, self.connect_timeout)
            peer = Peer(transport, on_event=self._on_event)
            reply = await handshake(peer, Hello(role="client", sdk=SDK, token=self.token))
            self._peer, self.welcome = peer, reply
            self._serve = asyncio.get_running_loop().create_task(peer.serve())
            return reply

    async def call(self, name: str, params: dict[str, Any] | None = None) -> Any:
        """Run one syscall; return its result or raise :class:`SyscallFailed`."""
        if not self.connected:
            await self.connect()
        assert self._peer is not None
        return await peer_syscall(self._peer, name, params)

    async def subscribe(
        self, topics: list[str] | None = None, session_id: str | None = None
    ) -> AsyncGenerator[Event, None]:
        """Events of ``events.subscribe``, as they happen (resubscribes after a reconnect)."""
        params = subscribe_params(topics, session_id)
        while True:
            subscribed = await self.call("events.subscribe", params)
            queue: asyncio.Queue[Event | None] = asyncio.Queue()
            self._queues[subscribed["subscription"]] = queue
            for early in self._early.pop(subscribed["subscription"], []):
                queue.put_nowait(early)
            peer = self._peer
            assert peer is not None
            closed = asyncio.get_running_loop().create_task(peer.closed.wait())
            closed.add_done_callback(lambda _, q=queue: q.put_nowait(None))
            try:
                while (event := await queue.get()) is not None:
                    yield event
            finally:
                closed.cancel()
                self._queues.pop(subscribed["subscription"], None)
                self._finished.add(subscribed["subscription"])

    def _on_event(self, event: Event) -> None:
        queue = self._queues.get(event.subscription)
        if queue is not None:
            queue.put_nowait(event)
        elif event.subscription not in self._finished:
            early = self._early.setdefault(event.subscription, [])
            if len(early) < EARLY_EVENTS:
                early.append(event)

    async def close(self) -> None:
        if self._peer is not None:
            await self._peer.close("client closed")
        if self._serve is not None:
            await asyncio.gather(self._serve, return_exceptions=True)
        self._peer = None


__all__ = ["Client", "ConnectionClosed", "NotConnected", "SyscallFailed"]
