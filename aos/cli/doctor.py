"""``aos doctor``: is this node ready, and what is it using."""

from __future__ import annotations

import asyncio
import json
import platform
import sys
from typing import Any

import click
import msgspec

from aos import __version__
from aos.cli._app import Context, cli, pass_context
from aos.cli.daemon import model_report, service_ui_address
from aos.cli.output import (
    emit_json,
    json_option,
    warn_isolation,
)
from aos.cli.syscall import call
from aos.config import Config, mask_url
from aos.daemon import DaemonPaths
from aos.sandbox import probe
from aos.services import DOCTOR_METHOD
from aos.store import StoreError, backend_of, open_store


@cli.command()
@json_option
@pass_context
def doctor(ctx: Context, as_json: bool) -> None:
    """Check the configuration and the database; say where each setting came from.

    \b
    Example:
      aos doctor --json
    """
    config = ctx.config
    database: dict[str, Any] = {
        "backend": backend_of(config.db_url),
        "url": mask_url(config.db_url),
        "schema_version": None,
        "error": None,
        "nodes": CLUSTER_MODES[backend_of(config.db_url)],
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
        "ui": asyncio.run(service_ui_address(config)),
    }
    if as_json:
        emit_json(report)
    else:
        _print_doctor(report)
    if database["error"] is not None:
        click.echo(f"aos: database unavailable: {database['error']}", err=True)
    if not report["ok"]:
        warn_isolation(isolation)
        sys.exit(1)


CLUSTER_MODES = {
    "sqlite": "one: SQLite serves one daemon (a second one on this file is refused); "
    "PostgreSQL runs several",
    "postgres": "several: every daemon on this database is a node of one cluster "
    "(AOS_NODE_TTL, AOS_CLAIM_INTERVAL, AOS_NODE_LABELS)",
}
"""What ``aos doctor`` says of the nodes a database serves."""


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
    click.echo(f"  {'nodes':<{width}}  {db['nodes']}")
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
    for name, service in daemon["services"].items():
        click.echo(f"  {'service':<{width}}  {name}: {service['state']}")
        for problem in service["problems"]:
            click.echo(f"  {'':<{width}}    problem: {problem}")
    iso = report["isolation"]
    click.echo(f"\nisolation: {iso['detail']}")
    click.echo(f"  user namespaces: {iso['user_namespaces']}")
    click.echo(f"  {iso['network']}")
    if report["ui"]:
        click.echo(f"\nweb UI: {report['ui']}")
    click.echo(f"\nok: {'yes' if report['ok'] else 'no'}")


def _daemon_report(ctx: Context) -> dict[str, Any]:
    """The daemon serving this directory's configuration: its socket, and its pid
    and node when it answers."""
    paths = DaemonPaths.of(ctx.config)
    try:
        status = asyncio.run(call(ctx.config, "kernel.status", in_process=False))
    except click.ClickException:
        status = None
    return {
        "socket": str(paths.control_socket),
        "log": str(paths.log_file),
        "running": status is not None,
        "pid": status["pid"] if status else None,
        "node": status["node"] if status else None,
        "project": status["project"] if status else None,
        "services": {
            s["skill"]: {"state": s["state"], "problems": service_problems(ctx.config, s)}
            for s in (status["services"] if status else [])
        },
    }


def service_problems(config: Config, service: dict[str, Any]) -> list[str]:
    """What a running service says is wrong with its own setup: the lines of its
    ``doctor`` method, when it offers one (docs/specs/aos-service.md#methods)."""
    if service["state"] != "running" or DOCTOR_METHOD not in service.get("methods", ()):
        return []
    params = {"skill": service["skill"], "method": DOCTOR_METHOD, "params": {}}
    try:
        lines = asyncio.run(call(config, "skill.call", params, in_process=False))
    except click.ClickException as exc:
        return [f"its doctor method failed: {exc.message}"]
    return [str(line) for line in lines] if isinstance(lines, list) else [str(lines)]
