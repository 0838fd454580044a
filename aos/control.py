"""The control sockets: the syscall table over the wire.

Two Unix sockets under the runtime dir, both mode 0600:

``aos.sock`` (the control socket)
    A connection that presents a token runs as that token's principal; one
    without a token is **admin** only when its peer uid (SO_PEERCRED) is the
    daemon's own and the peer is neither an agent's command (nor anything it
    started) nor a skill's service: those use their tokens.
``agent.sock``
    Tokens only: this is the path handed to agents' bash and to services
    (``AOS_SOCKET``). Nothing reaching it is ever admin.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aos_sdk.peer import Peer
from aos_sdk.protocol import (
    MAX_FRAME,
    Error,
    Event,
    Hello,
    HookCall,
    Message,
    ProtocolError,
    Syscall,
    SyscallResult,
    Welcome,
)
from aos_sdk.transport import StreamTransport

from aos import __version__
from aos.events import Stream, current_stream
from aos.principals import ADMIN, InvalidToken, Principal
from aos.processes import Credentials, descends_from, peer_credentials
from aos.runtimelog import LogEntry
from aos.syscalls import SyscallError

if TYPE_CHECKING:
    from aos.kernel import Kernel

HELLO_TIMEOUT = 10.0


def peer_of(writer: asyncio.StreamWriter) -> Credentials | None:
    """The connection's peer, as Linux reports it (``SO_PEERCRED``)."""
    return peer_credentials(writer.get_extra_info("socket"))


async def read_hello(peer: Peer) -> Hello:
    """The first message of a connection must be a hello, within HELLO_TIMEOUT."""
    try:
        async with asyncio.timeout(HELLO_TIMEOUT):
            message = await peer.read_message()
    except TimeoutError:
        raise ProtocolError(f"no hello within {HELLO_TIMEOUT:g}s") from None
    except (asyncio.IncompleteReadError, ConnectionError):
        raise ProtocolError("the peer hung up before its hello") from None
    if not isinstance(message, Hello):
        raise ProtocolError(f"the first message must be hello, not {type(message).__name__}")
    return message


async def hello_or_refusal(peer: Peer, dropped: Callable[[str], None]) -> Hello | None:
    """The connection's hello; or None, once a malformed or missing one was
    answered with a ``protocol`` error and told to ``dropped``."""
    try:
        return await read_hello(peer)
    except ProtocolError as exc:
        peer.send(Error(code="protocol", message=str(exc)))
        dropped(str(exc))
        return None


def syscall_handler(kernel: Kernel, principal: Principal, peer: Peer) -> Callable[..., Any]:
    """Answer ``syscall`` messages as ``principal``; events flow back on ``peer``."""
    closers: list[Callable[[], None]] = []

    def deliver(subscription: int, topic: str, data: Any) -> None:
        peer.send(Event(subscription=subscription, topic=topic, data=data))

    stream = Stream(deliver=deliver, on_close=closers.append)

    async def cleanup() -> None:
        await peer.closed.wait()
        for close in closers:
            close()

    asyncio.get_running_loop().create_task(cleanup())

    async def handle(_: Peer, message: Message) -> Message | None:
        if isinstance(message, HookCall):
            return Error(
                id=message.id, code="protocol", message="hook calls go kernel -> service only"
            )
        assert isinstance(message, Syscall)
        token = current_stream.set(stream)
        try:
            if kernel.telemetry.enabled and principal.kind != "admin":
                return await traced_syscall(kernel, principal, message)
            result = await kernel.syscall(principal, message.name, message.params)
        except SyscallError as exc:
            return Error(id=message.id, code=exc.code, message=exc.message)
        finally:
            current_stream.reset(token)
        return SyscallResult(id=message.id, result=result)

    return handle


async def traced_syscall(kernel: Kernel, principal: Principal, message: Syscall) -> Message:
    """A service's or an agent's syscall as an ``aos.syscall <name>`` span, a child
    of the trace context its frame carries."""
    with kernel.telemetry.span(
        f"aos.syscall {message.name}",
        {"aos.syscall.name": message.name, "aos.principal.kind": principal.kind},
        parent=message.traceparent,
    ) as span:
        try:
            result = await kernel.syscall(principal, message.name, message.params)
        except SyscallError as exc:
            span.fail(exc.code, exc.message)
            return Error(id=message.id, code=exc.code, message=exc.message)
        return SyscallResult(id=message.id, result=result)


async def serve_client(kernel: Kernel, peer: Peer, principal: Principal) -> str:
    """Welcome a client as ``principal`` and answer its syscalls until the
    connection ends; return why it ended."""
    peer.send(Welcome(node=kernel.node_id, version=__version__, principal=principal.name))
    peer.handler = syscall_handler(kernel, principal, peer)
    await peer.serve()
    return peer.close_reason


LISTEN_BACKLOG = 1024
"""Connections a socket queues before the daemon accepts them: 200 agents whose
commands call in at once must not overflow it (asyncio's default, 100, makes a
non-blocking connect past it fail with EAGAIN). The host's ``somaxconn`` caps it."""


class ControlServer:
    """One listening socket serving the syscall table."""

    def __init__(self, kernel: Kernel, path: Path, *, admin_by_uid: bool) -> None:
        self.kernel = kernel
        self.path = path
        self.admin_by_uid = admin_by_uid
        self._server: asyncio.Server | None = None
        self._peers: set[Peer] = set()

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old_umask = os.umask(0o177)  # the socket is created 0600
        try:
            self._server = await asyncio.start_unix_server(
                self._connection, path=str(self.path), limit=MAX_FRAME + 64, backlog=LISTEN_BACKLOG
            )
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for peer in list(self._peers):
            await peer.close("the daemon is shutting down")
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _principal(self, hello: Hello, writer: asyncio.StreamWriter) -> Principal:
        if hello.token:
            return self.kernel.authenticate(hello.token)
        if not self.admin_by_uid:
            raise InvalidToken("this socket needs a token")
        peer = peer_of(writer)
        if peer is None or peer.uid != os.getuid():
            raise InvalidToken("only the daemon's own user is admin without a token")
        services = self.kernel.services.status() if self.kernel.services else []
        if peer.pid != os.getpid() and (
            self.kernel.sandboxes.started_by_agent(peer.pid)
            or descends_from(peer.pid, frozenset(s["pid"] for s in services if s["pid"]))
        ):
            self.kernel.log(
                LogEntry(
                    kind="connection.refused",
                    level="warning",
                    message=f"{self.path.name}: refused admin to pid {peer.pid}: "
                    "it was started by the daemon (an agent's command or a service)",
                    data={"pid": peer.pid},
                )
            )
            raise InvalidToken(
                "a process started by the daemon (an agent's command, or a skill's service) "
                "is never admin: use your token (AOS_TOKEN) on agent.sock (AOS_SOCKET)"
            )
        return ADMIN

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(StreamTransport(reader, writer))
        self._peers.add(peer)
        try:
            hello = await hello_or_refusal(peer, self._log_drop)
            if hello is None:
                return
            if hello.role != "client":
                peer.send(
                    Error(
                        code="protocol",
                        message="services connect to their own socket, not the control socket",
                    )
                )
                return
            try:
                principal = self._principal(hello, writer)
            except InvalidToken as exc:
                peer.send(Error(code="denied", message=str(exc)))
                return
            reason = await serve_client(self.kernel, peer, principal)
            if reason.startswith("protocol error"):
                self._log_drop(reason)
        finally:
            self._peers.discard(peer)
            await peer.close()

    def _log_drop(self, reason: str) -> None:
        self.kernel.log(
            LogEntry(
                kind="connection.dropped",
                level="warning",
                message=f"{self.path.name}: connection dropped: {reason}",
            )
        )
