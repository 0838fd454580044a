"""The command spawner's process: starts each bash command for the kernel.

Run as ``python -I -S _spawnerd.py FD [--sandboxed]`` (standard library only,
nothing of ``aos`` imported) by :class:`aos.spawner.Spawner`, which holds the
other end of the Unix stream socket ``FD``. Unsandboxed, it forks at once and
its first process exits (so the spawner is nobody's child to reap) and takes a
session of its own (no controlling terminal: a command that opens ``/dev/tty``
fails at once rather than stopping). Sandboxed (``--sandboxed``: started by
bubblewrap, which owns the sandbox's PID namespace and its session) it stays
the process bubblewrap started: the sandbox lives as long as it does. Either
way it is a child subreaper, so whatever a command leaves behind stays its
descendant, and it serves until the socket closes. Commands already running
then go on unsandboxed (the kernel kills their process groups itself); in a
sandbox they end with it.

Requests (kernel -> spawner): a 4-byte little-endian length, then a
``marshal``-ed tuple:

- ``(request_id, command, cwd, env)`` runs a command: the write end of its
  output pipe rides along with the request's first byte (``SCM_RIGHTS``). The
  spawner enters ``cwd``, starts ``bash -c command`` with ``env`` (``bash``
  looked up in ``env``'s ``PATH``) in a new process group of its own, stdin
  ``/dev/null``, stdout and stderr the pipe, and closes its copy of the pipe.
- ``(0, signal, pgid)`` signals a process group (a sandbox's processes are
  reached from inside it; the kernel also signals host pids directly).

Events (spawner -> kernel): 12-byte records ``(request_id, kind, value)``,
``kind`` one of :data:`READY` (value: the spawner's pid, request 0),
:data:`STARTED` (the child's pid, which is also its process group),
:data:`EXITED` (the exit code; ``-N`` for a signal), :data:`NO_CWD` and
:data:`NOT_STARTED` (the ``errno``). A command's records come in the order
started, exited. Sandboxed, each STARTED record's write also carries a pidfd
of the child (``SCM_RIGHTS``, in the order of the records): the pid in the
record is the sandbox's, and the kernel learns the host's from the pidfd.

Being a separate process keeps the kernel's event loop out of
``posix_spawn`` (the loop would otherwise stop while each child execs) and
lets the spawning run on another CPU.
"""

import contextlib
import marshal
import os
import selectors
import shutil
import signal
import socket
import struct
import sys

HEADER = struct.Struct("<I")
EVENT = struct.Struct("<IIi")
READY, STARTED, EXITED, NO_CWD, NOT_STARTED = range(5)
FD_SPACE = socket.CMSG_SPACE(16 * 4)
MAX_FDS = 250
"""Descriptors one message may carry (Linux's SCM_MAX_FD is 253)."""
PR_SET_CHILD_SUBREAPER = 36
RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)
"""Python ignores these, and ignored signals survive ``exec``: a command gets
their default actions back (as ``subprocess``'s ``restore_signals`` does)."""


class Spawnerd:
    def __init__(self, sock: socket.socket, *, pidfds: bool = False) -> None:
        self.sock = sock
        self.pidfds = pidfds
        """Send a pidfd with each STARTED record (sandboxed)."""
        self.event_fds: list[int | None] = []
        """The pidfd that goes with each event (STARTED ones, sandboxed)."""
        self.buffer = b""
        self.fds: list[int] = []
        self.children: dict[int, int] = {}
        """pid -> request id, while the command runs."""
        self.bash: dict[str, str] = {}
        """PATH -> where bash is on it."""
        self.events: list[bytes] = []
        """Events to send: one write for all that one wake-up produced."""

    def send(self, request_id: int, kind: int, value: int, fd: int | None = None) -> None:
        self.events.append(EVENT.pack(request_id, kind, value))
        self.event_fds.append(fd)

    def flush(self) -> None:
        if not self.pidfds:
            if self.events:
                self.sock.sendall(b"".join(self.events))
                self.events.clear()
                self.event_fds.clear()
            return
        while self.events:  # each write carries the pidfds of its STARTED records
            data = b"".join(self.events[:MAX_FDS])
            fds = [fd for fd in self.event_fds[:MAX_FDS] if fd is not None]
            del self.events[:MAX_FDS], self.event_fds[:MAX_FDS]
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
            try:
                sent = self.sock.sendmsg([data], rights if fds else [])
                if sent < len(data):
                    self.sock.sendall(data[sent:])
            finally:
                for fd in fds:
                    os.close(fd)

    def receive(self) -> bool:
        """Read what came and start each complete request; False at end of input."""
        data, ancillary, _, _ = self.sock.recvmsg(1 << 16, FD_SPACE)
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                count = len(payload) // 4
                for fd in struct.unpack(f"{count}i", payload[: count * 4]):
                    os.set_inheritable(fd, False)  # the command gets it as 1 and 2 only
                    self.fds.append(fd)
        if not data:
            return False
        self.buffer += data
        while len(self.buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self.buffer)
            end = HEADER.size + size
            if len(self.buffer) < end:
                break
            request = marshal.loads(self.buffer[HEADER.size : end])
            self.buffer = self.buffer[end:]
            if request[0] == 0:
                _, signum, pgid = request
                with contextlib.suppress(OSError):
                    os.killpg(pgid, signum)
                continue
            request_id, command, cwd, env = request
            if not self.fds:  # every request carries its pipe: never without one
                self.send(request_id, NOT_STARTED, 9)  # EBADF
                continue
            self.start(request_id, command, cwd, env, self.fds.pop(0))
        return True

    def start(
        self, request_id: int, command: str, cwd: str, env: dict[str, str], output: int
    ) -> None:
        try:
            try:
                os.chdir(cwd)
            except OSError as exc:
                self.send(request_id, NO_CWD, exc.errno or 0)
                return
            path = env.get("PATH", os.defpath)
            bash = self.bash.get(path)
            if bash is None:
                bash = self.bash[path] = shutil.which("bash", path=path) or "bash"
            try:
                pid = os.posix_spawn(
                    bash,
                    ["bash", "-c", command],
                    env,
                    file_actions=[
                        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                        (os.POSIX_SPAWN_DUP2, output, 1),
                        (os.POSIX_SPAWN_DUP2, output, 2),
                    ],
                    setpgroup=0,
                    setsigdef=RESET_SIGNALS,
                    setsigmask=(),
                )
            except OSError as exc:
                self.send(request_id, NOT_STARTED, exc.errno or 0)
                return
        finally:
            os.close(output)
        pidfd = None
        if self.pidfds:  # the kernel learns the child's host pid from it
            try:
                pidfd = os.pidfd_open(pid)
            except OSError as exc:
                os.killpg(pid, signal.SIGKILL)
                self.send(request_id, NOT_STARTED, exc.errno or 0)
                return
        self.children[pid] = request_id
        self.send(request_id, STARTED, pid, pidfd)

    def reap(self) -> None:
        """Reap every child that ended: commands, and what they left (a subreaper's)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            request_id = self.children.pop(pid, None)
            if request_id is not None:
                self.send(request_id, EXITED, os.waitstatus_to_exitcode(status))

    def serve(self) -> None:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        selector = selectors.DefaultSelector()
        selector.register(self.sock, selectors.EVENT_READ, "requests")
        selector.register(wake_r, selectors.EVENT_READ, "children")
        self.send(0, READY, os.getpid())
        self.flush()
        while True:
            for key, _ in selector.select():
                if key.data == "children":
                    _drain(wake_r)
                    self.reap()
                elif not self.receive():
                    return
            self.flush()


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _become_subreaper() -> None:
    """Orphans of commands become our children, not init's: they stay descendants
    of the spawner (the control socket refuses admin to those) and get reaped."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def main() -> None:
    fd = int(sys.argv[1])
    os.closerange(3, fd)  # nothing else it was handed (bubblewrap's info fd...)
    os.closerange(fd + 1, os.sysconf("SC_OPEN_MAX"))
    sock = socket.socket(fileno=fd)
    sock.set_inheritable(False)  # a command must never reach the spawner
    sandboxed = "--sandboxed" in sys.argv[2:]
    if not sandboxed:
        if os.fork():  # the kernel reaps this first process at once
            os._exit(0)
        os.setsid()
    _become_subreaper()
    os.chdir("/")
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the kernel is gone
        Spawnerd(sock, pidfds=sandboxed).serve()


if __name__ == "__main__":
    main()
