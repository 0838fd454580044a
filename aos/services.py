"""Service faces: supervised skill subprocesses that plug into the hook manager.

For every active skill with ``service:`` the daemon creates a Unix socket under
the runtime dir, spawns the program (a ``.py`` file through the SDK's runner
with the daemon's interpreter, a ``.js``/``.mjs`` file with node, anything else
directly) with ``AOS_SERVICE_SOCKET``, ``AOS_SKILL``, ``AOS_TOKEN``, ``AOS_SOCKET`` and
``AOS_STATE_DIR`` (the node's state dir, for a service's own files) in its
environment, and waits for its ``hello``. The hooks it
declares are registered through a proxy plugin into the same PluginManager as
in-process plugins; its syscalls run as ``service:<skill>``.

Authentication: the service socket accepts only a connection whose peer
(``SO_PEERCRED``) is the spawned process or one of its descendants; any other
process of the same user that connects is refused and logged, so no one can
take a service's place by racing it to its socket.

Hooks from the first second: when the supervisor takes a service skill on (at
daemon start, before any socket opens, or when the skill appears) it registers
a placeholder proxy for the hooks the skill's SKILL.md declares and those its
last accepted hello declared (remembered in ``state/service-hooks.json``). Until
the service says hello, and whenever it is down, each of them fails with "the
service of X is not running" and its failure policy decides: a gate fails
closed unless declared ``fail-open``.

Supervision: a crashed service restarts with exponential backoff (capped), each
crash logged with its exit code and its last stderr lines; a service that does
not say hello in time is killed and marked failed (and retried with backoff); a
running service is pinged, and one that does not answer within the deadline
(stopped, hung) is reported, its process group killed and restarted; hot reload
restarts a changed service and stops a removed one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal

import msgspec
from aos_sdk.peer import ConnectionClosed, Peer, RemoteError
from aos_sdk.protocol import (
    MAX_FRAME,
    Bye,
    Error,
    Hello,
    HookCall,
    HookDecl,
    HookResult,
    Ping,
    ProtocolError,
    Welcome,
)
from aos_sdk.transport import StreamTransport

from aos import __version__
from aos.control import peer_of, read_hello, syscall_handler
from aos.hooks import HookPolicy
from aos.hookspecs import HOOKS, hookimpl
from aos.principals import GRANTABLE_SCOPES, Principal, service_principal
from aos.processes import descends_from
from aos.reactunit import SECRET_VARIABLES
from aos.remotes import RemoteGrant
from aos.runtimelog import LogEntry
from aos.skills.manifest import HookSettings
from aos.skills.registry import Skill, SkillEvent
from aos.statefile import read_state, write_state
from aos.syscalls import ERROR_CODES, SyscallError

if TYPE_CHECKING:
    from aos.kernel import Kernel

State = Literal["starting", "running", "backoff", "failed", "stopped", "disconnected"]
logger = logging.getLogger("aos")
HELLO_TIMEOUT = 10.0
METHOD_TIMEOUT = 30.0
MAX_SOCKET_PATH = 107
"""Linux's limit for a Unix socket path (sun_path, less the terminating NUL)."""
BACKOFF_START = 0.5
BACKOFF_CAP = 30.0
STABLE_AFTER = 60.0
"""A service that ran this long before crashing restarts from the shortest backoff."""
STDERR_LINES = 20
STDERR_LINE_CAP = 4096
"""Characters of one stderr line the node's log keeps."""
PING_INTERVAL = 3.0
"""Seconds between two pings of a running service."""
PING_DEADLINE = 10.0
"""A running service that does not answer a ping this long is killed and restarted."""
EXIT_GRACE = 1.0
"""After ``bye``, how long a stopped service has to exit before it gets SIGTERM."""
DOCTOR_METHOD = "doctor"
"""A method a service may offer: its answer, a list of lines, says what is wrong
with its own setup; ``aos doctor`` and ``aos skill show`` print them."""
HOOKS_FILE = "service-hooks.json"
"""Under the node's state dir: each service's hooks, as its last accepted hello declared them."""


class ServiceError(Exception):
    """A service could not be started or broke the handshake."""


def command_for(path: Path) -> list[str]:
    """How to run a service program."""
    if path.suffix == ".py":
        return [os.path.abspath(sys.executable), "-m", "aos_sdk.run", str(path)]  # cwd changes
    if path.suffix in (".js", ".mjs", ".cjs"):
        return ["node", str(path)]
    return [str(path)]


def make_proxy(skill: str, hooks: list[HookDecl], call: Any) -> SimpleNamespace:
    """A plugin object whose hookimpls forward to the service over its connection."""
    attrs: dict[str, Any] = {"aos_where": "service"}
    for decl in hooks:
        spec = HOOKS[decl.name]
        mark = hookimpl(tryfirst=decl.priority == "first", trylast=decl.priority == "last")
        if spec.kind == "gate":

            async def gate(input: Any, output: Any, _hook: str = decl.name) -> Any:
                return await call(_hook, {"input": dict(input), "output": output})

            gate.__qualname__ = f"service {skill}: {decl.name}"
            attrs[spec.python_name] = mark(gate)
        elif spec.kind == "notify":

            async def notify(event: Any, _hook: str = decl.name) -> Any:
                return await call(_hook, {"event": dict(event)})

            notify.__qualname__ = f"service {skill}: {decl.name}"
            attrs[spec.python_name] = mark(notify)
        else:

            async def provide(input: Any, _hook: str = decl.name) -> Any:
                return await call(_hook, {"input": dict(input)})

            provide.__qualname__ = f"service {skill}: {decl.name}"
            attrs[spec.python_name] = mark(provide)
    return SimpleNamespace(**attrs)


def enforceable(hook: str) -> bool:
    """Whether a placeholder must hold ``hook`` before its service says hello: a
    gate or a provide hook, whose failure policy can refuse an operation (a
    notify hook refuses nothing; a register hook is never a service's)."""
    spec = HOOKS.get(hook)
    return spec is not None and spec.kind in ("gate", "provide")


def check_hooks(hooks: list[HookDecl]) -> None:
    for decl in hooks:
        spec = HOOKS.get(decl.name)
        if spec is None:
            raise ServiceError(f"hello names hook {decl.name!r}, which does not exist")
        if spec.kind == "register":
            raise ServiceError(f"{decl.name} is for in-process plugins only")
        if decl.kind is not None and decl.kind != spec.kind:
            raise ServiceError(
                f"hello declares {decl.name} as {decl.kind}; it is a {spec.kind} hook"
            )


class _HooksFile(msgspec.Struct, kw_only=True):
    version: int = 1
    skills: dict[str, list[HookDecl]] = {}


class RememberedHooks:
    """The hooks of each service's last accepted hello, kept in the node's state
    dir: at the next daemon start they are enforced before the service says hello."""

    def __init__(self, path: Path) -> None:
        self.path = path
        found, self.problem = read_state(path, _HooksFile, "hooks file")
        """Why the file could not be used (it is then ignored, and rewritten at the next hello)."""
        self._skills: dict[str, list[HookDecl]] = found.skills if found else {}

    def get(self, skill: str) -> list[HookDecl]:
        return list(self._skills.get(skill, []))

    def remember(self, skill: str, hooks: list[HookDecl]) -> None:
        """Record ``hooks`` for ``skill`` (OSError when the file cannot be written)."""
        if self._skills.get(skill) != hooks:
            self._skills[skill] = list(hooks)
            self._write()

    def forget(self, skill: str) -> None:
        if self._skills.pop(skill, None) is not None:
            self._write()

    def _write(self) -> None:
        write_state(self.path, _HooksFile(skills=self._skills))


class ServiceLink:
    """What the kernel holds of one service, local or remote: its connection, the
    proxy plugin that forwards its hooks, its methods, its state."""

    def __init__(self, supervisor: ServiceSupervisor, name: str) -> None:
        self.supervisor = supervisor
        self.name = name
        self.state: State = "starting"
        self.restarts = 0
        self.last_error: str | None = None
        self.left: str | None = None
        """Why it left, when it said ``bye`` and exited 0: stopped until a reload."""
        self.started_at: float | None = None
        self.settled = asyncio.Event()
        """Set once the first start said hello or failed."""
        self._peer: Peer | None = None
        self._unresponsive = False
        """This run did not answer a ping in time: it is cut off, not asked to stop."""
        self._plugin_name = name
        self.methods: frozenset[str] = frozenset()

    @property
    def kernel(self) -> Kernel:
        return self.supervisor.kernel

    def status(self) -> dict[str, Any]:
        return {
            "skill": self.name,
            "state": self.state,
            "methods": sorted(self.methods),
            "restarts": self.restarts,
            "last_error": self.last_error,
            "left": self.left,
            "uptime": time.time() - self.started_at
            if self.started_at and self.state == "running"
            else None,
        }

    def log(
        self, message: str, level: Literal["info", "warning", "error"] = "info", **data: Any
    ) -> None:
        entry = LogEntry(
            kind="service",
            level=level,
            message=f"service {self.name}: {message}",
            data={"skill": self.name, **data},
        )
        self.kernel.log(entry)  # warnings and errors reach the node's log there
        if level == "info":
            logger.info("%s", entry.message)
        if self.kernel.events.has_subscribers():
            self.kernel.events.publish("service", self.status())

    def declared(self) -> dict[str, HookSettings]:
        """Hook policies set where the service is installed (a local skill's SKILL.md)."""
        return {}

    def expected_hooks(self) -> list[HookDecl]:
        """The gate and provide hooks to enforce before the service says hello:
        those of its last accepted hello (remembered across daemon restarts) and
        those declared where it is installed (a local skill's SKILL.md ``hooks:``)."""
        remembered = self.supervisor.remembered.get(self.name)
        hooks = {d.name: d for d in remembered if enforceable(d.name)}
        for name in self.declared():
            if name not in hooks and enforceable(name):
                hooks[name] = HookDecl(name=name)
        return list(hooks.values())

    def guard(self) -> None:
        """Register the placeholder proxy: until the service says hello each
        expected hook fails with "not running" and its failure policy decides."""
        hooks = self.expected_hooks()
        if hooks:
            self._register(hooks)

    def check_hello(self, hello: Hello) -> None:
        """ProtocolError or ServiceError when ``hello`` is not this service's."""
        if hello.role != "service" or hello.skill != self.name:
            raise ProtocolError(
                f"hello is for {hello.role} {hello.skill!r}, expected service {self.name!r}"
            )
        check_hooks(hello.hooks)

    def welcome(self, peer: Peer, principal: Principal) -> None:
        """Answer the accepted hello; the service's syscalls run as ``principal``."""
        peer.send(Welcome(node=self.kernel.node_id, version=__version__, principal=principal.name))
        peer.handler = syscall_handler(self.kernel, principal, peer)

    def attach(self, peer: Peer, hello: Hello) -> None:
        """The service said hello: its hooks (as it declares them now) apply."""
        self._peer = peer
        self.methods = frozenset(hello.methods)
        self._register(hello.hooks)
        self._remember(hello.hooks)
        self.state = "running"
        self.settled.set()
        self.started_at = time.time()

    async def _watch(self, peer: Peer, cut_off: str) -> None:
        """Ping the service; return when it does not answer within the deadline
        (stopped, hung: logged with ``cut_off``, what happens next) or its
        connection ended."""
        while not peer.closed.is_set():
            await asyncio.sleep(PING_INTERVAL)
            try:
                async with asyncio.timeout(PING_DEADLINE):
                    await peer.request(Ping(id=peer.next_id()))
            except TimeoutError:
                self._unresponsive = True
                self.log(f"not answering: no pong within {PING_DEADLINE:g}s; {cut_off}", "error")
                return
            except ConnectionClosed:
                return
            except RemoteError:
                continue  # it answered, if with an error: it is alive

    async def _call(self, hook: str, args: dict[str, Any]) -> Any:
        """One hook call forwarded to the service; raises (its policy decides)
        when the service is down or its implementation failed."""
        live = self._peer
        if live is None or live.closed.is_set():
            if self.left is not None:
                raise RuntimeError(
                    f"the service of {self.name} left ({self.left}): "
                    f"`aos skill reload {self.name}` starts it again"
                )
            why = self.last_error.split("; stderr:")[0] if self.last_error else ""
            raise RuntimeError(
                f"the service of {self.name} is not running "
                f"({self.state}{': ' + why if why else ''}): try again shortly"
            )
        deadline = next(
            (i.timeout for i in self.kernel.hooks.impls(hook) if i.owner == self.name), None
        )  # the service learns how long it has (its policy's timeout)
        call = HookCall(
            id=live.next_id(),
            hook=hook,
            args=args,
            timeout=deadline,
            traceparent=self.kernel.telemetry.traceparent(),
        )
        reply: HookResult = await live.request(call)
        if reply.error is not None:
            raise RuntimeError(reply.error)
        return reply.result

    def _register(self, hooks: list[HookDecl]) -> None:
        """Register (or replace) the proxy plugin for ``hooks``, each with its
        policy: SKILL.md's, else the hook declaration's, else the kind's default."""
        declared = self.declared()
        for decl in hooks:
            from_md = declared.get(decl.name)
            policy = HookPolicy(
                timeout=from_md.timeout if from_md and from_md.timeout else decl.timeout,
                failure=from_md.failure if from_md and from_md.failure else decl.failure,
            )
            self.kernel.hooks.set_policy(self.name, decl.name, policy)
        if self.kernel.pm.has_plugin(self._plugin_name):
            self.kernel.pm.unregister(name=self._plugin_name)
        self.kernel.pm.register(make_proxy(self.name, hooks, self._call), name=self._plugin_name)

    def _remember(self, hooks: list[HookDecl]) -> None:
        try:
            self.supervisor.remembered.remember(self.name, hooks)
        except OSError as exc:
            self.log(
                f"cannot record its hooks in {self.supervisor.remembered.path}: {exc.strerror}; "
                "after a daemon restart only the hooks its SKILL.md declares are enforced "
                "before it says hello",
                "warning",
            )

    def _unregister(self) -> None:
        if self.kernel.pm.has_plugin(self._plugin_name):
            self.kernel.pm.unregister(name=self._plugin_name)

    async def call_method(self, method: str, caller: dict[str, Any], params: dict[str, Any]) -> Any:
        """Run one of the service's methods for ``caller`` (a ``skill.call``);
        its refusals are SyscallErrors with the code the service chose."""
        peer = self._peer
        name = f"{self.name}.{method}"
        if self.state != "running" or peer is None:
            raise SyscallError("unavailable", f"service {self.name} is not running ({self.state})")
        if method not in self.methods:
            raise SyscallError("unknown", f"service {self.name} has no method {method!r}")
        call = HookCall(
            id=peer.next_id(),
            hook=f"method:{method}",
            args={"caller": caller, "params": params},
            timeout=METHOD_TIMEOUT,
            traceparent=self.kernel.telemetry.traceparent(),
        )
        try:
            async with asyncio.timeout(METHOD_TIMEOUT):
                reply: HookResult = await peer.request(call)
        except TimeoutError:
            raise SyscallError(
                "unavailable", f"{name} did not answer within {METHOD_TIMEOUT:g}s"
            ) from None
        except ConnectionClosed:
            raise SyscallError("unavailable", f"{name}: the service went away") from None
        if reply.error is not None:
            code = reply.code if reply.code in ERROR_CODES else "unavailable"
            raise SyscallError(code, f"{name}: {reply.error}")  # type: ignore[arg-type]
        return reply.result


class Service(ServiceLink):
    """One skill's service process, supervised."""

    def __init__(self, supervisor: ServiceSupervisor, skill: Skill) -> None:
        super().__init__(supervisor, skill.name)
        self.skill = skill
        self.pid: int | None = None
        """The spawned process."""
        self.peer_pid: int | None = None
        """The process really connected (SO_PEERCRED): the spawned one or a descendant."""
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self.socket_path = supervisor.socket_dir / f"{skill.name}.sock"
        self._stop = asyncio.Event()
        self._handover = False
        """Stopped for a new version of the skill: the hooks stay (failing) until it says hello."""
        self._process: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task[None] | None = None

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "pid": self.pid,
            "peer_pid": self.peer_pid,
            "socket": str(self.socket_path),
            "remote": None,
        }

    def declared(self) -> dict[str, HookSettings]:
        return self.skill.manifest.hooks if self.skill.manifest else {}

    async def run(self) -> None:
        """Start, watch, restart with backoff, until stopped."""
        backoff = BACKOFF_START
        self.state = "starting"  # a retry keeps showing backoff or failed until its hello
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                await self._run_once()
            except ServiceError as exc:
                if not self._stop.is_set():  # else it was only cut short
                    self.last_error = str(exc)
                    self.log(str(exc), "error")
            self.settled.set()
            if self._stop.is_set() or self.left is not None:
                break
            if time.monotonic() - started > STABLE_AFTER:
                backoff = BACKOFF_START
            self.state = "backoff" if self.state != "failed" else "failed"
            self.restarts += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._stop.wait()
            backoff = min(backoff * 2, BACKOFF_CAP)
        if not self._handover and self.left is None:
            self._unregister()  # a service that left keeps its hooks, failing by policy
        self.settled.set()
        self.state = "stopped"

    async def _run_once(self) -> None:
        path = self.skill.service_path
        if path is None or not path.exists():
            self.state = "failed"
            raise ServiceError(f"service program {path} does not exist")
        if len(str(self.socket_path)) > MAX_SOCKET_PATH:
            self.state = "failed"
            raise ServiceError(
                f"socket path {self.socket_path} is over {MAX_SOCKET_PATH} bytes, too long for a "
                "Unix socket: set AOS_HOME to a shorter directory"
            )
        self._process = None  # a connection before the spawn is nobody's
        self.peer_pid = None
        self._unresponsive = False
        ready: asyncio.Future[tuple[Peer, Hello]] = asyncio.get_running_loop().create_future()
        self.socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        server = await asyncio.start_unix_server(
            lambda r, w: self._accept(r, w, ready), path=str(self.socket_path), limit=MAX_FRAME + 64
        )
        os.chmod(self.socket_path, 0o600)
        try:
            await self._spawn(path)
            assert self._process is not None
            stderr_task = asyncio.get_running_loop().create_task(self._read_stderr())
            try:
                peer, hello = await self._await_hello(ready)
                self.attach(peer, hello)
                child = f", connected from pid {self.peer_pid}" if self.peer_pid != self.pid else ""
                self.log(f"running (pid {self.pid}{child})")
                waits = [
                    asyncio.ensure_future(self._process.wait()),
                    asyncio.ensure_future(self._stop.wait()),
                    asyncio.ensure_future(peer.closed.wait()),
                    asyncio.ensure_future(
                        self._watch(
                            peer,
                            f"killing its process group (pid {self.pid}) and restarting it",
                        )
                    ),
                ]
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
            finally:
                if self._stop.is_set() and not self._handover:
                    self._unregister()
                # Else its hooks stay, failing as their policy says (a gate closed by
                # default) until it is back: a policy skill never lapses while it restarts.
                bye = self._peer.bye if self._peer is not None else None
                code = await self._terminate()
                await asyncio.wait([stderr_task], timeout=1)
            if self._unresponsive:
                self.last_error = f"did not answer a ping within {PING_DEADLINE:g}s: killed"
            elif bye is not None and code == 0 and not self._stop.is_set():
                self.left = bye.reason or "it said bye"
                self.last_error = None
                self.log(
                    f"stopped: it left ({self.left}) and exited 0; its gates fail as their "
                    f"policy says until `aos skill reload {self.name}` starts it again"
                )
            elif not self._stop.is_set():
                tail = " | ".join(self.stderr_tail)
                self.last_error = f"exited with code {code}" + (f"; stderr: {tail}" if tail else "")
                self.log(
                    f"crashed: {self.last_error}",
                    "error",
                    exit_code=code,
                    stderr=list(self.stderr_tail),
                )
        finally:
            server.close()
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()

    async def _accept(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        ready: asyncio.Future[tuple[Peer, Hello]],
    ) -> None:
        """The service's connection: check who it is and its hello, then serve it
        until it ends."""
        peer = Peer(StreamTransport(reader, writer))
        credentials = peer_of(writer)
        pid = credentials.pid if credentials is not None else None
        process = self._process
        if process is None or not pid or not descends_from(pid, frozenset({process.pid})):
            await self._refuse(peer, pid)
            return
        if ready.done():  # one connection per service run
            peer.send(Error(code="protocol", message=f"service {self.name} is already connected"))
            await peer.close()
            return
        try:
            hello = await read_hello(peer)
            self.check_hello(hello)
        except (ProtocolError, ServiceError) as exc:
            peer.send(Error(code="protocol", message=str(exc)))
            await peer.close()
            if not ready.done():
                ready.set_exception(ServiceError(f"bad hello: {exc}"))
            return
        self.welcome(peer, service_principal(self.name, frozenset(self._granted())))
        self.peer_pid = pid
        ready.set_result((peer, hello))
        await peer.serve()

    async def _refuse(self, peer: Peer, pid: int | None) -> None:
        """Turn away a connection from a process that is not the service's."""
        who = (
            f"pid {pid}"
            if pid
            else "a process in another PID namespace"
            if pid == 0
            else "a process the kernel cannot identify"
        )
        peer.send(
            Error(
                code="protocol",
                message=f"the socket of service {self.name} accepts only the process the "
                f"daemon spawned for it (or its descendants), and {who} is not one of them",
            )
        )
        await peer.close()
        self.log(f"refused a connection from {who}: not the service's process", "warning", pid=pid)

    async def _spawn(self, path: Path) -> None:
        scopes = frozenset(self._granted())
        token = self.kernel.tokens.issue(service_principal(self.name, scopes))
        env = {
            **{k: v for k, v in self.kernel.config.environ().items() if k not in SECRET_VARIABLES},
            "AOS_SERVICE_SOCKET": str(self.socket_path),
            "AOS_SKILL": self.name,
            "AOS_TOKEN": token,
            "AOS_SOCKET": str(self.supervisor.agent_socket),
            "AOS_STATE_DIR": str(self.kernel.config.paths.state_dir),  # a service's own state
        }
        try:
            self._process = await asyncio.create_subprocess_exec(
                *command_for(path),
                cwd=self.skill.path,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            self.state = "failed"
            raise ServiceError(f"cannot start {path}: {exc.strerror}") from None
        self.pid = self._process.pid
        self.stderr_tail.clear()

    async def _read_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        async for raw in self._process.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line:
                self.stderr_tail.append(line)
                # the node's log, as it comes: `aos logs --service NAME [-f]`
                logger.info("service %s: stderr: %s", self.name, line[:STDERR_LINE_CAP])

    async def _await_hello(self, ready: asyncio.Future[tuple[Peer, Hello]]) -> tuple[Peer, Hello]:
        """The service's checked hello, or ServiceError (exited, timed out, bad hello)."""
        assert self._process is not None
        exited = asyncio.ensure_future(self._process.wait())
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            done, _ = await asyncio.wait(
                [ready, exited, stopping],
                timeout=HELLO_TIMEOUT,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            exited.cancel()
            stopping.cancel()
        if ready in done:
            try:
                return ready.result()
            except ServiceError:
                self.state = "failed"
                raise
        if stopping in done:
            raise ServiceError("stopped before saying hello")
        self.state = "failed"
        if exited in done:
            await asyncio.sleep(0.05)  # let the last stderr lines arrive
            raise ServiceError(
                f"exited with code {self._process.returncode} before saying hello; "
                f"stderr: {' | '.join(self.stderr_tail)}"
            )
        raise ServiceError(f"did not say hello within {HELLO_TIMEOUT:g}s: killed")

    def _granted(self) -> list[str]:
        """The scopes the skill asks for that a service may hold."""
        asked = self.skill.manifest.scopes if self.skill.manifest else []
        return [s for s in asked if s in GRANTABLE_SCOPES]

    async def _terminate(self) -> int | None:
        peer, self._peer = self._peer, None  # hook calls from now on: "not running"
        process = self._process
        if self._unresponsive and process is not None and process.returncode is None:
            # A stopped process never handles SIGTERM; SIGKILL ends it, stopped or not.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        said_bye = peer is not None and self._stop.is_set()
        leaving = said_bye or (peer is not None and peer.bye is not None)
        if peer is not None:
            if said_bye:
                peer.send(Bye(reason="the daemon is stopping the service"))
            await peer.close("service stopping")
        if process is None:
            return None
        if leaving and process.returncode is None:  # a moment to exit on its own
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(EXIT_GRACE):
                    await process.wait()
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(3):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        return process.returncode

    async def stop(self, *, handover: bool = False) -> None:
        """Stop it; with ``handover`` (a new version starts next) its hooks stay,
        failing as their policy says, until the new one says hello."""
        self._handover = handover
        self._stop.set()
        if self.task is not None:
            await self.task
        elif not handover:  # taken on but never started: its placeholder goes
            self._unregister()
            self.state = "stopped"


class RemoteService(ServiceLink):
    """A service on another machine, attached over the WebSocket face with the
    token of its grant (aos/remotes.py). Nothing is spawned: it is ``disconnected``
    until it says hello, ``running`` while attached. Its remembered hooks are in
    place all along, failing as their policy says whenever it is not attached."""

    def __init__(self, supervisor: ServiceSupervisor, name: str) -> None:
        super().__init__(supervisor, name)
        self.state = "disconnected"
        self.settled.set()  # nothing to wait for: the node does not start it
        self.address: str | None = None
        """Where its connection comes from, while attached."""

    def declared(self) -> dict[str, HookSettings]:
        """The hooks its grant names: enforced before its first hello."""
        grant = self.kernel.remotes.get(self.name)
        return {hook: HookSettings() for hook in grant.hooks} if grant else {}

    def status(self) -> dict[str, Any]:
        return {
            **super().status(),
            "pid": None,
            "peer_pid": None,
            "socket": None,
            "remote": self.address or "",
        }

    async def serve(self, peer: Peer, hello: Hello, principal: Principal, address: str) -> None:
        """Serve an authenticated connection (its principal is this grant's) until it ends."""
        live = self._peer
        if live is not None and not live.closed.is_set():
            peer.send(Error(code="protocol", message=f"service {self.name} is already connected"))
            return
        try:
            self.check_hello(hello)
        except (ProtocolError, ServiceError) as exc:
            peer.send(Error(code="protocol", message=str(exc)))
            self.log(f"refused the hello from {address}: {exc}", "warning")
            return
        self.welcome(peer, principal)
        self.attach(peer, hello)
        self.address = address
        self._unresponsive = False
        self.log(f"running (remote, from {address})")
        watch = asyncio.get_running_loop().create_task(self._watch(peer, "closing its connection"))
        serving = asyncio.get_running_loop().create_task(peer.serve())
        try:
            await asyncio.wait([watch, serving], return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
            await peer.close("service detached")
            await asyncio.gather(serving, return_exceptions=True)
            if self._peer is peer:
                self.detach(peer.close_reason)

    def detach(self, why: str) -> None:
        """Its connection ended: its hooks stay, failing as their policy says."""
        self._peer = None
        self.address = None
        self.state = "disconnected"
        self.last_error = (
            f"did not answer a ping within {PING_DEADLINE:g}s" if self._unresponsive else why
        )
        self.log(
            f"disconnected ({self.last_error}); its gates fail as their policy says until it "
            "attaches again",
            "warning",
        )

    async def stop(self) -> None:
        """Its grant was revoked or replaced: cut its connection off."""
        live = self._peer
        if live is not None:
            live.send(Bye(reason="its grant was revoked or replaced"))
            await live.close("grant revoked")


class ServiceSupervisor:
    """Runs one :class:`Service` per active service skill, following the registry."""

    def __init__(self, kernel: Kernel, socket_dir: Path, agent_socket: Path) -> None:
        self.kernel = kernel
        self.socket_dir = socket_dir
        self.agent_socket = agent_socket
        self.services: dict[str, Service] = {}
        self._closing = False
        """Set by close: no service starts any more (a reload under way stops short)."""
        self._applying: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        """One change at a time per skill: a restart never overlaps a stop."""
        self.remembered = RememberedHooks(kernel.config.paths.state_dir / HOOKS_FILE)
        if self.remembered.problem:
            kernel.log(LogEntry(kind="service", level="warning", message=self.remembered.problem))
        # Every service's hooks are in place from now on, before any socket opens
        # and before its service says hello: see ServiceLink.guard.
        self.remote: dict[str, RemoteService] = {}
        """Remote services by name: one per grant (aos/remotes.py)."""
        if kernel.remotes.problem:
            kernel.log(LogEntry(kind="service", level="warning", message=kernel.remotes.problem))
        for grant in kernel.remotes.all():
            self._take_on_remote(grant.name)
        self._unsubscribe_grants = kernel.remotes.subscribe(self._on_grant)
        for skill in kernel.skills.active():
            if self.runs(skill):
                self._take_on(skill)
        self._unsubscribe = kernel.skills.subscribe(self._on_event)

    def status(self) -> list[dict[str, Any]]:
        return [s.status() for s in (*self.services.values(), *self.remote.values())]

    def _take_on_remote(self, name: str) -> None:
        service = self.remote[name] = RemoteService(self, name)
        service.guard()

    def _on_grant(self, change: Literal["granted", "revoked"], grant: RemoteGrant) -> None:
        current = self.remote.get(grant.name)
        if current is not None:  # its token is no longer valid: cut it off
            asyncio.get_running_loop().create_task(current.stop())
        if change == "granted" and current is None:
            self._take_on_remote(grant.name)
            self.remote[grant.name].log("granted: waiting for it to attach")
        elif change == "granted" and current is not None:
            current.guard()  # the hooks the new grant names, too
        elif change == "revoked" and current is not None:
            del self.remote[grant.name]
            current._unregister()
            with contextlib.suppress(OSError):
                self.remembered.forget(grant.name)
            current.log("revoked: its hooks are gone")

    def runs(self, skill: Skill) -> bool:
        """Whether a skill's service should run: every active service skill, except
        standard skills that are not among the system default skills (removing a
        standard skill from ``default_skills`` removes it entirely)."""
        if skill.status != "active" or skill.kind != "service" or skill.name in self.remote:
            return False  # a remote service's name is its own
        return skill.root != "standard" or skill.name in self.kernel.config.aoscb.default_skills

    def start_all(self) -> None:
        """Start the services taken on when the supervisor was made."""
        for service in self.services.values():
            if service.task is None:
                service.task = asyncio.get_running_loop().create_task(service.run())

    def _take_on(self, skill: Skill) -> Service:
        """A service for ``skill``, its expected hooks registered, not started yet."""
        service = Service(self, skill)
        self.services[skill.name] = service
        service.guard()
        return service

    def _start(self, skill: Skill) -> None:
        service = self._take_on(skill)
        service.task = asyncio.get_running_loop().create_task(service.run())

    def _on_event(self, event: SkillEvent) -> None:
        task = asyncio.get_running_loop().create_task(self._apply(event))
        self._applying.add(task)
        task.add_done_callback(self._applying.discard)

    async def _apply(self, event: SkillEvent) -> None:
        skill = event.skill
        async with self._locks.setdefault(skill.name, asyncio.Lock()):
            current = self.services.pop(skill.name, None)
            follows = event.kind != "removed" and self.runs(skill)
            if current is not None:
                await current.stop(handover=follows)
            if follows and not self._closing:
                self._start(skill)
            elif current is not None:  # gone for good: its hooks are no longer expected
                with contextlib.suppress(OSError):
                    self.remembered.forget(skill.name)

    async def call_method(
        self, skill: str, method: str, caller: dict[str, Any], params: dict[str, Any]
    ) -> Any:
        service = self.services.get(skill) or self.remote.get(skill)
        if service is None:
            raise SyscallError("unavailable", f"skill {skill!r} has no running service")
        return await service.call_method(method, caller, params)

    async def settle(self, skills: Iterable[str]) -> None:
        """Wait until the services of ``skills`` that are starting for the first
        time said hello or failed (at most the hello timeout): a dispatch must not
        run before a policy skill's hooks are in place."""
        starting = [
            s.settled.wait()
            for n in skills
            if (s := self.services.get(n)) and not s.settled.is_set()
        ]
        if starting:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HELLO_TIMEOUT + 1):
                    await asyncio.gather(*starting)

    async def restart(self, name: str) -> None:
        skill = self.kernel.skills.get(name)
        if skill is None:
            raise ServiceError(f"no skill named {name!r}")
        await self._apply(SkillEvent("changed", skill))

    async def close(self) -> None:
        self._closing = True
        self._unsubscribe()
        self._unsubscribe_grants()
        await asyncio.gather(*self._applying, return_exceptions=True)  # none starts a service now
        await asyncio.gather(
            *(s.stop() for s in (*self.services.values(), *self.remote.values())),
            return_exceptions=True,
        )
        self.services.clear()
