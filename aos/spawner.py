"""The command spawner: the kernel's end of the process that starts bash commands.

Each bash call is a real ``bash -c`` process in a process group of its own, but
the kernel does not start it itself: ``posix_spawn`` (like ``subprocess``'s
vfork) stops the calling thread until the child has exec'd, and on the
kernel's thread that stops the event loop for every command (a few hundred
microseconds each, far more on a loaded machine). A small helper process,
``aos/_spawnerd.py`` (standard library only), does it instead, on whichever
CPU is free, and reports each command's pid and exit code back over a Unix
socket. The kernel keeps the read end of the command's output pipe and reads
it on its loop; it signals the process group directly.

One :class:`Spawner` serves one event loop. The process starts on the first
command (or :meth:`Spawner.start`) and again on the next command after it
died; it exits when :meth:`Spawner.aclose` closes the socket or the kernel's
process is gone. The wire format is in ``aos/_spawnerd.py``.

A sandboxed spawner (``sandbox``: the bubblewrap command line that builds the
sandbox, see :mod:`aos.sandbox`) runs inside the sandbox with every command it
starts; the sandbox ends with it. Each command's pid comes back as the host's
(from a pidfd the spawner sends along), so the kernel signals and records
sandboxed commands exactly as it does the others.
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import json
import marshal
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path, PurePath

from aos import _spawnerd as wire

PROGRAM = str(Path(wire.__file__).resolve())
START_TIMEOUT = 10.0
"""Seconds the spawner process has to say it is ready."""
PIDFD_SPACE = socket.CMSG_SPACE(wire.MAX_FDS * 4)


class SpawnerError(Exception):
    """The spawner could not be started, or stopped while it had work."""


class NoWorkingDirectory(OSError):
    """The command's working directory cannot be entered (``errno``, ``filename``)."""


class Child:
    """A command the spawner started: its pid (also its process group), the read
    end of its output pipe (non-blocking; the caller closes it) and its exit."""

    def __init__(self, request_id: int, output: int, loop: asyncio.AbstractEventLoop) -> None:
        self.request_id = request_id
        self.output = output
        self.pid = 0
        self.abandoned = False
        """Its caller stopped waiting before it started: killed once it starts."""
        self.started: asyncio.Future[int] = loop.create_future()
        self.exited: asyncio.Future[int] = loop.create_future()
        """The exit code (``-N``: killed by signal N); :class:`SpawnerError` if the
        spawner stopped first (the exit code is then lost)."""


class Spawner:
    def __init__(
        self,
        sandbox: Sequence[str] = (),
        attach: Callable[[int], Awaitable[Callable[[], None]]] | None = None,
    ) -> None:
        self.sandbox = tuple(sandbox)
        """The command line that wraps the spawner in its sandbox (empty: none)."""
        self.attach = attach
        """Called with the sandbox's first process (a host pid) once it exists and
        before any command runs (to give it its network); what it returns is called
        when the sandbox ends."""
        self._detach: Callable[[], None] | None = None
        self.pid: int | None = None
        """The spawner's pid on the host while it runs (sandboxed: bubblewrap's):
        every command it starts descends from it."""
        self.last_used = time.monotonic()
        self._process: asyncio.subprocess.Process | None = None
        self._pidfds: collections.deque[int] = collections.deque()
        self._drain: asyncio.Task[bytes] | None = None
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._starting: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[int] | None = None
        self._children: dict[int, Child] = {}
        self._ids = 0
        self._buffer = b""
        self._outbox: collections.deque[tuple[memoryview, int | None]] = collections.deque()

    async def start(self) -> None:
        """Start the process now unless it runs (the first command would)."""
        while self._sock is None:
            if self._starting is None:
                self._starting = asyncio.get_running_loop().create_task(self._start())
            starting = self._starting
            try:
                await asyncio.shield(starting)
            finally:
                if starting.done():
                    self._starting = None

    def groups(self) -> list[int]:
        """The process groups of the commands running now (host pids)."""
        return [c.pid for c in self._children.values() if c.pid > 1]

    @property
    def busy(self) -> bool:
        """Whether a command it started still runs."""
        return bool(self._children)

    async def _start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv = [sys.executable, "-I", "-S", PROGRAM, str(theirs.fileno())]
        wrap, passed = list(self.sandbox), [theirs.fileno()]
        info_r, info_w = os.pipe2(os.O_CLOEXEC) if self.attach else (-1, -1)
        if self.attach:  # bubblewrap says which pid the sandbox's first process has
            wrap[-1:-1] = ["--info-fd", str(info_w)]
            passed.append(info_w)
        try:
            process = await asyncio.create_subprocess_exec(
                *wrap,
                *argv,
                *(["--sandboxed"] if self.sandbox else []),
                pass_fds=passed,
                env={},  # nothing of the daemon's environment: each command gets its own
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE if self.sandbox else None,
            )
        except OSError as exc:
            ours.close()
            what = self.sandbox[0] if self.sandbox else sys.executable
            raise SpawnerError(f"cannot start the command spawner ({what}): {exc}") from exc
        finally:
            theirs.close()
            if self.attach:
                os.close(info_w)
        sandbox_pid = 0
        if self.sandbox:  # bubblewrap stays: the sandbox lives while it runs
            self._process = process
            if self.attach:
                try:
                    sandbox_pid = await _sandbox_pid(info_r)
                except (OSError, ValueError) as exc:
                    ours.close()
                    raise SpawnerError(
                        f"the sandbox could not be built: {exc}{await self._sandbox_error()}"
                    ) from None
        elif await process.wait() != 0:
            ours.close()
            raise SpawnerError(
                f"the command spawner exited {process.returncode} at start (see the daemon log)"
            )
        ours.setblocking(False)
        self._ready = loop.create_future()
        self._sock = ours
        loop.add_reader(ours, self._readable)
        try:
            async with asyncio.timeout(START_TIMEOUT):
                pid = await self._ready
        except TimeoutError:
            self._lost(f"it did not say it was ready within {START_TIMEOUT:g} s")
            raise SpawnerError(
                f"the command spawner did not start within {START_TIMEOUT:g} s"
            ) from None
        except SpawnerError as exc:
            raise SpawnerError(f"{exc}{await self._sandbox_error()}") from None
        except BaseException:
            self._lost("its start was cancelled")
            raise
        self.pid = process.pid if self.sandbox else pid
        if self.attach:  # ready, so the sandbox is whole; no command has run yet
            try:
                self._detach = await self.attach(sandbox_pid)
            except OSError as exc:
                self._lost(f"its network could not be set up: {exc}")
                raise SpawnerError(
                    f"the sandbox's network could not be set up ({exc}): fix pasta (aos doctor), "
                    "or give the agent network: none or host"
                ) from None
        if self._process is not None and self._process.stderr is not None:
            self._drain = loop.create_task(self._process.stderr.read())  # it never blocks on it

    async def _sandbox_error(self) -> str:
        """What bubblewrap said when the sandbox could not be built."""
        process = self._process
        if process is None or process.stderr is None:
            return ""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                said = (await process.stderr.read()).decode(errors="replace").strip()
                await process.wait()
                return f" (bubblewrap exited {process.returncode}: {said or 'it said nothing'})"
        return ""

    async def spawn(self, command: str, *, cwd: str, env: Mapping[str, str]) -> Child:
        """Start ``bash -c command`` in ``cwd`` with exactly ``env``; returns once it runs.

        Raises :class:`NoWorkingDirectory` or another :class:`OSError` when the
        command cannot start, :class:`SpawnerError` when the spawner cannot be
        had (or stopped before it answered: the command may then have run)."""
        await self.start()
        loop = self._loop
        assert loop is not None
        self.last_used = time.monotonic()
        self._ids = self._ids % 0xFFFFFFFF + 1
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(read_end, False)  # the command's end stays blocking
        child = Child(self._ids, read_end, loop)
        # a relative cwd is from the kernel's, as for any child (the spawner's changes)
        where = str(PurePath(os.getcwd(), cwd))
        body = marshal.dumps((child.request_id, command, where, dict(env)))
        self._children[child.request_id] = child
        self._send(wire.HEADER.pack(len(body)) + body, write_end)
        try:
            await asyncio.shield(child.started)
        except BaseException:
            os.close(read_end)
            if child.started.done():
                self._children.pop(child.request_id, None)
            else:  # cancelled while the spawner works on it: nothing may run unwatched
                child.abandoned = True
            raise
        return child

    async def aclose(self) -> None:
        """Close the socket: the spawner process exits (running commands go on,
        except in a sandbox, which ends with it)."""
        if self._starting is not None:
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        self._lost("it was closed")
        process, self._process = self._process, None
        if process is not None:
            try:
                async with asyncio.timeout(2):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    # -- the socket -----------------------------------------------------------------------
    def _readable(self) -> None:
        sock = self._sock
        assert sock is not None
        try:
            if self.sandbox:
                data, ancillary, _, _ = sock.recvmsg(1 << 16, PIDFD_SPACE)
                for level, kind, payload in ancillary:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        fds = array.array("i")
                        fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                        self._pidfds.extend(fds)
            else:
                data = sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(f"its socket failed: {exc}")
            return
        if not data:
            self._lost("its process ended")
            return
        buffer = self._buffer + data
        end = len(buffer) - len(buffer) % wire.EVENT.size
        for request_id, kind, value in wire.EVENT.iter_unpack(buffer[:end]):
            self._event(request_id, kind, value)
        self._buffer = buffer[end:]

    def _event(self, request_id: int, kind: int, value: int) -> None:
        if kind == wire.READY:
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(value)
            return
        child = self._children.get(request_id)
        if child is None:
            return
        if kind == wire.STARTED:
            if self.sandbox:  # the sandbox's pid: the host's comes from the pidfd
                value = _host_pid(self._pidfds.popleft())
            child.pid = value
            child.started.set_result(value)
            if child.abandoned and value > 1:
                with contextlib.suppress(OSError):
                    os.killpg(value, signal.SIGKILL)
            return
        del self._children[request_id]
        if kind == wire.EXITED:
            child.exited.set_result(value)
            return
        error = NoWorkingDirectory if kind == wire.NO_CWD else OSError
        child.started.set_exception(error(value, os.strerror(value)))
        if child.abandoned:
            child.started.exception()  # nobody waits for it any more

    def _send(self, frame: bytes, fd: int) -> None:
        self._outbox.append((memoryview(frame), fd))
        if len(self._outbox) == 1:
            self._flush()

    def _flush(self) -> None:
        """Send what is queued; a request's pipe goes with its first byte."""
        sock, loop = self._sock, self._loop
        assert sock is not None and loop is not None
        while self._outbox:
            data, fd = self._outbox[0]
            try:
                if fd is None:
                    sent = sock.send(data)
                else:
                    fds = array.array("i", [fd])
                    sent = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
            except (BlockingIOError, InterruptedError):
                loop.add_writer(sock, self._flush)
                return
            except OSError as exc:
                self._lost(f"its socket failed: {exc}")
                return
            if fd is not None:
                os.close(fd)  # the spawner holds its own copy now
            if sent < len(data):
                self._outbox[0] = (data[sent:], None)
            else:
                self._outbox.popleft()
        loop.remove_writer(sock)

    def _lost(self, why: str) -> None:
        """The process is gone (or closed): everything waiting on it learns why."""
        sock, self._sock, self.pid = self._sock, None, None
        if sock is not None and self._loop is not None:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
            sock.close()
        for _, fd in self._outbox:
            if fd is not None:
                os.close(fd)
        self._outbox.clear()
        while self._pidfds:
            os.close(self._pidfds.popleft())
        detach, self._detach = self._detach, None
        if detach is not None:
            detach()
        self._buffer = b""
        error = f"the command spawner stopped: {why}"
        children, self._children = self._children, {}
        for child in children.values():
            waiting = child.exited if child.started.done() else child.started
            waiting.set_exception(SpawnerError(error))
            if child.abandoned:
                waiting.exception()  # nobody waits for it any more
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(SpawnerError(error))


async def _sandbox_pid(info: int) -> int:
    """The ``child-pid`` of the JSON bubblewrap writes on its info fd."""
    data = b""
    try:
        while chunk := await asyncio.to_thread(os.read, info, 4096):
            data += chunk
            with contextlib.suppress(ValueError):  # whole once it parses
                return int(json.loads(data)["child-pid"])
    finally:
        os.close(info)
    raise ValueError("bubblewrap exited before it started the sandbox")


def _host_pid(pidfd: int) -> int:
    """The pid (in the kernel's PID namespace) of the process a pidfd refers to;
    0 when it has already ended and been reaped (nothing left to signal)."""
    try:
        info = os.open(f"/proc/self/fdinfo/{pidfd}", os.O_RDONLY)
        try:
            text = os.read(info, 1024)
        finally:
            os.close(info)
    finally:
        os.close(pidfd)
    start = text.find(b"\nPid:")
    return max(int(text[start + 5 : text.index(b"\n", start + 5)]), 0) if start >= 0 else 0
