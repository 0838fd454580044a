"""aos-frontend's service face: serves the web UI (``app.py``) in this process.

``start`` reads the settings (the daemon's environment, else SKILL.md's
metadata), binds the listening socket itself (so a taken port is reported with
the process that holds it, and the service exits 2), makes sure the "default"
agent exists, and runs a ``uvicorn.Server`` in this service's event loop, beside
its kernel connection: every API request becomes a syscall over that
connection, as ``service:aos-frontend``.

Settings: ``AOS_FRONTEND_HOST`` (default 127.0.0.1), ``AOS_FRONTEND_PORT``
(default 3000), ``AOS_FRONTEND_TOKEN`` (required when the host is not a
loopback address). Every request must carry the access token, on loopback too:
without ``AOS_FRONTEND_TOKEN`` it is the node's own, generated at the first
start into ``frontend.token`` in the state directory (``AOS_STATE_DIR``, which
the supervisor sets) and reused (``access.py``). The admin learns the address
with its token from this service's ``address`` method (``aos status`` calls it);
the log line shows the address without it (service stderr reaches
``aos status``'s ``last_error``, which agents may read).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NoReturn

import uvicorn
from aos_sdk import SyscallFailed, define_service, syscall
from aos_sdk.service import MethodError, subscribe

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # app.py beside this file (also in a copy of the skill)
    sys.path.insert(0, str(HERE))

from access import TOKEN_VARIABLE, page_url, token_for  # noqa: E402
from app import TOPICS, Hub, Settings, create_app, is_loopback  # noqa: E402

SKILL = "aos-frontend"
DEFAULT_AGENT = "default"
"""Created at start when missing, as `aos run` and `aos chat` do on first use."""


class State:
    def __init__(self) -> None:
        self.server: uvicorn.Server | None = None
        self.task: asyncio.Task[None] | None = None
        self.hub: Hub | None = None
        self.settings: Settings | None = None


state = State()


def fail(*lines: str) -> NoReturn:
    for line in lines:
        print(line, file=sys.stderr)
    sys.stderr.flush()
    os._exit(2)  # at once: the kernel sees the exit code, not a hang-up first


def settings_from(metadata: dict[str, str], environ: dict[str, str] | os._Environ[str]) -> Settings:
    host = environ.get("AOS_FRONTEND_HOST") or metadata.get("host") or "127.0.0.1"
    raw_port = environ.get("AOS_FRONTEND_PORT") or metadata.get("port") or "3000"
    try:
        port = int(raw_port)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        fail(f"aos-frontend: AOS_FRONTEND_PORT={raw_port!r} is not a port number (1-65535)")
    if not is_loopback(host) and not environ.get(TOKEN_VARIABLE):
        fail(
            f"aos-frontend: AOS_FRONTEND_HOST={host} is not a loopback address: "
            f"serving on another interface needs an access token: set {TOKEN_VARIABLE} "
            "(or serve on 127.0.0.1)"
        )
    state_dir = environ.get("AOS_STATE_DIR")
    if not state_dir and not environ.get(TOKEN_VARIABLE):
        fail(
            "aos-frontend: AOS_STATE_DIR is not set, so there is nowhere to keep the UI's "
            f"access token: run the service under `aos up`, or set {TOKEN_VARIABLE}"
        )
    try:
        token = token_for(environ, Path(state_dir or "."))
    except OSError as exc:
        fail(f"aos-frontend: cannot keep the UI's access token in {state_dir}: {exc}")
    return Settings(host=host, port=port, token=token)


# -- who holds a port ---------------------------------------------------------------------------


def _proc_address(hex_address: str) -> str:
    """The address of a /proc/net/tcp{,6} ``local_address`` (without the port)."""
    raw = bytes.fromhex(hex_address)
    # each 32-bit word is in host (little-endian) order
    swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(swapped))


def _listening_inodes(host: str, port: int) -> list[str]:
    """Inodes of TCP sockets bound to ``port``: those on ``host`` or a wildcard first."""
    wanted: set[str] = set()
    with contextlib.suppress(OSError):
        wanted = {
            str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        }
    exact: list[str] = []
    others: list[str] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) != port or fields[9] == "0":
                continue
            try:
                ip = ipaddress.ip_address(_proc_address(address))
            except ValueError:
                continue
            mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
            bound = str(mapped or ip)
            listening = fields[3] == "0A"
            if listening and (ip.is_unspecified or bound in wanted):
                exact.append(fields[9])
            else:
                others.append(fields[9])
    return exact + others


def port_holder(host: str, port: int) -> str | None:
    """``"<pid> <command line>"`` of the process holding ``host:port``, if it can be seen."""
    inodes = _listening_inodes(host, port)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]": rank for rank, inode in enumerate(inodes)}
    best: tuple[int, str] | None = None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                rank = targets.get(os.readlink(fd))
            except OSError:
                continue
            if rank is None or (best is not None and best[0] <= rank):
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            command = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
            best = (rank, f"{proc.name} {command or '(' + proc.name + ')'}")
    return best[1] if best else None


def bind(settings: Settings) -> socket.socket:
    """The listening socket, or exit 2 saying why it cannot be had."""
    where = f"port {settings.port} on {settings.host}"
    try:
        infos = socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        fail(f"aos-frontend: cannot resolve AOS_FRONTEND_HOST={settings.host!r}: {exc}")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            holder = port_holder(settings.host, settings.port) or "another process"
            fail(
                f"aos-frontend: {where} is taken by {holder}",
                "aos-frontend: set AOS_FRONTEND_PORT to a free port, or stop that process",
            )
        fail(f"aos-frontend: cannot listen on {where}: {exc.strerror or exc}")
    sock.setblocking(False)
    return sock


# -- the service ----------------------------------------------------------------------------------


async def events() -> AsyncIterator[tuple[str, Any]]:
    async for event in subscribe(TOPICS):
        yield event.topic, event.data


async def ensure_default_agent() -> None:
    agents = await syscall("agent.list", {"status": "active"})
    if not any(a["name"] == DEFAULT_AGENT for a in agents):
        await syscall("agent.create", {"name": DEFAULT_AGENT})


def _server_ended(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    reason = f"{type(exc).__name__}: {exc}" if exc else "it stopped"
    print(f"aos-frontend: the web server ended ({reason}): restarting", file=sys.stderr)
    sys.stderr.flush()
    os._exit(1)  # the supervisor restarts the service


async def start() -> None:
    try:
        metadata = (await syscall("skill.get", {"name": SKILL})).get("metadata") or {}
    except SyscallFailed:
        metadata = {}
    settings = settings_from(metadata, os.environ)
    sock = bind(settings)
    await ensure_default_agent()
    hub = Hub(events)
    hub.start()
    config = uvicorn.Config(
        create_app(settings, syscall, hub),
        log_level="warning",
        access_log=False,
        lifespan="off",
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    task.add_done_callback(_server_ended)
    state.server, state.task, state.hub, state.settings = server, task, hub, settings
    # without the token: this line reaches `last_error`, which agents may read
    print(
        f"aos-frontend: serving {settings.url} (`aos status` shows it with its token)",
        file=sys.stderr,
    )


def address(caller: dict[str, Any], params: dict[str, Any]) -> dict[str, str]:
    """The UI's address with its token, for the node's admin only (``aos status``)."""
    if caller.get("kind") != "admin":
        raise MethodError(
            "denied",
            f"only the node's admin learns the UI's address with its token, not "
            f"{caller.get('principal', 'this caller')}",
        )
    settings = state.settings
    if settings is None:
        raise MethodError("unavailable", "the UI is still starting: try again in a moment")
    return {"url": page_url(settings.host, settings.port, settings.token), "plain": settings.url}


@define_service
def service() -> dict[str, Any]:
    return {"hooks": {}, "start": start, "methods": {"address": address}}
