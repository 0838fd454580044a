"""The wire: frames, the control and agent sockets, principals, events, bad peers."""

from __future__ import annotations

import asyncio
import datetime
import os
import socket
import stat
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aos_sdk
import msgspec
import pytest
from aos_sdk import Client, ConnectionClosed, NotConnected, SyscallFailed
from aos_sdk.protocol import (
    MAX_FRAME,
    Bye,
    Error,
    Event,
    Hello,
    HookCall,
    HookDecl,
    HookResult,
    Ping,
    Pong,
    ProtocolError,
    Syscall,
    SyscallResult,
    Welcome,
    decode,
    encode,
    frame_length,
)
from conftest import running_daemon

from aos.daemon import Daemon, DaemonPaths
from aos.principals import ADMIN, agent_principal

pytestmark = pytest.mark.anyio

EVERY_MESSAGE = [
    Hello(
        role="service", sdk="t/1", skill="g", hooks=[HookDecl(name="tool.before", priority="first")]
    ),
    Welcome(node="n", version="1", principal="admin"),
    HookCall(id=1, hook="tool.before", args={"input": {}, "output": {"a": 1}}, timeout=2.0),
    HookResult(id=1, result={"verdict": "reject", "reason": "no"}),
    HookResult(id=2, error="boom"),
    Syscall(id=3, name="kernel.status"),
    SyscallResult(id=3, result={"pid": 1}),
    Event(subscription=1, topic="history.append", data={"seq": 1}),
    Ping(id=4),
    Pong(id=4),
    Bye(reason="done"),
    Error(code="denied", message="no", id=5),
]


@pytest.mark.parametrize("message", EVERY_MESSAGE, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message: object) -> None:
    frame = encode(message)  # type: ignore[arg-type]
    (length,) = struct.unpack(">I", frame[:4])
    assert length == len(frame) - 4
    assert decode(frame[4:]) == message


def test_bad_bodies_and_lengths_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError, match="malformed frame"):
        decode(b"\xc1garbage")
    with pytest.raises(ProtocolError, match="invalid message"):
        decode(msgspec.msgpack.encode({"type": "nope"}))
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        frame_length(struct.pack(">I", 2**31))
    with pytest.raises(ProtocolError, match="empty frame"):
        frame_length(struct.pack(">I", 0))


def paths(daemon: Daemon) -> DaemonPaths:
    return daemon.paths


async def raw(path: Path, payload: bytes, *, hang_up: bool = True) -> bytes:
    """Send raw bytes; return whatever comes back until the daemon closes."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(payload)
    await writer.drain()
    if hang_up:
        writer.write_eof()
    try:
        async with asyncio.timeout(15):
            return await reader.read()
    finally:
        writer.close()


async def status_answers(daemon: Daemon) -> None:
    async with Client(paths(daemon).control_socket, token="", connect_timeout=0) as client:
        assert (await client.call("kernel.status"))["pid"] == os.getpid()


async def test_bad_peers_are_dropped_and_the_daemon_carries_on(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon:
        control = paths(daemon).control_socket
        garbage = b"\x00\x00\x00\x05\xc1\xc1\xc1\xc1\xc1"
        reply = await raw(control, garbage)
        assert decode(reply[4:]) == Error(code="protocol", message=decode_error(garbage[4:]))
        await status_answers(daemon)

        huge = struct.pack(">I", 2 * 1024**3)
        reply = await raw(control, huge, hang_up=False)
        assert decode(reply[4:]) == Error(
            code="protocol",
            message=f"frame of {2 * 1024**3} bytes exceeds the limit of {MAX_FRAME}",
        )
        await status_answers(daemon)

        half = encode(Hello(role="client", sdk="t/1"))[:7]
        reply = await raw(control, half)  # hung up mid-frame: told why (where possible), closed
        assert decode(reply[4:]) == Error(
            code="protocol", message="the peer hung up before its hello"
        )
        await status_answers(daemon)

        unknown = msgspec.msgpack.encode({"type": "launch_missiles"})
        reply = await raw(control, struct.pack(">I", len(unknown)) + unknown)
        assert decode(reply[4:]).code == "protocol"  # type: ignore[union-attr]
        await status_answers(daemon)

        not_hello = encode(Syscall(id=1, name="kernel.status"))
        reply = await raw(control, not_hello)
        assert decode(reply[4:]) == Error(
            code="protocol", message="the first message must be hello, not Syscall"
        )
        await status_answers(daemon)
        assert daemon.kernel is not None
        await daemon.kernel.flush_logs()
        drops = await daemon.kernel.syscall(ADMIN, "log.read", {"kind": "connection.dropped"})
        assert len(drops) >= 3


def decode_error(body: bytes) -> str:
    try:
        decode(body)
    except ProtocolError as exc:
        return str(exc)
    raise AssertionError("expected a protocol error")


async def test_sockets_are_private_and_principals_are_right(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon:
        kernel = daemon.kernel
        assert kernel is not None
        for path in (paths(daemon).control_socket, paths(daemon).agent_socket):
            mode = path.stat().st_mode
            assert stat.S_ISSOCK(mode)
            assert stat.S_IMODE(mode) == 0o600
        async with Client(paths(daemon).control_socket, token="") as admin:
            assert admin.welcome is not None
            assert admin.welcome.principal == "admin"
            await admin.call("kernel.config")
        with pytest.raises(SyscallFailed, match="this socket needs a token"):
            async with Client(paths(daemon).agent_socket, token=""):
                pass
        agent = await kernel.syscall(ADMIN, "agent.create", {"name": "a"})
        agent_id = agent["agent"]["id"]
        token = kernel.tokens.issue(
            agent_principal(agent_id, None, frozenset(agent["effective"]["scopes"]))
        )
        async with Client(paths(daemon).agent_socket, token=token) as client:
            assert client.welcome is not None
            assert client.welcome.principal == f"agent:{agent_id}"
            with pytest.raises(SyscallFailed) as info:  # no dispatch of it runs
                await client.call("kernel.config")
            assert info.value.code == "denied"
            assert "this token's dispatch has ended" in info.value.message
        with pytest.raises(SyscallFailed, match="signature"):
            async with Client(paths(daemon).agent_socket, token=token[:-4] + "AAAA"):
                pass


async def test_the_blocking_call_for_scripts(tmp_path: Path) -> None:
    """aos_sdk.call (what skill scripts use: a blocking socket and msgpack, no
    asyncio) against a real daemon: results, typed errors, refused hellos."""
    async with running_daemon(tmp_path) as daemon:
        kernel = daemon.kernel
        assert kernel is not None
        control, agents = paths(daemon).control_socket, paths(daemon).agent_socket

        async def blocking(name: str, params: dict[str, object] | None = None, **kw: object) -> Any:
            return await asyncio.to_thread(aos_sdk.call, name, params, **kw)  # type: ignore[arg-type]

        assert (await blocking("kernel.status", socket=control, token=""))["pid"] == os.getpid()
        with pytest.raises(SyscallFailed) as info:
            await blocking("agent.get", {"id": "missing"}, socket=control, token="")
        assert (info.value.code, info.value.message) == ("not_found", "agent missing not found")
        agent = await kernel.syscall(ADMIN, "agent.create", {"name": "a"})
        token = kernel.tokens.issue(
            agent_principal(agent["agent"]["id"], None, frozenset(agent["effective"]["scopes"]))
        )
        with pytest.raises(SyscallFailed) as info:
            await blocking("kernel.config", socket=agents, token=token)
        assert info.value.code == "denied"
        assert "this token's dispatch has ended" in info.value.message
        with pytest.raises(SyscallFailed, match="signature"):
            await blocking("kernel.status", socket=agents, token=token[:-4] + "AAAA")
    with pytest.raises(NotConnected, match="no AgentOS daemon at"):
        aos_sdk.call("kernel.status", socket=tmp_path / "gone.sock", connect_timeout=0.1)


def serve_once(path: Path, reply: Callable[[socket.socket], None]) -> threading.Thread:
    """A one-connection server speaking the protocol's frames (msgspec structs):
    welcome the hello, then ``reply`` answers the syscall."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def run() -> None:
        conn, _ = server.accept()
        with conn, server:
            assert isinstance(read_frame(conn), Hello)
            conn.sendall(encode(Welcome(node="n", version="v", principal="admin")))
            assert isinstance(read_frame(conn), Syscall)
            reply(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def read_frame(conn: socket.socket) -> object:
    (length,) = struct.unpack(">I", conn.recv(4, socket.MSG_WAITALL))
    return decode(conn.recv(length, socket.MSG_WAITALL))


def test_the_blocking_call_decodes_what_msgspec_encodes(tmp_path: Path) -> None:
    """Results with integer keys and timestamps read as the async Client reads them;
    a daemon hanging up mid-call is ConnectionClosed."""
    when = datetime.datetime(2026, 11, 24, tzinfo=datetime.UTC)
    path = tmp_path / "k.sock"
    thread = serve_once(
        path, lambda conn: conn.sendall(encode(SyscallResult(id=1, result={1: "a", "at": when})))
    )
    assert aos_sdk.call("x", socket=path, token="") == {1: "a", "at": when}
    thread.join()
    path.unlink()
    thread = serve_once(path, lambda conn: None)  # hangs up without answering
    with pytest.raises(ConnectionClosed, match="before answering"):
        aos_sdk.call("x", socket=path, token="")
    thread.join()


async def test_concurrent_requests_on_one_connection(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon:
        client = Client(paths(daemon).control_socket, token="")
        try:
            calls = (client.call("agent.create", {"name": f"a{i}"}) for i in range(32))
            results = await asyncio.gather(*calls)
            assert sorted(r["agent"]["name"] for r in results) == sorted(f"a{i}" for i in range(32))
            with pytest.raises(SyscallFailed) as info:
                await client.call("agent.get", {"id": "missing"})
            assert (info.value.code, info.value.message) == ("not_found", "agent missing not found")
        finally:
            await client.close()


async def test_a_burst_of_connections_is_queued_not_refused(tmp_path: Path) -> None:
    """300 clients connect in one go (each connect is issued before the daemon's
    loop gets to accept any): the socket's queue holds them all, and a connect
    that found it full would be retried, never reported as an OSError."""
    async with running_daemon(tmp_path) as daemon:
        clients = [Client(paths(daemon).control_socket, token="") for _ in range(300)]
        try:
            results = await asyncio.gather(*(c.call("kernel.status") for c in clients))
            assert len(results) == 300
        finally:
            await asyncio.gather(*(c.close() for c in clients))


def test_socket_path_limit_is_a_clear_error(tmp_path: Path) -> None:
    from aos.config import load_config
    from aos.daemon import DaemonError

    deep = tmp_path / ("x" * 120)
    config = load_config(environ={"AOS_HOME": str(deep)}, cwd=tmp_path)
    with pytest.raises(DaemonError, match="too long for Unix sockets"):
        Daemon(config)._claim()
    assert socket.AF_UNIX  # Unix sockets only
