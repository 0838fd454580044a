"""``aos skill list|show|validate|new|reload``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
import msgspec

from aos import scaffold
from aos.cli._app import Context, cli, pass_context
from aos.cli.hooks import plugins
from aos.cli.output import (
    CLIError,
    ExitCode,
    emit_json,
    json_option,
)
from aos.cli.syscall import call
from aos.skills import manifest
from aos.skills.registry import SKILL_FILE, SkillRegistry, default_roots


@cli.group()
def skill() -> None:
    """List, show, validate and scaffold skills.

    \b
    Example:
      aos skill list
    """


def _registry(ctx: Context) -> SkillRegistry:
    _, loads = plugins()
    registry = SkillRegistry(default_roots(ctx.config), loads)
    registry.scan()
    return registry


@skill.command(name="list")
@json_option
@pass_context
def skill_list(ctx: Context, as_json: bool) -> None:
    """Every skill found in the discovery roots, shadowed and broken ones included.

    \b
    Example:
      aos skill list --json
    """
    rows = [msgspec.to_builtins(s.info()) for s in _registry(ctx).all()]
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
    """One skill: where it is, its status and its SKILL.md body (shadowed copies too).

    \b
    Example:
      aos skill show aos-context
    """
    found = [s for s in _registry(ctx).all() if s.name == name]
    if not found:
        raise CLIError(
            f"no skill named {name!r} (see `aos skill list`)",
            code="not_found",
            exit_code=ExitCode.NOT_FOUND,
        )
    if as_json:
        emit_json([{**msgspec.to_builtins(s.info()), "body": s.body} for s in found])
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
            for problem in _service_problems(ctx, s.name):
                click.echo(f"problem: {problem}")
        if s.scripts_dir:
            click.echo(f"scripts: {s.scripts_dir}")
        if s.body:
            click.echo("\n" + s.body)


def _service_problems(ctx: Context, name: str) -> list[str]:
    """What the skill's running service says is wrong (its ``doctor`` method)."""
    from aos.cli.doctor import service_problems

    try:
        status = asyncio.run(call(ctx.config, "kernel.status", in_process=False))
    except click.ClickException:  # no daemon: no service to ask
        return []
    found = [s for s in status["services"] if s["skill"] == name]
    return service_problems(ctx.config, found[0]) if found else []


@skill.command(name="validate")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@json_option
def skill_validate(path: Path, as_json: bool) -> None:
    """Check a skill directory strictly against the Agent Skills spec (exit 1 on errors).

    \b
    Example:
      aos skill validate skills/my-guard
    """
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
@click.option("--service", "with_service", is_flag=True, help="Add a service face.")
@click.option(
    "--lang",
    type=click.Choice(scaffold.SERVICE_LANGS),
    default="python",
    show_default=True,
    help="The service's language: python (service.py) or ts (service.mjs, the TypeScript SDK).",
)
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
    lang: str,
    as_plugin: bool,
    directory: Path | None,
    as_json: bool,
) -> None:
    """Scaffold a valid skill directory, or with --plugin a plugin skill package.

    \b
    Example:
      aos skill new pdf-tools --service
    """
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
        made = scaffold.skill_dir(root, name, service=with_service, lang=lang)
    if as_json:
        emit_json(
            {
                "name": name,
                "path": str(made),
                "service": with_service,
                "lang": lang if with_service else None,
                "plugin": as_plugin,
            }
        )
        return
    click.echo(f"created {made}")
    if as_plugin:
        click.echo(f"install and test it with: cd {made} && pip install -e '.[test]' && pytest")
    else:
        if with_service and lang == "ts":
            click.echo(
                f"install its dependency: cd {made} && npm install  (from a checkout of AgentOS: "
                "npm install <checkout>/sdk/typescript)"
            )
        click.echo(f"check it with: aos skill validate {made}")


@skill.command(name="reload")
@click.argument("name")
@json_option
@pass_context
def skill_reload(ctx: Context, name: str, as_json: bool) -> None:
    """Re-read a skill on the running daemon and restart its service.

    \b
    Example:
      aos skill reload my-guard
    """
    info = asyncio.run(call(ctx.config, "skill.reload", {"name": name}, in_process=False))
    if as_json:
        emit_json(info)
        return
    reason = f": {info['reason']}" if info["reason"] else ""
    click.echo(f"reloaded {info['name']} [{info['status']}, {info['kind']}]{reason}")
