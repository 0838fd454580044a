"""The agents' sandbox: where every bash command runs, and what the node says of it.

Every agent command runs inside a bubblewrap sandbox (one per workspace and
network setting, kept while it is used, so a command's start costs no more than
an unsandboxed one). What exists in it (docs/specs/aos-security.md):

- the system read-only (``/usr``, ``/etc``, ``/opt`` and the like), the Python
  the kernel runs on and the packages of AgentOS, and the skill roots
  read-only (their ``scripts/`` are on the agent's PATH);
- the agent's workspace, writable, as the working directory (and ``HOME``);
- a private ``/tmp``, ``/dev`` and ``/proc`` (its own PID namespace: no
  process of the node is visible or signalable);
- ``agent.sock``, the agent's one door to the kernel.

Nothing else of the node: no control socket, database, node home (state, key,
logs), other workspaces, service sockets, ``/home``, ``/root`` or ``/run``.
Network (``network``): ``on`` (the default) is the internet without the node:
the sandbox's own network namespace, connected out through ``pasta`` (passt),
in which the host's loopback (the web UI, a database, every local service) does
not exist; without pasta on the host it is the host's network, and the node
says so. ``none`` is no network at all; ``host`` (the admin's choice) is the
host's network, the node's own ports included. As root, every
capability is dropped.

:func:`probe` says at start what the host supports; :class:`Sandboxes` gives
each command its spawner (sandboxed or not, per the ``sandbox`` setting).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import msgspec

from aos.processes import descends_from, in_other_pid_namespace
from aos.spawner import Spawner

SandboxMode = Literal["auto", "required", "off"]
Network = Literal["on", "none", "host"]
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
"""Read-only in every sandbox (those that exist on the host)."""
IDLE_AFTER = 60.0
"""Seconds a sandbox with no running command is kept before it is closed."""
RECHECK = 1.0
"""Seconds between two looks at a workspace's directory (made anew?) and at idle sandboxes."""
PROBE_TIMEOUT = 10.0
PIDFILE_WAIT = 2.0
"""Seconds pasta has to write its pid file once its starting process exited."""
INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)"
)


class SandboxUnavailable(Exception):
    """An agent must run sandboxed and this node cannot build a sandbox."""


class Isolation(msgspec.Struct, kw_only=True):
    """What protects the agents' commands on this node (``aos doctor``, ``kernel.status``)."""

    mode: SandboxMode
    """The node's ``sandbox`` setting."""
    available: bool
    """Whether this host can build the sandbox (bubblewrap found and working)."""
    sandboxed: bool
    """Whether agent commands run sandboxed (an admin may turn it off per agent)."""
    bwrap: str | None
    """The bubblewrap found on PATH."""
    detail: str
    """One sentence: what is in force."""
    problem: str
    """Why no sandbox can be built, and what to do ("" when one can)."""
    warning: str
    """What ``aos up``, ``aos start`` and ``aos run`` warn of ("" when nothing)."""
    pasta: str | None = None
    """The pasta (passt) found on PATH: it connects ``network: on`` sandboxes."""
    network: str = ""
    """What ``network: on`` means here, in one sentence."""
    user_namespaces: str
    """What the host allows: "not needed (root)", "allowed", or why they are denied."""


def probe(mode: SandboxMode, path: str | None = None) -> Isolation:
    """Check for real whether a sandbox can be built here (runs bubblewrap once)."""
    bwrap = shutil.which("bwrap", path=path if path is not None else os.environ.get("PATH"))
    userns = _user_namespaces()
    problem = _problem(bwrap, userns)
    available = not problem
    if mode == "off":
        detail = "sandbox: off: agent commands run unsandboxed, as the daemon's own user"
    elif available:
        detail = f"every agent command runs in a bubblewrap sandbox ({bwrap})"
    elif mode == "required":
        detail = f"sandbox: required and no sandbox can be built: dispatches are refused: {problem}"
    else:
        detail = f"agent commands run UNSANDBOXED: {problem}"
    pasta = shutil.which("pasta", path=path if path is not None else os.environ.get("PATH"))
    pasta_problem = (
        "install passt (apt-get install passt) to keep them out"
        if pasta is None
        else _pasta_works(bwrap, pasta)
        if available
        else "no sandbox"
    )
    return Isolation(
        pasta=None if pasta_problem else pasta,
        network=(
            f"network: on is the internet without the node's own ports ({pasta})"
            if not pasta_problem
            else f"network: on is the host's network, the node's loopback ports included: "
            f"{pasta_problem}"
        ),
        mode=mode,
        available=available,
        sandboxed=available and mode != "off",
        bwrap=bwrap,
        detail=detail,
        problem=problem,
        warning=f"{detail} (set sandbox: off to run unsandboxed knowingly)"
        if mode == "auto" and not available
        else detail
        if mode == "required" and not available
        else "",
        user_namespaces=userns,
    )


PASTA_TRIES = 3
"""Tries of pasta on a throwaway sandbox before the node concludes it cannot
connect sandboxes: a failure that passes (a loaded machine) must not give every
``network: on`` agent the host's network, the node's own ports included."""


@functools.cache
def _pasta_works(bwrap: str, pasta: str) -> str:
    """Why pasta cannot connect a sandbox's network here, every try failing ("" when
    one succeeds); found once per process."""
    problem = ""
    for _ in range(PASTA_TRIES):
        problem = _pasta_problem(bwrap, pasta)
        if not problem:
            return ""
    return problem


def _pasta_pid(pidfile: Path) -> int:
    """The pid pasta writes once in the background: its starting process may exit
    a moment before the file holds it (ValueError when it never does)."""
    deadline = time.monotonic() + PIDFILE_WAIT
    while True:
        with contextlib.suppress(FileNotFoundError, ValueError):
            return int(pidfile.read_text())
        if time.monotonic() > deadline:
            raise ValueError(f"pasta wrote no pid to {pidfile}")
        time.sleep(0.01)


def _pasta_problem(bwrap: str, pasta: str) -> str:
    """Why pasta could not connect a throwaway sandbox's network ("" when it did)."""
    info_r, info_w = os.pipe()
    argv = [bwrap, *_isolation_flags("on", own_network=True), "--ro-bind", "/", "/"]
    argv += ["--proc", "/proc", "--dev", "/dev", "--info-fd", str(info_w), "--", "sleep", "30"]
    with tempfile.TemporaryDirectory(prefix="aos-probe-") as tmp:
        pidfile = Path(tmp) / "pasta.pid"
        try:
            sandbox = subprocess.Popen(
                argv, pass_fds=[info_w], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        except OSError as exc:
            os.close(info_r)
            return f"cannot start bubblewrap: {exc}"
        finally:
            os.close(info_w)
        pid = 0
        try:
            with os.fdopen(info_r, "rb") as info:
                pid = _child_pid(info)
            ran = subprocess.run(
                pasta_argv(pasta, pid, pidfile), capture_output=True, timeout=PROBE_TIMEOUT
            )
            if ran.returncode != 0:
                said = [
                    x for x in ran.stderr.decode(errors="replace").splitlines() if "syslog" not in x
                ]
                return (
                    f"pasta cannot join this host's sandboxes ({' '.join(said) or ran.returncode})"
                )
            os.kill(_pasta_pid(pidfile), signal.SIGTERM)
            return ""
        except (OSError, ValueError, KeyError, subprocess.TimeoutExpired) as exc:
            return f"pasta cannot join this host's sandboxes ({exc})"
        finally:  # its first process first: bubblewrap then reaps it and exits
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL) if pid else sandbox.kill()
            try:
                sandbox.wait(timeout=PROBE_TIMEOUT)
            except subprocess.TimeoutExpired:
                sandbox.kill()
                sandbox.wait()


def _child_pid(info: BinaryIO) -> int:
    """The ``child-pid`` of the JSON bubblewrap writes on its info fd (line by
    line: the fd may stay open)."""
    data = b""
    while line := info.readline():
        data += line
        with contextlib.suppress(ValueError):
            return int(json.loads(data)["child-pid"])
    raise ValueError("bubblewrap exited before it started the sandbox")


def pasta_argv(pasta: str, pid: int, pidfile: Path) -> list[str]:
    """pasta connecting the network namespace of sandbox process ``pid`` to the
    internet: no port of the host forwarded in, and the gateway not the host
    (``--no-map-gw``), so the host's loopback does not exist in there."""
    argv = [pasta, "--config-net", "--no-map-gw", "--quiet"]
    argv += ["-t", "none", "-u", "none", "-T", "none", "-U", "none", "--pid", str(pidfile)]
    if os.geteuid() == 0:  # it must stay root to enter the namespace (it drops its caps)
        return [*argv, "--runas", "0", "--netns", f"/proc/{pid}/ns/net", "--netns-only"]
    return [*argv, str(pid)]  # rootless: it joins the sandbox's user namespace, then its network


def _problem(bwrap: str | None, userns: str) -> str:
    """Why bubblewrap cannot build a sandbox here ("" when it can)."""
    if bwrap is None:
        return f"bubblewrap (bwrap) is not on PATH: {INSTALL_HINT}"
    argv = [bwrap, *_isolation_flags("on"), "--ro-bind", "/", "/", "--proc", "/proc"]
    argv += ["--dev", "/dev", "--", "true"]
    try:
        ran = subprocess.run(argv, capture_output=True, timeout=PROBE_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        failure = str(exc)
    else:
        if ran.returncode == 0:
            return ""
        failure = ran.stderr.decode(errors="replace").strip() or f"exit {ran.returncode}"
    return f"bubblewrap cannot build a sandbox here ({failure}): {_userns_hint(userns)}"


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _user_namespaces() -> str:
    if os.geteuid() == 0:
        return "not needed (root)"
    if _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
        return "restricted by AppArmor (kernel.apparmor_restrict_unprivileged_userns=1)"
    if _read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
        return "disabled (kernel.unprivileged_userns_clone=0)"
    if _read("/proc/sys/user/max_user_namespaces") == "0":
        return "disabled (user.max_user_namespaces=0)"
    return "allowed"


def _userns_hint(userns: str) -> str:
    if userns.startswith("restricted by AppArmor"):
        return (
            "this host's AppArmor forbids unprivileged user namespaces: give bwrap an AppArmor "
            "profile that allows them (or sysctl kernel.apparmor_restrict_unprivileged_userns=0)"
        )
    if userns.startswith("disabled"):
        setting = userns[userns.index("(") + 1 : userns.index("=")]
        return f"user namespaces are disabled: enable them (sysctl {setting}=...) "
    return (
        "in a container, allow user namespaces (e.g. docker run --security-opt "
        "seccomp=unconfined) or run the daemon as root; or set sandbox: off to run unsandboxed"
    )


def _isolation_flags(network: Network, own_network: bool = False) -> list[str]:
    flags = ["--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc"]
    flags += ["--unshare-uts", "--unshare-cgroup-try"]
    if network == "none" or (network == "on" and own_network):
        flags.append("--unshare-net")
    if os.geteuid() == 0:  # root's capabilities would undo every wall
        flags += ["--cap-drop", "ALL"]
    return flags


@dataclass(frozen=True)
class Layout:
    """What a node's sandboxes are built from."""

    readable: tuple[str, ...]
    """Host directories bound read-only (system, Python, AgentOS, skill roots)."""
    links: tuple[tuple[str, str], ...]
    """Top-level symlinks of the system (``/bin -> usr/bin``), made again inside."""
    hidden: tuple[str, ...]
    """The node's own directories: never visible, even under a readable directory
    or the workspace."""
    roots: tuple[str, ...]
    """Every skill root, present or not: read-only wherever it shows (a root an
    agent could create in its workspace would install a skill at the next start)."""
    hidden_files: tuple[str, ...]
    """Files never readable there either (the ``.env`` that holds the node's keys):
    an empty one takes their place."""
    frozen_files: tuple[str, ...]
    """Files readable but never writable there (the node's aoscb.json: rewritten,
    it would turn the sandbox off, or give every agent a prompt, at the next start)."""
    agent_socket: str | None

    @classmethod
    def of(
        cls,
        *,
        readable: Iterable[Path],
        hidden: Iterable[Path],
        agent_socket: Path | None,
        hidden_files: Iterable[Path] = (),
        frozen_files: Iterable[Path] = (),
    ) -> Layout:
        python = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
        python.add(str(Path(sys.executable).resolve().parent.parent))
        system = [d for d in SYSTEM_DIRS if os.path.isdir(d)]
        links = tuple((d, os.readlink(d)) for d in system if os.path.islink(d))
        wanted = [d for d in system if not os.path.islink(d)]
        wanted += [*sorted(python), *_package_dirs(), *map(str, readable)]
        return cls(
            readable=_outermost(os.path.realpath(p) for p in wanted if os.path.isdir(p)),
            roots=tuple(sorted({os.path.realpath(p) for p in readable})),
            links=links,
            hidden=tuple(sorted({os.path.realpath(p) for p in hidden})),
            hidden_files=tuple(sorted({os.path.realpath(p) for p in hidden_files})),
            frozen_files=tuple(sorted({os.path.realpath(p) for p in frozen_files})),
            agent_socket=str(agent_socket) if agent_socket else None,
        )

    def make_roots_in(self, workspace: str) -> None:
        """Create the skill roots missing inside ``workspace``, so that they can be
        read-only in its sandbox (an empty skill root is no skill)."""
        for root in self.roots:
            if _within(root, (workspace,)):
                with contextlib.suppress(OSError):
                    os.makedirs(root, exist_ok=True)

    def argv(
        self, bwrap: str, workspace: str, network: Network, *, own_network: bool = False
    ) -> list[str]:
        """The bubblewrap command line of the sandbox of one workspace (ends with
        ``--``). Mounts go parents first, so a hidden node directory (or file)
        under a readable one or the workspace is covered, and a workspace under a
        hidden one shows."""
        mounts: list[tuple[str, list[str]]] = [(p, ["--ro-bind", p, p]) for p in self.readable]
        shown = (*self.readable, workspace)
        mounts += [
            (p, ["--ro-bind", p, p])
            for p in self.roots
            if _within(p, (workspace,)) and not _within(p, self.readable) and os.path.isdir(p)
        ]
        mounts += [(p, ["--tmpfs", p]) for p in self.hidden if _within(p, shown)]
        mounts += [
            (p, ["--ro-bind", "/dev/null", p]) for p in self.hidden_files if _within(p, shown)
        ]
        mounts += [
            (p, ["--ro-bind", p, p])
            for p in self.frozen_files
            if _within(p, (workspace,)) and os.path.isfile(p)
        ]
        mounts.append((workspace, ["--bind", workspace, workspace]))
        if self.agent_socket:
            mounts.append((self.agent_socket, ["--bind", self.agent_socket, self.agent_socket]))
        mounts.sort(key=lambda mount: Path(mount[0]).parts)
        argv = [bwrap, *_isolation_flags(network, own_network)]
        for path, target in self.links:
            argv += ["--symlink", target, path]
        argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for _, mount in mounts:
            argv += mount
        argv += ["--chdir", workspace, "--"]
        return argv


def _package_dirs() -> list[str]:
    """Where AgentOS's own packages are (found, not imported: the kernel never
    imports a standard skill)."""
    dirs = []
    for name in ("aos", "aos_sdk", "aos_stdskills"):
        spec = importlib.util.find_spec(name)
        dirs += list(spec.submodule_search_locations or []) if spec else []
    return dirs


def _within(path: str, dirs: Iterable[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def _outermost(paths: Iterable[str]) -> tuple[str, ...]:
    """The paths, without those inside another (a bind of the outer one has them)."""
    kept: list[str] = []
    for path in sorted(set(paths)):
        if not _within(path, kept):
            kept.append(path)
    return tuple(kept)


def _end_stale_pasta(pasta_dir: Path) -> None:
    """End the pasta processes a killed daemon left (their sandboxes died with it)."""
    for pidfile in pasta_dir.glob("*.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text())
            if Path(f"/proc/{pid}/comm").read_text().startswith(("pasta", "passt")):
                os.kill(pid, signal.SIGTERM)
        pidfile.unlink(missing_ok=True)


def _inode(path: str) -> tuple[int, int] | None:
    try:
        where = os.stat(path)
    except OSError:
        return None  # it cannot start: the spawner says so
    return (where.st_dev, where.st_ino)


class Sandboxes:
    """The node's command spawners: one per sandbox (workspace and network), or
    one unsandboxed spawner for the commands that run without a sandbox."""

    def __init__(self, isolation: Isolation, layout: Callable[[], Layout], pasta_dir: Path) -> None:
        self.isolation = isolation
        self._layout = layout
        self.pasta_dir = pasta_dir
        """pasta's pid files (in the node's run dir): what a killed daemon left is
        ended by the next one."""
        _end_stale_pasta(pasta_dir)
        self.layout: Layout | None = None
        """Built on the first sandboxed command (the node's sockets exist by then)."""
        self.plain = Spawner()
        """The unsandboxed spawner (``sandbox: off``, or no sandbox possible)."""
        self._boxes: dict[tuple[str, Network], tuple[Spawner, tuple[int, int] | None, float]] = {}
        """Each sandbox's spawner, the workspace directory it was built on, and when
        that was last checked."""
        self._swept = 0.0
        self._retiring: list[Spawner] = []
        """Sandboxes of a workspace made anew since: closed once idle."""
        self._closing: set[asyncio.Task[None]] = set()

    def wanted(self, mode: SandboxMode) -> bool:
        """Whether an agent whose ``sandbox`` setting is ``mode`` runs sandboxed here;
        raises :class:`SandboxUnavailable` when it must and cannot."""
        if mode == "off":
            return False
        if self.isolation.available:
            return True
        if mode == "required":
            raise SandboxUnavailable(
                f"this agent requires a sandbox (sandbox: required) and none can be built on "
                f"this node: {self.isolation.problem}"
            )
        return False

    def spawner_for(
        self, workspace: str, network: Network = "on", *, sandboxed: bool | None = None
    ) -> Spawner:
        """The spawner that runs a command of this workspace, kept while it is used
        (``sandboxed``: as :meth:`wanted` decided; None: as the node does)."""
        if sandboxed is None:
            sandboxed = self.isolation.sandboxed
        if not sandboxed:
            return self.plain
        assert self.isolation.bwrap is not None, "wanted() said no sandbox can be built"
        if self.layout is None:
            self.layout = self._layout()
        now = time.monotonic()
        key = (workspace, network)
        box = self._boxes.get(key)
        if box is None or now - box[2] > RECHECK:
            if now - self._swept > RECHECK:
                self._swept = now
                self._close_idle(now)
                box = self._boxes.get(key)  # it may have been idle: closed now
            inode = _inode(workspace)
            if box is not None and box[1] != inode:  # the directory was made anew
                self._retiring.append(box[0])  # its commands finish in the old one
                box = None
            spawner = box[0] if box is not None else None
            if spawner is None:
                self.layout.make_roots_in(workspace)
                own = network == "on" and self.isolation.pasta is not None
                spawner = Spawner(
                    self.layout.argv(self.isolation.bwrap, workspace, network, own_network=own),
                    attach=self._connect if own else None,
                )
            box = self._boxes[key] = (spawner, inode, now)
        return box[0]

    async def _connect(self, pid: int) -> Callable[[], None]:
        """Connect the network namespace of the sandbox whose first process is
        ``pid`` to the internet with pasta (:func:`pasta_argv`). Returns what ends
        it (with the sandbox)."""
        assert self.isolation.pasta is not None
        self.pasta_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        pidfile = self.pasta_dir / f"{pid}.pid"
        process = await asyncio.create_subprocess_exec(
            *pasta_argv(self.isolation.pasta, pid, pidfile),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                _, said = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise OSError(f"pasta did not set it up within {PROBE_TIMEOUT:g} s") from None
        if process.returncode != 0:
            lines = [x for x in said.decode(errors="replace").splitlines() if "syslog" not in x]
            raise OSError(f"pasta exited {process.returncode}: {' '.join(lines) or 'no reason'}")
        pasta = await asyncio.to_thread(_pasta_pid, pidfile)

        def end() -> None:
            with contextlib.suppress(OSError):
                os.kill(pasta, signal.SIGTERM)
            pidfile.unlink(missing_ok=True)

        return end

    def _spawners(self) -> list[Spawner]:
        return [self.plain, *(box[0] for box in self._boxes.values()), *self._retiring]

    def pids(self) -> frozenset[int]:
        """Every running spawner's pid on the host: agent commands descend from one."""
        return frozenset(s.pid for s in self._spawners() if s.pid is not None)

    def started_by_agent(self, pid: int) -> bool:
        """Whether process ``pid`` is an agent's command or descends from one: in a
        sandbox (another PID namespace), below a spawner (whose session the commands
        share, and which reaps what they leave), or in a running command's group."""
        if in_other_pid_namespace(pid):
            return True
        spawners = self._spawners()
        return descends_from(
            pid,
            frozenset(s.pid for s in spawners if s.pid is not None),
            frozenset(g for s in spawners for g in s.groups()),
        )

    def _close_idle(self, now: float) -> None:
        idle = [s for s in self._retiring if not s.busy]
        for key, (spawner, _, _) in list(self._boxes.items()):
            if not spawner.busy and now - spawner.last_used > IDLE_AFTER:
                del self._boxes[key]
                idle.append(spawner)
        self._retiring = [s for s in self._retiring if s.busy]
        for spawner in idle:
            task = asyncio.get_running_loop().create_task(spawner.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        spawners = self._spawners()
        self._boxes.clear()
        self._retiring.clear()
        await asyncio.gather(*(s.aclose() for s in spawners), *self._closing)
