"""The daemon: one node serving the kernel over its sockets.

Start-up order: refuse if a daemon already runs (else clear a stale pidfile
and socket) -> open the kernel (store + migrations, plugins, skills) -> open
the control and agent sockets -> start the service supervisor and the skill
watcher -> write the pidfile -> fire ``daemon.start`` -> ready.

Shutdown order (SIGTERM, SIGINT or ``kernel.shutdown``): fire ``daemon.stop``
(and give notifications a moment) -> close the sockets -> interrupt running
dispatches -> stop the watcher -> stop the services -> close the kernel (flush
RuntimeLog, close the store) -> remove the pidfile.
docs/specs/aos-lifecycle.md describes both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.handlers
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import anyio

from aos.config import Config, ConfigError
from aos.control import ControlServer
from aos.kernel import Kernel
from aos.nodes import SQLiteInUse, lock_sqlite
from aos.services import MAX_SOCKET_PATH, ServiceSupervisor
from aos.spawner import SpawnerError
from aos.store.sqlite import SQLiteStore
from aos.websocket import WebSocketError, WebSocketFace

logger = logging.getLogger("aos")
STOP_NOTIFY_GRACE = 2.0
RECOVERY_INTERVAL = 10.0


class DaemonError(Exception):
    """The daemon cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class DaemonPaths:
    control_socket: Path
    agent_socket: Path
    service_dir: Path
    pidfile: Path
    log_file: Path

    @classmethod
    def of(cls, config: Config) -> DaemonPaths:
        run = config.paths.runtime_dir
        return cls(
            control_socket=run / "aos.sock",
            agent_socket=run / "agent.sock",
            service_dir=run / "services",
            pidfile=config.paths.state_dir / "aos.pid",
            log_file=config.paths.log_file,
        )


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie, exited but not reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no procfs: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def read_pid(pidfile: Path) -> int | None:
    """The pid in the pidfile if that process is alive."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


LOG_MAX_BYTES = 10 * 1024 * 1024
"""Size at which the node's log file is rotated (``aos.log`` -> ``aos.log.1``...)."""
LOG_BACKUPS = 5
"""Rotated log files kept beside it."""


class NodeLogHandler(logging.handlers.RotatingFileHandler):
    """The node's log file, rotated at ``max_bytes``. In the background daemon,
    whose stdout and stderr are that same file (``aos start``), they follow it to
    the new file at each rotation: a traceback printed there lands in ``aos.log``,
    not in an old rotated one."""

    def __init__(self, log_file: Path, max_bytes: int) -> None:
        super().__init__(log_file, maxBytes=max_bytes, backupCount=LOG_BACKUPS, encoding="utf-8")
        self.std_fds = [fd for fd in (1, 2) if _same_file(fd, log_file)]

    def doRollover(self) -> None:
        super().doRollover()
        if self.stream is not None:
            for fd in self.std_fds:
                os.dup2(self.stream.fileno(), fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, theirs = os.fstat(fd), path.stat()
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


def setup_logging(log_file: Path, *, foreground: bool, max_bytes: int = LOG_MAX_BYTES) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [NodeLogHandler(log_file, max_bytes)]
    if foreground:
        handlers.append(logging.StreamHandler())
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    for handler in handlers:
        handler.setFormatter(formatter)
    logger.handlers[:] = handlers
    logger.setLevel(logging.INFO)
    logger.propagate = False


class Daemon:
    def __init__(self, config: Config, kernel: Kernel | None = None) -> None:
        """``kernel``: an already open kernel to serve (tests, embedding); the
        daemon closes it when it stops."""
        self.config = config
        self.paths = DaemonPaths.of(config)
        self.kernel = kernel

    def _claim(self) -> None:
        """Refuse to start twice; clear what a crashed daemon left behind."""
        pid = read_pid(self.paths.pidfile)
        if pid is not None and pid != os.getpid():
            raise DaemonError(
                f"a daemon is already running (pid {pid}, socket {self.paths.control_socket}): "
                "stop it with `aos stop`"
            )
        for stale in (self.paths.pidfile, self.paths.control_socket, self.paths.agent_socket):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
                logger.info("removed %s left by a daemon that did not stop cleanly", stale)
        if len(str(self.paths.control_socket)) > MAX_SOCKET_PATH:
            raise DaemonError(
                f"socket paths under {self.config.paths.runtime_dir} are too long for Unix sockets "
                f"(over {MAX_SOCKET_PATH} bytes): set AOS_HOME to a shorter directory"
            )

    async def start(self, within: float | None = None) -> asyncio.Task[None]:
        """:meth:`run` in a task of the running loop, returned once the daemon
        serves; what kept it from starting is raised here (TimeoutError when it
        is not ready ``within`` seconds). Stop it with ``kernel.shutdown`` and
        await the task."""
        ready = asyncio.Event()
        task = asyncio.get_running_loop().create_task(self.run(ready=ready))
        waiting = asyncio.ensure_future(ready.wait())
        done, _ = await asyncio.wait(
            [task, waiting], timeout=within, return_when=asyncio.FIRST_COMPLETED
        )
        if task in done:
            waiting.cancel()
            task.result()  # raises why it could not start
            raise DaemonError("the daemon stopped before it was ready")
        if not done:
            waiting.cancel()
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise TimeoutError(f"the daemon was not ready within {within:g} s")
        return task

    async def run(self, *, ready: asyncio.Event | None = None) -> None:
        """Serve until SIGTERM/SIGINT or ``kernel.shutdown``."""
        self._claim()
        try:
            kernel = self.kernel = self.kernel or await Kernel.open(self.config)
        except ConfigError as exc:  # e.g. a cluster setting (AOS_NODE_TTL) that is no number
            raise DaemonError(f"configuration error: {exc}") from None
        try:
            node_lock = self._lock_database(kernel)
        except DaemonError:
            await kernel.close()
            raise
        control = ControlServer(kernel, self.paths.control_socket, admin_by_uid=True)
        agents = ControlServer(kernel, self.paths.agent_socket, admin_by_uid=False)
        supervisor = ServiceSupervisor(kernel, self.paths.service_dir, self.paths.agent_socket)
        kernel.services = supervisor
        kernel.agent_socket = self.paths.agent_socket
        listen = self.config.aoscb.ws_listen
        face = WebSocketFace(kernel, supervisor, listen) if listen else None
        stop_watch = anyio.Event()
        watcher: asyncio.Task[None] | None = None
        recovery: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, kernel, signum)
        try:
            await control.start()
            await agents.start()
            if face is not None:
                try:
                    kernel.ws_url = await face.start()
                except WebSocketError as exc:
                    raise DaemonError(str(exc)) from None
                logger.info("websocket face: %s", kernel.ws_url)
            # Before the services start: their start-up sees recovered sessions idle, and
            # no service hears of a lost dispatch after it has already picked the session up.
            for session_id in await kernel.recover():
                logger.warning("recovered session %s: its dispatch was cut by a crash", session_id)
            supervisor.start_all()
            await kernel.cluster.start()  # on PostgreSQL: claims queued dispatches from now on
            watch_started = anyio.Event()
            watcher = loop.create_task(kernel.skills.watch(started=watch_started, stop=stop_watch))
            await watch_started.wait()
            isolation = kernel.sandboxes.isolation
            (logger.info if isolation.sandboxed else logger.warning)(
                "isolation: %s", isolation.detail
            )
            if not isolation.sandboxed:  # warm: the first command does not wait for it
                try:
                    await kernel.sandboxes.plain.start()
                except SpawnerError as exc:
                    logger.error("%s; each command will try to start it again", exc)
            recovery = loop.create_task(self._recover_periodically(kernel))
            self.paths.pidfile.parent.mkdir(parents=True, exist_ok=True)
            self.paths.pidfile.write_text(f"{os.getpid()}\n")
            kernel.hooks.notify(
                "daemon.start", {"node": kernel.node_id, "pid": os.getpid(), "db": kernel.store.url}
            )
            logger.info(
                "ready: node %s, socket %s, database %s, %d skills active, %d services",
                kernel.node_id,
                self.paths.control_socket,
                kernel.store.url,
                len(kernel.skills.active()),
                len(supervisor.services),
            )
            if ready is not None:
                ready.set()
            await kernel.shutdown_requested.wait()
            logger.info("shutting down: %s", kernel.shutdown_reason or "requested")
            kernel.cluster.stop_claiming()
            kernel.hooks.notify(
                "daemon.stop", {"node": kernel.node_id, "reason": kernel.shutdown_reason}
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_NOTIFY_GRACE):
                    await kernel.hooks.drain()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            if recovery is not None:
                recovery.cancel()
            await control.close()
            await agents.close()
            if face is not None:
                await face.close()
                kernel.ws_url = None
            await kernel.stop_dispatches("interrupted: the daemon is shutting down")
            if kernel.cluster.running:
                await kernel.cluster.stop()
            stop_watch.set()
            if watcher is not None:
                await asyncio.wait([watcher], timeout=5)
            await supervisor.close()
            await kernel.close()
            if read_pid(self.paths.pidfile) == os.getpid():
                self.paths.pidfile.unlink()
            if node_lock is not None:
                node_lock.close()
            logger.info("stopped")

    def _lock_database(self, kernel: Kernel) -> IO[str] | None:
        """SQLite serves one node: hold its lock (a second daemon is refused)."""
        if not isinstance(kernel.store, SQLiteStore):
            return None
        try:
            return lock_sqlite(kernel.store.path)
        except SQLiteInUse as exc:
            raise DaemonError(str(exc)) from None

    async def _recover_periodically(self, kernel: Kernel) -> None:
        """Pick up dispatches whose node died (their lease expired)."""
        while True:
            await asyncio.sleep(RECOVERY_INTERVAL)
            try:
                for session_id in await kernel.recover():
                    logger.warning("recovered session %s from an expired lease", session_id)
            except Exception:
                logger.exception("recovery scan failed; retrying")

    def _on_signal(self, kernel: Kernel, signum: int) -> None:
        kernel.shutdown_reason = f"signal {signal.Signals(signum).name}"
        kernel.shutdown_requested.set()
