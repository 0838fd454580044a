"""``aos_sdk.call``: one syscall from synchronous code, over a blocking socket.

Skill scripts run as a process per command (the agent's bash starts them), so
what they pay at start-up is paid on every call: this module imports no
asyncio, no msgspec, no typing and no ``socket`` wrapper (its enum and
selectors imports), which together cost tens of milliseconds per start. It
speaks the same frames as :mod:`aos_sdk.protocol` (a 4-byte big-endian
length, then a MessagePack map with a ``type``), encoded by
:mod:`aos_sdk._msgpack` (the ``msgpack`` package's import alone is 4-5 ms).
"""

from __future__ import annotations

import _socket
import os
import struct
import sys
import time

from aos_sdk import __version__, _msgpack
from aos_sdk.errors import MAX_FRAME, ConnectionClosed, FrameTooLarge, NotConnected, SyscallFailed

SDK = f"aos-sdk-python/{__version__}"
PROTOCOL_VERSION = 1
_HEADER = struct.Struct(">I")

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs milliseconds
    from collections.abc import Callable
    from typing import Any


def call(
    name: str,
    params: dict[str, Any] | None = None,
    *,
    socket: str | os.PathLike[str] | None = None,
    token: str | None = None,
    connect_timeout: float = 10.0,
) -> Any:
    """Connect, run one syscall, close; return its result.

    ``socket`` (a path) and ``token`` default to ``AOS_SOCKET`` and ``AOS_TOKEN``.
    Connecting retries until ``connect_timeout`` while no daemon answers, then
    raises :class:`NotConnected`; a refused hello or a failed syscall raises
    :class:`SyscallFailed`."""
    path = socket or os.environ.get("AOS_SOCKET")
    if not path:
        raise NotConnected("no socket given and AOS_SOCKET is not set")
    sock = _connect(os.fspath(path), connect_timeout)
    try:
        hello = {"type": "hello", "role": "client", "sdk": SDK, "protocol": PROTOCOL_VERSION}
        hello["token"] = token if token is not None else os.environ.get("AOS_TOKEN")
        _send(sock, hello)
        welcome = _expect(_receive(sock), "welcome")
        if welcome.get("protocol", PROTOCOL_VERSION) != PROTOCOL_VERSION:
            raise SyscallFailed("protocol", f"the kernel speaks protocol {welcome['protocol']}")
        frame = {"type": "syscall", "id": 1, "name": name, "params": params or {}}
        if traceparent := os.environ.get("TRACEPARENT"):  # an agent's command: its tool span
            frame["traceparent"] = traceparent
        _send(sock, frame)
        while True:  # no subscription on this connection: no events can come
            reply = _receive(sock)
            if reply.get("type") == "ping":
                _send(sock, {"type": "pong", "id": reply.get("id")})
                continue
            return _expect(reply, "syscall_result").get("result")
    finally:
        sock.close()


def run_skill_command(
    command: str,
    skill: str,
    argv: list[str],
    parse: Callable[[list[str]], tuple[str, dict[str, Any]]],
    show: Callable[[str, Any], int | None],
    usage: str,
) -> int:
    """The body of an agent's command for a skill's service (``a2a``, ``mcp``):
    ``parse(argv)`` gives the method and its params (ValueError: a usage error,
    exit 2), the method runs through ``skill.call`` with the agent's token (a
    refusal is one line on stderr, exit 1), ``show(method, result)`` prints it
    and gives the exit code (None: 0). ``-h``/``--help`` prints ``usage``."""
    if "-h" in argv or "--help" in argv:
        print(usage)
        return 0
    try:
        method, params = parse(argv)
    except ValueError as exc:
        print(f"{usage}\n{command}: error: {exc}", file=sys.stderr)
        return 2
    try:
        result = call("skill.call", {"skill": skill, "method": method, "params": params})
    except (SyscallFailed, NotConnected, ConnectionClosed) as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 1
    return show(method, result) or 0


def exit_now(code: int) -> None:
    """Leave a command's process at once, its output flushed: no interpreter
    teardown (milliseconds per command)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _connect(path: str, timeout: float) -> _socket.socket:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            if time.monotonic() + delay > deadline:
                raise NotConnected(f"no AgentOS daemon at {path}: {exc.strerror}") from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
            continue
        except BaseException:
            sock.close()
            raise
        return sock


def _send(sock: _socket.socket, message: dict[str, Any]) -> None:
    body = _msgpack.packb(message)
    if len(body) > MAX_FRAME:
        raise FrameTooLarge.of(str(message.get("type", "message")), len(body))
    try:
        sock.sendall(_HEADER.pack(len(body)) + body)
    except OSError as exc:
        raise ConnectionClosed(f"the connection to the daemon broke: {exc}") from None


def _receive(sock: _socket.socket) -> dict[str, Any]:
    (length,) = _HEADER.unpack(_read(sock, _HEADER.size))
    try:  # as msgspec decodes them: any map key, timestamps as datetimes
        message = _msgpack.unpackb(_read(sock, length))
    except ValueError as exc:
        raise SyscallFailed("protocol", f"the kernel sent a malformed frame: {exc}") from None
    if not isinstance(message, dict):
        raise SyscallFailed("protocol", "the kernel sent a frame that is not a message")
    return message


def _read(sock: _socket.socket, n: int) -> bytes:
    chunks: list[bytes] = []
    while n:
        try:
            chunk = sock.recv(min(n, 1 << 20))
        except OSError as exc:
            raise ConnectionClosed(f"the connection to the daemon broke: {exc}") from None
        if not chunk:
            raise ConnectionClosed("the daemon closed the connection before answering")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _expect(message: dict[str, Any], kind: str) -> dict[str, Any]:
    if message.get("type") == "bye":
        raise ConnectionClosed(f"the daemon hung up: {message.get('reason') or 'no reason given'}")
    if message.get("type") == "error":
        raise SyscallFailed(str(message.get("code")), str(message.get("message")))
    if message.get("type") != kind:
        raise SyscallFailed("protocol", f"expected {kind}, got {message.get('type')}")
    return message
