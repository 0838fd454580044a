"""``aos harness``: list, show, use and scaffold harness packages (:mod:`aos.harness`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
import msgspec

from aos import harness, scaffold
from aos.cli._app import cli, pass_context
from aos.cli.output import (
    CLIError,
    ExitCode,
    emit_json,
    json_option,
)
from aos.config import AOSCB_FILENAME


@cli.group(name="harness")
def harness_group() -> None:
    """Harnesses: skills plus settings, installed as packages (entry points aos.harnesses).

    \b
    Example:
      aos harness list
    """


@harness_group.command(name="list")
@json_option
@pass_context
def harness_list(ctx: Any, as_json: bool) -> None:
    """Every installed harness, and which one this node uses.

    \b
    Example:
      aos harness list --json
    """
    current = ctx.config.aoscb.harness
    rows = [_row(name, current) for name in sorted(harness.installed())]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        mark = "*" if row["in_use"] else " "
        where = f"{row['distribution'] or '?'} {row['version'] or ''}".rstrip()
        click.echo(f"{mark} {row['name']}  [{where}]  {row['description']}")
        if row["error"]:
            click.echo(f"    failed: {row['error']}")
    if current is None:
        click.echo("(no harness named: the built-in defaults, which are `standard`'s)")


@harness_group.command(name="show")
@click.argument("name")
@json_option
def harness_show(name: str, as_json: bool) -> None:
    """One harness: the skills it brings and the settings it gives.

    \b
    Example:
      aos harness show standard
    """
    found = _load(name)
    if as_json:
        emit_json(msgspec.to_builtins(found))
        return
    click.echo(f"{found.name}  [{found.distribution} {found.version}]  {found.description}")
    click.echo(f"skills: {', '.join(found.skills) or 'none'}")
    for key, value in harness.settings_of(found.aoscb).items():
        click.echo(f"{key} = {json.dumps(value)}")


@harness_group.command(name="use")
@click.argument("name")
@json_option
@pass_context
def harness_use(ctx: Any, name: str, as_json: bool) -> None:
    """Make NAME this node's harness: aoscb.json names it, and the settings it
    gives leave the file (they come from the harness now).

    \b
    Example:
      aos harness use standard
    """
    found = _load(name)
    config = ctx.config
    path: Path = config.aoscb_file or config.project_dir / AOSCB_FILENAME
    values: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    removed = [key for key in harness.settings_of(found.aoscb) if _pop(values, key)]
    values["harness"] = name
    staged = path.with_name(f".{path.name}.tmp")
    staged.write_text(json.dumps(values, indent=2) + "\n")
    os.replace(staged, path)  # all or nothing
    if as_json:
        emit_json({"harness": name, "file": str(path), "removed": removed})
        return
    click.echo(f"{path}: harness {name}")
    if removed:
        click.echo(f"{', '.join(removed)}: now from the harness (removed from the file)")
    click.echo("a running daemon takes it at its next start (aos stop && aos start)")


@harness_group.command(name="new")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Create it here (default: the current directory).",
)
@json_option
def harness_new(name: str, directory: Path | None, as_json: bool) -> None:
    """Scaffold a harness package (entry point aos.harnesses).

    \b
    Example:
      aos harness new my-harness
    """
    root = directory or Path.cwd()
    if (root / name).exists():
        raise CLIError(f"{root / name} already exists", code="conflict")
    made = scaffold.harness_package(root, name)
    if as_json:
        emit_json({"name": name, "path": str(made)})
        return
    click.echo(f"created {made}")
    click.echo(f"install it with: pip install -e {made}, then: aos harness use {name}")


def _load(name: str) -> harness.Harness:
    try:
        return harness.load(name)
    except harness.HarnessError as exc:
        code = "not_found" if name not in harness.installed() else "error"
        exit_code = ExitCode.NOT_FOUND if code == "not_found" else ExitCode.ERROR
        raise CLIError(str(exc), code=code, exit_code=exit_code) from None


def _row(name: str, current: str | None) -> dict[str, Any]:
    try:
        found = harness.load(name)
    except harness.HarnessError as exc:
        return {"name": name, "distribution": None, "version": None, "description": "",
                "skills": [], "in_use": name == current, "error": str(exc)}  # fmt: skip
    return {
        "name": name,
        "distribution": found.distribution,
        "version": found.version,
        "description": found.description,
        "skills": found.skills,
        "in_use": name == current,
        "error": None,
    }


def _pop(values: dict[str, Any], key: str) -> bool:
    """Remove a dotted key from aoscb.json's values; whether it was there."""
    *parents, last = key.split(".")
    node: Any = values
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    return False
