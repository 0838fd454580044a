"""``aos up``, ``start``, ``stop``, ``status``, ``logs``: the daemon's life."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from aos.cli._app import Context, cli, pass_context
from aos.cli.output import (
    CLIError,
    ExitCode,
    emit_json,
    json_option,
    warn_isolation,
)
from aos.cli.syscall import call, no_daemon
from aos.config import Config, mask_url
from aos.daemon import Daemon, DaemonError, DaemonPaths, alive, read_pid, setup_logging
from aos.llm import LLMSettings, missing_configuration
from aos.store import StoreError


def model_report(config: Config) -> dict[str, Any]:
    """Which model dispatches use and where it was set, the model server, whether
    its key is set (never the key itself) and what is missing, if anything."""
    settings = LLMSettings.from_env(config.getenv)
    problem = missing_configuration(config.aoscb.model, settings)
    return {
        "model": config.aoscb.model,
        "source": config.sources["model"],
        "base_url": mask_url(settings.base_url),
        "key_variable": settings.key_variable,
        "key_set": settings.api_key is not None,
        "problem": problem.message if problem is not None else None,
    }


def model_line(config: Config) -> str:
    """Which model dispatches will use, or what to set."""
    model = model_report(config)
    if model["problem"] is not None:
        return f"dispatch is not ready: {model['problem']}"
    return f"model {model['model']} ({model['source']}) at {model['base_url']}"


UI_SKILL = "aos-frontend"
"""The standard skill whose service serves the web UI."""
UP_UI_WAIT = 30.0
"""Seconds `aos up` waits for the web UI to answer before it prints its address."""
UI_FIX = (
    "set AOS_FRONTEND_PORT to a free port (in .env or the environment) and restart the "
    "daemon, or stop the program holding it and run `aos skill reload aos-frontend`"
)
"""What to do when the web UI's port is taken."""


def ui_host_port(config: Config) -> tuple[str, str]:
    """Where the web UI listens: ``AOS_FRONTEND_HOST`` and ``AOS_FRONTEND_PORT``."""
    env = config.environ()
    return env.get("AOS_FRONTEND_HOST") or "127.0.0.1", env.get("AOS_FRONTEND_PORT") or "3000"


def ui_port_taken(config: Config) -> bool:
    """Whether another program already listens on the web UI's port (the UI's
    service reports any other problem with its settings itself)."""
    host, port = ui_host_port(config)
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except (OSError, ValueError):
        return False
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe_socket:
        probe_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the UI binds
        try:
            probe_socket.bind(address)
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


async def service_ui_address(config: Config) -> str | None:
    """The running UI's address with its token, from the service itself (admin
    only): the CLI never reads the UI's token file, which is the skill's own."""
    try:
        found = await call(
            config, "skill.call", {"skill": UI_SKILL, "method": "address"}, in_process=False
        )
    except click.ClickException:
        return None
    return found.get("url") if isinstance(found, dict) else None


@cli.command()
@click.option("--quiet", is_flag=True, help="Log to the log file only (used by `aos start`).")
@json_option
@pass_context
def up(ctx: Context, quiet: bool, as_json: bool) -> None:
    """Run the daemon in the foreground (Ctrl-C or SIGTERM stops it cleanly).

    With --json, one object says where it listens and logs, and the web UI's
    address, once it serves (and its log lines go to the log file only).

    \b
    Example:
      aos up
    """
    config = ctx.config
    paths = DaemonPaths.of(config)
    setup_logging(paths.log_file, foreground=not (quiet or as_json))
    ui_problem = None
    if UI_SKILL in config.aoscb.default_skills and ui_port_taken(config):
        host, port = ui_host_port(config)
        ui_problem = f"the web UI cannot start: port {port} on {host} is taken: {UI_FIX}"
    if not (quiet or as_json):
        click.echo(f"aos: starting; control socket {paths.control_socket}, log {paths.log_file}")
        click.echo(f"aos: {model_line(config)}")
        if ui_problem:
            click.echo(f"aos: {ui_problem}")

    async def serve() -> None:
        task = await Daemon(config).start()
        if not quiet:
            _, ui = await settled(
                config, UP_UI_WAIT, lambda: "the daemon stopped" if task.done() else None
            )
            if as_json:
                emit_json(
                    {
                        "socket": str(paths.control_socket),
                        "log": str(paths.log_file),
                        "model": model_report(config),
                        "ui": ui,
                        "ui_problem": ui_problem,
                    }
                )
            elif ui:
                click.echo(f"aos: UI at {ui}")
        await task

    try:
        asyncio.run(serve())
    except StoreError as exc:
        raise CLIError(str(exc), code="unavailable", exit_code=ExitCode.UNAVAILABLE) from None
    except DaemonError as exc:
        raise CLIError(str(exc)) from None


async def settled(
    config: Config, seconds: float, exited: Callable[[], str | None]
) -> tuple[dict[str, Any] | None, str | None]:
    """The daemon's status once its services settled, and the web UI's address
    once it answers (when it serves one), within ``seconds``; ``exited()`` says
    why the daemon is gone, if it is (then a CLI error says so)."""
    paths = DaemonPaths.of(config)
    deadline = time.monotonic() + seconds
    status: dict[str, Any] | None = None
    ui: str | None = None
    while time.monotonic() < deadline:
        if (why := exited()) is not None:
            raise CLIError(why, code="unavailable", exit_code=ExitCode.UNAVAILABLE)
        try:
            status = await call(config, "kernel.status", in_process=False)
        except click.ClickException:
            status = None
        if status is not None and _services_settled(status, paths):
            if not _serves_ui(status):
                break
            ui = await service_ui_address(config)  # once it listens, not at its hello
            if ui is not None:
                break
        await asyncio.sleep(0.1)
    return status, ui


@cli.command()
@click.option(
    "--timeout", default=30.0, show_default=True, help="Seconds to wait for it to be ready."
)
@json_option
@pass_context
def start(ctx: Context, timeout: float, as_json: bool) -> None:
    """Start the daemon in the background; print its pid, socket and log.

    \b
    Example:
      aos start --json
    """
    config = ctx.config
    paths = DaemonPaths.of(config)
    pid = read_pid(paths.pidfile)
    if pid is not None:
        raise CLIError(
            f"a daemon is already running (pid {pid}, socket {paths.control_socket}): "
            "`aos status` shows it, `aos stop` stops it",
            code="conflict",
        )
    paths.log_file.parent.mkdir(parents=True, exist_ok=True)
    flags = [
        arg
        for key, flag in (("home", "--home"), ("config", "--config"), ("db_url", "--db-url"))
        if ctx.flags.get(key)
        for arg in (flag, str(ctx.flags[key]))
    ]
    with paths.log_file.open("ab") as log:
        log_start = log.tell()
        process = subprocess.Popen(
            [sys.executable, "-m", "aos", *flags, "up", "--quiet"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    status, ui = asyncio.run(
        settled(
            config,
            timeout,
            lambda: (
                None
                if process.poll() is None
                else _why_it_exited(paths.log_file, log_start, process.returncode)
            ),
        )
    )
    if status is None:
        raise CLIError(
            f"the daemon (pid {process.pid}) was not ready after {timeout:g}s: "
            f"see {paths.log_file}",
            code="unavailable",
            exit_code=ExitCode.UNAVAILABLE,
        )
    problems = [
        f"service {s['skill']} {_service_problem(s, timeout)}"
        for s in status["services"]
        if s["state"] != "running" or (s["skill"] == UI_SKILL and ui is None)
    ]
    if as_json and not problems:
        emit_json(
            {
                "pid": status["pid"],
                "socket": str(paths.control_socket),
                "log": str(paths.log_file),
                "ui": ui,
                "isolation": status["isolation"],
            }
        )
    elif not as_json:
        click.echo(f"started: pid {status['pid']}")
        click.echo(f"socket:  {paths.control_socket}")
        click.echo(f"log:     {paths.log_file}")
        warn_isolation(status["isolation"])
        if ui is not None:
            click.echo(f"ui:      {ui}")
    if problems:
        raise CLIError("; ".join(problems), code="unavailable", exit_code=ExitCode.UNAVAILABLE)


def _why_it_exited(log_file: Path, start: int, code: int) -> str:
    """Why the daemon ``aos start`` spawned exited: the error it printed (``Error:
    ...``, one sentence), else the last lines it logged."""
    with log_file.open("rb") as log:
        log.seek(start)
        lines = log.read().decode(errors="replace").splitlines()
    errors = [line.removeprefix("Error: ") for line in lines if line.startswith("Error: ")]
    if errors:
        return f"the daemon could not start: {errors[-1]}"
    return (
        f"the daemon exited with code {code} while starting; last lines of {log_file}:\n  "
        + "\n  ".join(lines[-5:])
    )


def _serves_ui(status: dict[str, Any]) -> bool:
    return any(s["skill"] == UI_SKILL and s["state"] == "running" for s in status["services"])


def _services_settled(status: dict[str, Any], paths: DaemonPaths) -> bool:
    """Whether the daemon has started its services (it writes its pidfile then) and
    each is running or has failed."""
    return read_pid(paths.pidfile) == status["pid"] and all(
        s["state"] != "starting" for s in status["services"]
    )


def _service_problem(service: dict[str, Any], timeout: float) -> str:
    """Why a service is not running, with the fix, as the end of one sentence."""
    if service["state"] in ("starting", "running"):
        return f"was still starting after {timeout:g}s: `aos status` shows it"
    fix = (
        UI_FIX
        if service["skill"] == UI_SKILL
        else f"`aos logs` shows why; after fixing it, `aos skill reload {service['skill']}`"
    )
    return f"failed ({service['last_error'] or service['state']}): {fix}"


@cli.command()
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for it to exit.")
@json_option
@pass_context
def stop(ctx: Context, timeout: float, as_json: bool) -> None:
    """Stop the running daemon cleanly.

    \b
    Example:
      aos stop
    """
    paths = DaemonPaths.of(ctx.config)
    pid = read_pid(paths.pidfile)
    try:
        asyncio.run(call(ctx.config, "kernel.shutdown", {"reason": "aos stop"}, in_process=False))
    except click.ClickException:
        if pid is None:
            raise no_daemon(paths) from None
        os.kill(pid, signal.SIGTERM)  # the socket is gone but the process is not
    deadline = time.monotonic() + timeout
    while pid is not None and alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid is not None and alive(pid):
        raise CLIError(f"the daemon (pid {pid}) did not stop within {timeout:g}s")
    if as_json:
        emit_json({"stopped": True, "pid": pid})
    else:
        click.echo(f"stopped{f' (pid {pid})' if pid else ''}")


def echo_cluster(cluster: dict[str, Any], this: str) -> None:
    """The nodes on the database: one line each (``aos status``)."""
    if not cluster["shared"]:
        click.echo("cluster: one node (SQLite serves one; PostgreSQL runs several)")
        return
    alive = sum(n["alive"] for n in cluster["nodes"])
    click.echo(
        f"cluster: {alive} of {len(cluster['nodes'])} nodes alive on PostgreSQL "
        f"(node TTL {cluster['node_ttl']:g} s)"
    )
    for node in cluster["nodes"]:
        services = ", ".join(f"{s['skill']} {s['state']}" for s in node["services"]) or "none"
        labels = f", labels {','.join(node['labels'])}" if node["labels"] else ""
        click.echo(
            f"node {node['id']}{' (this one)' if node['id'] == this else ''}: {node['state']}"
            f"{'' if node['alive'] else ' (not alive)'}, heartbeat {node['heartbeat_age']:.1f}s "
            f"ago{labels}, {len(node['sessions'])} running sessions, services: {services}"
        )


@cli.command()
@json_option
@pass_context
def status(ctx: Context, as_json: bool) -> None:
    """Is the daemon running: pid, uptime, database, skills, services.

    \b
    Example:
      aos status
    """
    paths = DaemonPaths.of(ctx.config)
    try:
        kernel = asyncio.run(call(ctx.config, "kernel.status", in_process=False))
        skills = asyncio.run(call(ctx.config, "skill.list", in_process=False))
        ui = asyncio.run(service_ui_address(ctx.config))
    except CLIError as exc:
        if as_json and exc.exit_status == ExitCode.UNAVAILABLE:
            error = {"code": exc.code, "message": exc.message}
            emit_json({"running": False, "socket": str(paths.control_socket), "error": error})
            sys.exit(exc.exit_status)
        raise
    report = {
        "running": True,
        "pid": kernel["pid"],
        "node": kernel["node"],
        "version": kernel["version"],
        "uptime": kernel["uptime"],
        "socket": str(paths.control_socket),
        "log": str(paths.log_file),
        "project": kernel["project"],
        "ui": ui,
        "database": kernel["database"],
        "skills": [{k: s[k] for k in ("name", "status", "kind", "root", "reason")} for s in skills],
        "services": kernel["services"],
        "isolation": kernel["isolation"],
        "cluster": kernel["cluster"],
    }
    if as_json:
        emit_json(report)
        return
    click.echo(
        f"running: pid {report['pid']}, up {report['uptime']:.0f}s, version {report['version']}"
    )
    click.echo(f"socket:  {report['socket']}")
    click.echo(f"project: {report['project']}")
    click.echo(f"isolation: {report['isolation']['detail']}")
    if ui:
        click.echo(f"ui:      {ui}")
    click.echo(
        f"database: {report['database']['backend']} {report['database']['url']} (schema {report['database']['schema_version']})"
    )
    click.echo(
        f"skills:  {len(skills)} ({', '.join(f'{n} {s}' for s, n in kernel['skills'].items() if n)})"
    )
    echo_cluster(kernel["cluster"], kernel["node"])
    for service in report["services"]:
        error = f", last error: {service['last_error']}" if service["last_error"] else ""
        if service.get("left"):
            error = f", left: {service['left']} (`aos skill reload {service['skill']}` starts it)"
        peer = service.get("peer_pid")
        connected = f" (connected: pid {peer})" if peer and peer != service["pid"] else ""
        click.echo(
            f"service {service['skill']}: {service['state']}, pid {service['pid']}{connected}, "
            f"restarts {service['restarts']}{error}"
        )


@cli.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--lines", default=50, show_default=True, help="Lines to show first.")
@click.option("--service", metavar="SKILL", help="Only this skill service's lines.")
@click.option("--json", "as_json", is_flag=True, help='JSON Lines: {"line": ...} per line.')
@pass_context
def logs(ctx: Context, follow: bool, lines: int, service: str | None, as_json: bool) -> None:
    """The daemon log (aos.log under the state dir); with --service, one skill
    service's lines only (its stderr as it writes it, and what the daemon says of it).

    \b
    Example:
      aos logs -f -n 100 --service my-guard
    """
    mark = f" service {service}: " if service else ""
    log_file = DaemonPaths.of(ctx.config).log_file
    if not log_file.exists():
        raise CLIError(
            f"no daemon log yet at {log_file}: start the daemon with `aos start`",
            code="not_found",
            exit_code=ExitCode.NOT_FOUND,
        )

    def show(line: str) -> None:
        if mark in line:
            click.echo(json.dumps({"line": line.rstrip("\n")}) if as_json else line.rstrip("\n"))

    with log_file.open(errors="replace") as handle:
        for line in [line for line in handle.readlines() if mark in line][-lines:]:
            show(line)
        while follow:
            line = handle.readline()
            if line:
                show(line)
            else:
                time.sleep(0.2)
