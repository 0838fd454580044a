"""The WebSocket face: remote services and clients, from anywhere, by token.

Off by default. With ``ws_listen`` in aoscb.json or ``AOS_WS_LISTEN=HOST:PORT``
the daemon serves ``ws://HOST:PORT/``: each binary WebSocket message carries one
frame's MessagePack body (no length prefix), and a connection opens with the
same hello/welcome handshake as on the Unix sockets
(docs/specs/aos-service.md#the-websocket-face).

Nothing that reaches it is ever admin, and every hello must carry a token:

role ``client``
    Any valid token (an agent's ``AOS_TOKEN``, a service's) runs as its
    principal, exactly as on ``agent.sock``.
role ``service``
    Only the token of a remote service's grant (``aos service token NAME``) for
    the ``skill`` its hello names: the connection attaches that remote service
    (aos/services.py, :class:`~aos.services.RemoteService`).

A refused hello is answered with an ``error`` frame (``denied``: which token is
missing or wrong) and the connection is closed; refusals are logged with the
peer's address. TLS: a reverse proxy in front (docs/specs/aos-deployment.md).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from typing import TYPE_CHECKING

from aiohttp import web
from aos_sdk.peer import Peer
from aos_sdk.protocol import MAX_FRAME, Error, Hello
from aos_sdk.transport import WebSocketTransport

from aos.control import LISTEN_BACKLOG, hello_or_refusal, serve_client
from aos.principals import InvalidToken, Principal
from aos.runtimelog import LogEntry

if TYPE_CHECKING:
    from aos.kernel import Kernel
    from aos.services import ServiceSupervisor

logger = logging.getLogger("aos")
NOT_A_WEBSOCKET = (
    "This is an AgentOS node's WebSocket face: connect with an AgentOS SDK "
    "(AOS_URL=ws://HOST:PORT/ and a token).\n"
)


class WebSocketError(Exception):
    """The face cannot listen where it was told to (the message says why)."""


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as a host and a port."""
    host, _, port = listen.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


def url_of(host: str, port: int) -> str:
    return f"ws://[{host}]:{port}/" if ":" in host else f"ws://{host}:{port}/"


def address_of(request: web.Request) -> str:
    """``HOST:PORT`` of the connection's other end (the proxy's, behind a proxy)."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if not peer:
        return "an unknown address"
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class WebSocketFace:
    """The daemon's WebSocket listener (aiohttp)."""

    def __init__(self, kernel: Kernel, supervisor: ServiceSupervisor, listen: str) -> None:
        self.kernel = kernel
        self.supervisor = supervisor
        self.listen = listen
        self.url: str | None = None
        self._runner: web.AppRunner | None = None
        self._peers: set[Peer] = set()

    async def start(self) -> str:
        """Listen; return the URL clients use (the real port when 0 was asked)."""
        host, port = split_listen(self.listen)
        app = web.Application()
        app.router.add_get("/", self._connection)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=LISTEN_BACKLOG)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise WebSocketError(
                f"the WebSocket face cannot listen on {self.listen} (ws_listen, "
                f"AOS_WS_LISTEN): {exc.strerror or exc}"
            ) from None
        bound = self._runner.addresses[0]
        self.url = url_of(host, bound[1])
        if not loopback(host):
            logger.warning(
                "the WebSocket face listens on %s, beyond this machine: tokens travel in "
                "clear text unless a TLS reverse proxy fronts it (docs/specs/aos-deployment.md)",
                self.listen,
            )
        return self.url

    async def close(self) -> None:
        for peer in list(self._peers):
            await peer.close("the daemon is shutting down")
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner.cleanup()

    async def _connection(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME, compress=False)
        if not ws.can_prepare(request).ok:
            return web.Response(status=426, text=NOT_A_WEBSOCKET, headers={"Upgrade": "websocket"})
        address = address_of(request)
        try:
            await ws.prepare(request)
        except ConnectionError:  # gone before the upgrade was answered
            return ws
        peer = Peer(WebSocketTransport(ws))
        self._peers.add(peer)
        try:
            hello = await hello_or_refusal(
                peer, lambda why: self._log(f"connection from {address} dropped: {why}")
            )
            if hello is None:
                return ws
            try:
                principal = self._authenticate(hello)
            except InvalidToken as exc:
                peer.send(Error(code="denied", message=str(exc)))
                self._log(f"refused {hello.role} {hello.skill or ''} from {address}: {exc}")
                return ws
            if hello.role == "client":
                reason = await serve_client(self.kernel, peer, principal)
                if reason.startswith("protocol error"):
                    self._log(f"connection from {address} dropped: {reason}")
            else:
                remote = self.supervisor.remote[principal.name.removeprefix("service:")]
                await remote.serve(peer, hello, principal, address)
        finally:
            self._peers.discard(peer)
            await peer.close()
        return ws

    def _authenticate(self, hello: Hello) -> Principal:
        if not hello.token:
            raise InvalidToken(
                "the WebSocket face needs a token: a client presents its AOS_TOKEN, a remote "
                "service the token `aos service token NAME` printed"
            )
        principal = self.kernel.authenticate(hello.token)
        if hello.role == "service" and (
            principal.token_id is None
            or principal.name != f"service:{hello.skill}"
            or principal.name.removeprefix("service:") not in self.supervisor.remote
        ):
            raise InvalidToken(
                f"this is not the token of remote service {hello.skill!r}: the admin mints "
                f"one with `aos service token {hello.skill}`"
            )
        return principal

    def _log(self, message: str) -> None:
        self.kernel.log(
            LogEntry(kind="connection.refused", level="warning", message=f"websocket: {message}")
        )
