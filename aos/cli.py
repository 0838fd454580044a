"""The ``aos`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import importlib.metadata
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import msgspec
from aos_sdk import Client, NotConnected, SyscallFailed

from aos import __version__, cli_harness, cli_sessions, scaffold
from aos.cli_output import (
    CLIError,
    ExitCode,
    Group,
    colour_callback,
    emit_json,
    json_option,
    syscall_error,
)
from aos.config import Config, ConfigError, load_config, mask_url
from aos.daemon import Daemon, DaemonError, DaemonPaths, alive, read_pid, setup_logging
from aos.hooks import HookRunner
from aos.hookspecs import HOOKS, python_name
from aos.llm import LLMSettings, missing_configuration
from aos.plugins import AOSPluginManager, PluginLoad, allowed_plugins, load_entrypoint_plugins
from aos.sandbox import probe
from aos.skills import manifest
from aos.skills.registry import SKILL_FILE, Skill, SkillRegistry, default_roots
from aos.store import StoreError, backend_of, open_store


class Context:
    """What every command gets: the global flags, resolved lazily into a Config."""

    def __init__(self, flags: dict[str, Any]) -> None:
        self.flags = flags
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            try:
                self._config = load_config(self.flags)
            except ConfigError as exc:
                raise CLIError(
                    f"configuration error: {exc}", code="config", exit_code=ExitCode.USAGE
                ) from None
        return self._config


pass_context = click.make_pass_decorator(Context)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="aos")
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    help="Keep everything under this directory (AOS_HOME).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="aoscb.json to read (AOS_CONFIG).",
)
@click.option("--db-url", help="Database URL (AOS_DB_URL): sqlite:///PATH or postgresql://...")
@click.option("--no-color", is_flag=True, help="No colour (also: NO_COLOR set to anything).")
@click.pass_context
def cli(
    ctx: click.Context, home: str | None, config_file: str | None, db_url: str | None,
    no_color: bool,
) -> None:  # fmt: skip
    """AgentOS: an operating system for AI agents."""
    colour_callback(ctx, no_color, os.environ)
    ctx.obj = Context({"home": home, "config": config_file, "db_url": db_url})


@cli.command()
@json_option
@pass_context
def doctor(ctx: Context, as_json: bool) -> None:
    """Check the configuration and the database; say where each setting came from."""
    config = ctx.config
    database: dict[str, Any] = {
        "backend": backend_of(config.db_url),
        "url": mask_url(config.db_url),
        "schema_version": None,
        "error": None,
    }
    try:
        database["schema_version"] = asyncio.run(_schema_version(config.db_url))
    except StoreError as exc:
        database["error"] = str(exc)
    isolation = msgspec.to_builtins(probe(config.aoscb.sandbox, config.getenv("PATH")))
    report = {
        "ok": database["error"] is None
        and not (isolation["mode"] == "required" and not isolation["available"]),
        "version": __version__,
        "python": platform.python_version(),
        "config_file": str(config.aoscb_file) if config.aoscb_file else None,
        "env_file": str(config.env_file) if config.env_file else None,
        "settings": config.describe(),
        "paths": {
            name: str(getattr(config.paths, name))
            for name in ("config_dir", "data_dir", "state_dir", "runtime_dir", "skills_dir")
        },
        "database": database,
        "isolation": isolation,
        "model": model_report(config),
        "daemon": _daemon_report(ctx),
        "ui": ui_address(config, create=False),
    }
    if as_json:
        emit_json(report)
    else:
        _print_doctor(report)
    if database["error"] is not None:
        click.echo(f"aos: database unavailable: {database['error']}", err=True)
    if not report["ok"]:
        cli_sessions.warn_isolation(isolation)
        sys.exit(1)


async def _schema_version(url: str) -> int:
    store = await open_store(url)
    try:
        return await store.schema_version()
    finally:
        await store.close()


def _print_doctor(report: dict[str, Any]) -> None:
    click.echo(f"aos {report['version']} on Python {report['python']}")
    click.echo(f"config file: {report['config_file'] or '(none: built-in defaults)'}")
    click.echo(f".env file:   {report['env_file'] or '(none)'}")
    click.echo("\nsettings:")
    width = max(len(k) for k in report["settings"])
    for key, item in report["settings"].items():
        click.echo(f"  {key:<{width}}  {json.dumps(item['value'])}  [{item['source']}]")
    click.echo("\npaths:")
    for name, path in report["paths"].items():
        click.echo(f"  {name:<{width}}  {path}")
    db = report["database"]
    click.echo("\ndatabase:")
    click.echo(f"  {'backend':<{width}}  {db['backend']}")
    click.echo(f"  {'url':<{width}}  {db['url']}")
    if db["error"] is None:
        click.echo(f"  {'schema':<{width}}  version {db['schema_version']}")
    model = report["model"]
    click.echo("\nmodel:")
    click.echo(f"  {'model':<{width}}  {model['model'] or '(none)'}  [{model['source']}]")
    click.echo(f"  {'server':<{width}}  {model['base_url']}")
    key = "set" if model["key_set"] else "not set"
    click.echo(f"  {'key':<{width}}  {model['key_variable']} {key}")
    if model["problem"]:
        click.echo(f"  {'problem':<{width}}  {model['problem']}")
    daemon = report["daemon"]
    click.echo("\ndaemon:")
    click.echo(f"  {'socket':<{width}}  {daemon['socket']}")
    if daemon["running"]:
        click.echo(f"  {'running':<{width}}  pid {daemon['pid']}, node {daemon['node']}")
        click.echo(f"  {'serves':<{width}}  {daemon['project']}")
    else:
        click.echo(f"  {'running':<{width}}  no (`aos start` starts it)")
    iso = report["isolation"]
    click.echo(f"\nisolation: {iso['detail']}")
    click.echo(f"  user namespaces: {iso['user_namespaces']}")
    click.echo(f"  {iso['network']}")
    if report["ui"]:
        click.echo(f"\nweb UI: {report['ui']}")
    click.echo(f"\nok: {'yes' if report['ok'] else 'no'}")


# -- the daemon ---------------------------------------------------------------------------


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


def _daemon_report(ctx: Context) -> dict[str, Any]:
    """The daemon serving this directory's configuration: its socket, and its pid
    and node when it answers."""
    paths = DaemonPaths.of(ctx.config)
    try:
        status = asyncio.run(_call(ctx, "kernel.status"))
    except click.ClickException:
        status = None
    return {
        "socket": str(paths.control_socket),
        "log": str(paths.log_file),
        "running": status is not None,
        "pid": status["pid"] if status else None,
        "node": status["node"] if status else None,
        "project": status["project"] if status else None,
    }


UI_SKILL = "aos-frontend"
"""The standard skill whose service serves the web UI."""


def ui_address(config: Config, *, create: bool = True) -> str | None:
    """The web UI's address with its access token, to open once (``?token=`` sets
    its cookie), when aos-frontend is a default skill. The token is
    ``AOS_FRONTEND_TOKEN`` or the node's own in the state dir (made now when
    ``create``; without it and with none yet, the address says it comes at start)."""
    if UI_SKILL not in config.aoscb.default_skills:
        return None
    from aos_stdskills.aos_frontend import access  # stdlib only: the CLI stays fast

    env = config.environ()
    host, port = ui_host_port(config)
    path = access.token_file(config.paths.state_dir)
    try:
        token = (
            access.token_for(env, config.paths.state_dir)
            if create
            else env.get(access.TOKEN_VARIABLE) or access.read_token(path)
        )
    except OSError as exc:
        return f"{access.page_url(host, port)} (its token could not be kept in {path}: {exc})"
    if token is None:
        return f"{access.page_url(host, port)} (its token is made at the first start, in {path})"
    return access.page_url(host, port, token)


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


UI_FIX = (
    "set AOS_FRONTEND_PORT to a free port (in .env or the environment) and restart the "
    "daemon, or stop the program holding it and run `aos skill reload aos-frontend`"
)
"""What to do when the web UI's port is taken."""


async def _service_ui_address(ctx: Context) -> str | None:
    """The running UI's address with its token, from the service itself (admin only)."""
    try:
        found = await _call(ctx, "skill.call", {"skill": UI_SKILL, "method": "address"})
    except click.ClickException:
        return None
    return found.get("url") if isinstance(found, dict) else None


def _no_daemon(paths: DaemonPaths) -> CLIError:
    return CLIError(
        f"no AgentOS daemon is running (no answer at {paths.control_socket}): "
        "start one with `aos start` (background) or `aos up` (foreground)",
        code="unavailable",
        exit_code=ExitCode.UNAVAILABLE,
    )


async def _call(ctx: Context, name: str, params: dict[str, Any] | None = None) -> Any:
    """One syscall to the running daemon as admin."""
    paths = DaemonPaths.of(ctx.config)
    try:
        async with Client(paths.control_socket, token="", connect_timeout=0) as client:
            return await client.call(name, params)
    except NotConnected:
        raise _no_daemon(paths) from None
    except SyscallFailed as exc:
        raise syscall_error(exc.code, exc.message, name=name) from None


@cli.command()
@click.option("--quiet", is_flag=True, help="Log to the log file only (used by `aos start`).")
@json_option
@pass_context
def up(ctx: Context, quiet: bool, as_json: bool) -> None:
    """Run the daemon in the foreground (Ctrl-C or SIGTERM stops it cleanly).

    With --json, one object says where it listens and logs before it runs (and its
    log lines go to the log file only)."""
    config = ctx.config
    paths = DaemonPaths.of(config)
    setup_logging(paths.log_file, foreground=not (quiet or as_json))
    if not quiet:
        ui = ui_address(config)
        ui_problem = None
        if ui and ui_port_taken(config):
            host, port = ui_host_port(config)
            ui, ui_problem = (
                None,
                f"the web UI cannot start: port {port} on {host} is taken: {UI_FIX}",
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
        else:
            click.echo(
                f"aos: starting; control socket {paths.control_socket}, log {paths.log_file}"
            )
            click.echo(f"aos: {model_line(config)}")
            if ui_problem:
                click.echo(f"aos: {ui_problem}")
            elif ui:
                click.echo(f"aos: UI at {ui}")
    try:
        asyncio.run(Daemon(config).run())
    except StoreError as exc:
        raise CLIError(str(exc), code="unavailable", exit_code=ExitCode.UNAVAILABLE) from None
    except DaemonError as exc:
        raise CLIError(str(exc)) from None


@cli.command()
@click.option(
    "--timeout", default=30.0, show_default=True, help="Seconds to wait for it to be ready."
)
@json_option
@pass_context
def start(ctx: Context, timeout: float, as_json: bool) -> None:
    """Start the daemon in the background; print its pid, socket and log."""
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
    deadline = time.monotonic() + timeout
    status: dict[str, Any] | None = None
    ui: str | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CLIError(
                _why_it_exited(paths.log_file, log_start, process.returncode),
                code="unavailable",
                exit_code=ExitCode.UNAVAILABLE,
            )
        try:
            status = asyncio.run(_call(ctx, "kernel.status"))
        except click.ClickException:
            status = None
        if status is not None and _services_settled(status, paths):
            if not _serves_ui(status):
                break
            ui = asyncio.run(_service_ui_address(ctx))  # once it listens, not at its hello
            if ui is not None:
                break
        time.sleep(0.1)
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
        cli_sessions.warn_isolation(status["isolation"])
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
    """Stop the running daemon cleanly."""
    paths = DaemonPaths.of(ctx.config)
    pid = read_pid(paths.pidfile)
    try:
        asyncio.run(_call(ctx, "kernel.shutdown", {"reason": "aos stop"}))
    except click.ClickException:
        if pid is None:
            raise _no_daemon(paths) from None
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


@cli.command()
@json_option
@pass_context
def status(ctx: Context, as_json: bool) -> None:
    """Is the daemon running: pid, uptime, database, skills, services."""
    paths = DaemonPaths.of(ctx.config)
    try:
        kernel = asyncio.run(_call(ctx, "kernel.status"))
        skills = asyncio.run(_call(ctx, "skill.list"))
        ui = asyncio.run(_service_ui_address(ctx))
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
    for service in report["services"]:
        error = f", last error: {service['last_error']}" if service["last_error"] else ""
        peer = service.get("peer_pid")
        connected = f" (connected: pid {peer})" if peer and peer != service["pid"] else ""
        click.echo(
            f"service {service['skill']}: {service['state']}, pid {service['pid']}{connected}, "
            f"restarts {service['restarts']}{error}"
        )


@cli.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--lines", default=50, show_default=True, help="Lines to show first.")
@click.option("--json", "as_json", is_flag=True, help='JSON Lines: {"line": ...} per line.')
@pass_context
def logs(ctx: Context, follow: bool, lines: int, as_json: bool) -> None:
    """The daemon log (aos.log under the state dir)."""
    log_file = DaemonPaths.of(ctx.config).log_file
    if not log_file.exists():
        raise CLIError(
            f"no daemon log yet at {log_file}: start the daemon with `aos start`",
            code="not_found",
            exit_code=ExitCode.NOT_FOUND,
        )

    def show(line: str) -> None:
        click.echo(json.dumps({"line": line.rstrip("\n")}) if as_json else line.rstrip("\n"))

    with log_file.open(errors="replace") as handle:
        for line in handle.readlines()[-lines:]:
            show(line)
        while follow:
            line = handle.readline()
            if line:
                show(line)
            else:
                time.sleep(0.2)


@cli.command(name="syscall")
@click.argument("name")
@click.argument("params", required=False, default="{}")
@click.option("--json", "as_json", is_flag=True, help="Errors as JSON too (results always are).")
@pass_context
def syscall_cmd(ctx: Context, name: str, params: str, as_json: bool) -> None:
    """Call any syscall on the running daemon: aos syscall NAME '{"json": "params"}'."""
    del as_json  # the result is JSON either way; the root group renders errors by it
    try:
        decoded = json.loads(params)
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"PARAMS is not JSON: {exc}") from None
    if not isinstance(decoded, dict):
        raise click.UsageError("PARAMS must be a JSON object")
    emit_json(asyncio.run(_call(ctx, name, decoded)))


@functools.cache
def plugins() -> tuple[AOSPluginManager, list[PluginLoad]]:
    """The in-process plugins (``aos.skills`` entry points), loaded once."""
    pm = AOSPluginManager()
    return pm, load_entrypoint_plugins(pm, allowed_plugins())


@cli.command()
@json_option
@pass_context
def hooks(ctx: Context, as_json: bool) -> None:
    """Every hook with its kind and implementations in call order."""
    pm, loads = plugins()
    errors = [
        {"plugin": p.name, "entry_point": p.value, "error": p.error} for p in loads if p.error
    ]
    try:  # the running daemon knows its services' hooks too
        described = asyncio.run(_call(ctx, "hook.list"))
    except click.ClickException:
        timeout = ctx.config.aoscb.limits.hook_timeout
        described = HookRunner(pm, default_timeout=timeout).describe()
    if as_json:
        emit_json({"hooks": described, "plugin_errors": errors})
        return
    for hook in described:
        required = ", required" if hook["required"] else ""
        click.echo(f"{hook['hook']}  ({hook['kind']}{required})")
        for n, impl in enumerate(hook["implementations"], start=1):
            click.echo(
                f"  {n}. {impl['owner']}  {impl['where']}  {impl['failure']}  "
                f"timeout {impl['timeout']:g}s  {impl['function']}"
                + ("  [system: every agent]" if impl.get("system") else "")
            )
    for error in errors:
        click.echo(
            f"plugin {error['plugin']} ({error['entry_point']}) failed: {error['error']}", err=True
        )


@cli.command(name="plugins")
@json_option
def plugins_command(as_json: bool) -> None:
    """Installed plugin packages (``aos.skills`` entry points): distribution, version
    and the hooks each registers."""
    pm, loads = plugins()
    rows = [_plugin_row(pm, load) for load in loads]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no plugins installed (entry point group aos.skills)")
    for row in rows:
        where = f"{row['distribution'] or '?'} {row['version'] or ''}".rstrip()
        click.echo(f"{row['name']}  [{where}]  {row['entry_point']}")
        if row["error"]:
            click.echo(f"    failed: {row['error']}")
        else:
            click.echo(f"    hooks: {', '.join(row['hooks']) or 'none'}")


_DOTTED = {python_name(name): name for name in HOOKS}
"""pluggy's hook names (``tool_before``) as the contract spells them (``tool.before``)."""


def _plugin_row(pm: AOSPluginManager, load: PluginLoad) -> dict[str, Any]:
    plugin = None if load.error else pm.get_plugin(load.name)
    callers = pm.get_hookcallers(plugin) if plugin is not None else None
    version = None
    if load.distribution is not None:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            version = importlib.metadata.version(load.distribution)
    return {
        "name": load.name,
        "distribution": load.distribution,
        "version": version,
        "entry_point": load.value,
        "hooks": sorted(_DOTTED.get(caller.name, caller.name) for caller in callers or ()),
        "error": load.error,
    }


@cli.group()
def skill() -> None:
    """List, show, validate and scaffold skills."""


def _registry(ctx: Context) -> SkillRegistry:
    _, loads = plugins()
    registry = SkillRegistry(default_roots(ctx.config), loads)
    registry.scan()
    return registry


def _skill_row(s: Skill) -> dict[str, Any]:
    return {
        "name": s.name,
        "description": s.description,
        "root": s.root,
        "path": s.path,
        "kind": s.kind,
        "status": s.status,
        "reason": s.reason,
        "warnings": s.warnings,
    }


@skill.command(name="list")
@json_option
@pass_context
def skill_list(ctx: Context, as_json: bool) -> None:
    """Every skill found in the discovery roots, shadowed and broken ones included."""
    rows = [_skill_row(s) for s in _registry(ctx).all()]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo(
            "no skills found (roots: see `aos doctor`; scaffold one with `aos skill new NAME`)"
        )
    for row in rows:
        description = (
            row["description"] if len(row["description"]) <= 70 else row["description"][:67] + "..."
        )
        click.echo(f"{row['name']}  [{row['status']}, {row['kind']}, {row['root']}]  {description}")
        if row["reason"]:
            click.echo(f"    {row['status']}: {row['reason']}")
        for warning in row["warnings"]:
            click.echo(f"    warning: {warning}")


@skill.command(name="show")
@click.argument("name")
@json_option
@pass_context
def skill_show(ctx: Context, name: str, as_json: bool) -> None:
    """One skill: where it is, its status and its SKILL.md body (shadowed copies too)."""
    found = [s for s in _registry(ctx).all() if s.name == name]
    if not found:
        raise CLIError(
            f"no skill named {name!r} (see `aos skill list`)",
            code="not_found",
            exit_code=ExitCode.NOT_FOUND,
        )
    if as_json:
        emit_json(
            [
                {
                    **_skill_row(s),
                    "service": str(s.service_path) if s.service_path else None,
                    "scripts": str(s.scripts_dir) if s.scripts_dir else None,
                    "body": s.body,
                }
                for s in found
            ]
        )
        return
    for s in found:
        click.echo(f"{s.name}  [{s.status}, {s.kind}, {s.root}]")
        click.echo(f"path: {s.path}")
        if s.description:
            click.echo(f"description: {s.description}")
        if s.reason:
            click.echo(f"{s.status}: {s.reason}")
        for warning in s.warnings:
            click.echo(f"warning: {warning}")
        if s.service_path:
            click.echo(f"service: {s.service_path}")
        if s.scripts_dir:
            click.echo(f"scripts: {s.scripts_dir}")
        if s.body:
            click.echo("\n" + s.body)


@skill.command(name="validate")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@json_option
def skill_validate(path: Path, as_json: bool) -> None:
    """Check a skill directory strictly against the Agent Skills spec (exit 1 on errors)."""
    skill_dir = path.parent if path.is_file() else path
    result = manifest.parse(skill_dir / SKILL_FILE, strict=True)
    valid = result.manifest is not None
    if as_json:
        emit_json(
            {
                "valid": valid,
                "path": str(skill_dir),
                "name": result.manifest.name if result.manifest is not None else None,
                "diagnostics": [{"level": d.level, "message": str(d)} for d in result.diagnostics],
            }
        )
    else:
        for diagnostic in result.diagnostics:
            click.echo(f"{diagnostic.level}: {diagnostic}", err=True)
        if result.manifest is not None:
            click.echo(f"ok: {skill_dir} is a valid skill ({result.manifest.name})")
    if not valid:
        sys.exit(ExitCode.ERROR)


@skill.command(name="new")
@click.argument("name")
@click.option("--service", "with_service", is_flag=True, help="Add a service face (service.py).")
@click.option(
    "--plugin",
    "as_plugin",
    is_flag=True,
    help="A pip-installable plugin skill package (entry point aos.skills) instead.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Create it here (default: the first configured skill root; for --plugin, the "
    "current directory).",
)
@json_option
@pass_context
def skill_new(
    ctx: Context,
    name: str,
    with_service: bool,
    as_plugin: bool,
    directory: Path | None,
    as_json: bool,
) -> None:
    """Scaffold a valid skill directory, or with --plugin a plugin skill package."""
    if as_plugin and with_service:
        raise click.UsageError("--plugin and --service: a plugin skill's hooks run in process")
    problems = manifest.check_name(name, expected=name)
    if problems:
        raise click.UsageError(f"invalid skill name {name!r}: {'; '.join(problems)}")
    root = directory or (Path.cwd() if as_plugin else ctx.config.skill_root_paths[0])
    if (root / name).exists():
        raise CLIError(f"{root / name} already exists", code="conflict")
    if as_plugin:
        made = scaffold.plugin_package(root, name)
    else:
        made = scaffold.skill_dir(root, name, service=with_service)
    if as_json:
        emit_json({"name": name, "path": str(made), "service": with_service, "plugin": as_plugin})
        return
    click.echo(f"created {made}")
    if as_plugin:
        click.echo(f"install and test it with: cd {made} && pip install -e '.[test]' && pytest")
    else:
        click.echo(f"check it with: aos skill validate {made}")


@skill.command(name="reload")
@click.argument("name")
@json_option
@pass_context
def skill_reload(ctx: Context, name: str, as_json: bool) -> None:
    """Re-read a skill on the running daemon and restart its service."""
    info = asyncio.run(_call(ctx, "skill.reload", {"name": name}))
    if as_json:
        emit_json(info)
        return
    reason = f": {info['reason']}" if info["reason"] else ""
    click.echo(f"reloaded {info['name']} [{info['status']}, {info['kind']}]{reason}")


cli_sessions.register(cli, pass_context)
cli_harness.register(cli, pass_context)


def main() -> None:
    pm, _ = plugins()
    try:
        HookRunner(pm).register_cli(cli)
    except Exception as exc:  # a broken plugin must not take the CLI down
        click.echo(f"aos: a plugin failed in cli.register: {type(exc).__name__}: {exc}", err=True)
    cli(prog_name="aos")
