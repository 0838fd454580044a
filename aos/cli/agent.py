"""``aos agent list|show|create|update|archive``: agents by id or by name."""

from __future__ import annotations

import asyncio
import json
from collections.abc import (
    Mapping,
    Sequence,
)
from typing import Any

import click

from aos.cli._app import cli, pass_context
from aos.cli.output import (
    CLIError,
    ExitCode,
    ago,
    cost,
    emit_json,
    is_time,
    json_option,
    local_time,
    tokens,
)
from aos.cli.syscall import Syscall, admin

DEFAULT_AGENT = "default"


async def resolve_agent(syscall: Syscall, agent: str | None, *, create: bool = False) -> str:
    """An active agent's id from its id or its name (``None``: the default agent,
    made on first use when ``create``)."""
    wanted = agent or DEFAULT_AGENT
    try:
        return (await syscall("agent.get", {"id": wanted}))["agent"]["id"]
    except CLIError as exc:
        if exc.code != "not_found":
            raise
    for found in await syscall("agent.list", {"status": "active"}):
        if found["name"] == wanted:
            return found["id"]
    if agent is not None or not create:  # only the default agent is made on first use
        raise CLIError(
            f"no active agent named or numbered {wanted!r}: `aos agent list` shows them, "
            f"`aos agent create {wanted}` makes one",
            code="not_found",
            exit_code=ExitCode.NOT_FOUND,
        )
    return (await syscall("agent.create", {"name": wanted}))["agent"]["id"]


def on_agent(config: Any, name: str, agent: str) -> Any:
    """Syscall ``name`` as the admin on one agent, named by id or name."""

    async def call() -> Any:
        async with admin(config) as syscall:
            return await syscall(name, {"id": await resolve_agent(syscall, agent)})

    return asyncio.run(call())


def print_table(rows: Sequence[Sequence[str]], *, empty: str) -> None:
    """A header row and its rows in aligned columns; ``empty`` when there are none."""
    if len(rows) == 1:
        click.echo(empty)
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for n, row in enumerate(rows):
        line = "  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths, strict=False))
        line = f"{line}  {row[-1]}"
        click.echo(click.style(line, bold=True) if n == 0 else line)


def print_record(record: Mapping[str, Any]) -> None:
    """A control block as ``key: value`` lines, its times for people."""
    for key, value in record.items():
        if is_time(key, value):
            shown = f"{ago(value)} ({local_time(value)})"
        elif isinstance(value, str):
            shown = value
        else:
            shown = json.dumps(value)
        click.echo(f"{key}: {shown}")


@cli.group(name="agent")
def agent_group() -> None:
    """List, show, create, update and archive agents (by id or by name).

    \b
    Example:
      aos agent list
    """


@agent_group.command(name="list")
@json_option
@pass_context
def agent_list(ctx: Any, as_json: bool) -> None:
    """Agents as a tree (children under their parent).

    \b
    Example:
      aos agent list --json
    """

    async def listing() -> list[dict[str, Any]]:
        async with admin(ctx.config) as syscall:
            agents = await syscall("agent.list", {})
            ids = [a["id"] for a in agents]
            totals = await syscall("session.usage", {"ids": ids, "by": "agent"})
            for agent, usage in zip(agents, totals, strict=True):
                agent["usage"] = {k: v for k, v in usage.items() if k != "id"}
            return agents

    agents = asyncio.run(listing())
    if as_json:
        emit_json(agents)
        return
    children: dict[str | None, list[dict[str, Any]]] = {}
    for a in agents:
        children.setdefault(a["parent"], []).append(a)
    rows = [("NAME", "ID", "STATUS", "CREATED", "TOKENS", "COST")]

    def walk(parent: str | None, depth: int) -> None:
        for a in children.get(parent, []):
            used = a["usage"]
            rows.append(
                (
                    f"{'  ' * depth}{a['name']}",
                    a["id"],
                    a["status"],
                    ago(a["created_at"]),
                    tokens(used["input_tokens"] + used["output_tokens"]),
                    cost(used["cost"]),
                )
            )
            walk(a["id"], depth + 1)

    walk(None, 0)
    print_table(rows, empty="no agents yet: `aos run` makes the default one")


@agent_group.command(name="show")
@click.argument("agent")
@json_option
@pass_context
def agent_show(ctx: Any, agent: str, as_json: bool) -> None:
    """One agent (id or name) with its effective (inherited) configuration.

    \b
    Example:
      aos agent show default
    """

    info = on_agent(ctx.config, "agent.get", agent)
    if as_json:
        emit_json(info)
        return
    effective = dict(info["effective"])
    prompt = effective.pop("prompt", "")
    print_record({**info["agent"], "effective": effective})
    if prompt:  # the system-prompt additions along its lineage, as they read
        click.echo("prompt:")
        for line in prompt.splitlines():
            click.echo(f"  {line}".rstrip())


@agent_group.command(name="create")
@click.argument("name")
@click.option("--parent", help="Parent agent id or name (the child inherits its configuration).")
@click.option("--model", help="Model id for this agent.")
@click.option("--skill", "skills", multiple=True, help="A skill active for this agent (repeat).")
@click.option("--workspace", help="Directory its bash runs in.")
@click.option("--prompt", help="Text added to its system prompt (and its descendants').")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="A syscall scope its tokens hold (repeat; default: the default agent scopes).",
)
@json_option
@pass_context
def agent_create(
    ctx: Any, name: str, parent: str | None, model: str | None, skills: tuple[str, ...],
    workspace: str | None, prompt: str | None, scopes: tuple[str, ...], as_json: bool,
) -> None:  # fmt: skip
    """Create an agent.

    \b
    Example:
      aos agent create researcher --parent default --skill pdf
    """
    if not name.strip():
        raise click.UsageError("an agent needs a name: `aos agent create NAME`")
    config: dict[str, Any] = {
        "model": model,
        "workspace": workspace,
        "skills": list(skills) or None,
        "prompt": prompt or None,
    }

    async def create() -> Any:
        async with admin(ctx.config) as syscall:
            params = {
                "name": name,
                "parent": await resolve_agent(syscall, parent) if parent else None,
                "config": {k: v for k, v in config.items() if v is not None},
                "scopes": list(scopes) or None,
            }
            return await syscall("agent.create", params)

    info = asyncio.run(create())
    if as_json:
        emit_json(info)
        return
    click.echo(f"created agent {info['agent']['name']} {info['agent']['id']}")


@agent_group.command(name="update")
@click.argument("agent")
@click.option("--name", help="Its new name.")
@click.option("--prompt", help="Replaces the text it adds to the system prompt ('' removes it).")
@click.option("--parent", help="Move it under this agent (id or name).")
@click.option("--root", is_flag=True, help="Make it a root agent (no parent).")
@json_option
@pass_context
def agent_update(
    ctx: Any, agent: str, name: str | None, prompt: str | None, parent: str | None, root: bool,
    as_json: bool,
) -> None:  # fmt: skip
    """Rename an agent, set its system-prompt addition, or move it to another parent.

    \b
    Example:
      aos agent update worker --parent lead --prompt "Answer in French."
    """
    if parent is not None and root:
        raise click.UsageError("--parent and --root exclude each other")
    if name is None and prompt is None and parent is None and not root:
        raise click.UsageError("nothing to update: give --name, --prompt, --parent or --root")

    async def update() -> Any:
        async with admin(ctx.config) as syscall:
            agent_id = await resolve_agent(syscall, agent)
            params: dict[str, Any] = {"id": agent_id, "name": name}
            if prompt is not None:  # the config is replaced as a whole: keep the rest
                config = (await syscall("agent.get", {"id": agent_id}))["agent"]["config"]
                params["config"] = {**config, "prompt": prompt or None}
            if root:
                params["parent"] = ""
            elif parent is not None:
                params["parent"] = await resolve_agent(syscall, parent)
            return await syscall("agent.update", params)

    info = asyncio.run(update())
    if as_json:
        emit_json(info)
        return
    acb = info["agent"]
    under = f"under {acb['parent']}" if acb["parent"] else "a root agent"
    click.echo(f"updated agent {acb['name']} {acb['id']} ({under})")


@agent_group.command(name="archive")
@click.argument("agent")
@json_option
@pass_context
def agent_archive(ctx: Any, agent: str, as_json: bool) -> None:
    """Archive an agent, by id or name (refused while it has active children).

    \b
    Example:
      aos agent archive researcher
    """

    acb = on_agent(ctx.config, "agent.archive", agent)
    if as_json:
        emit_json(acb)
        return
    click.echo(f"archived agent {acb['name']} {acb['id']}")
