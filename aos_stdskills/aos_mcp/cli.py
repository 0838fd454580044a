"""``aos mcp list | tools | info | call``: the operator's view of the MCP servers (the
skill's ``cli.register``), through the running daemon's aos-mcp service.

This module is the skill's in-process plugin (its entry point); the package
itself stays light, so the agents' ``mcp`` command starts fast.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from aos import hookimpl
from aos_stdskills.aos_mcp.__main__ import show


def _method(ctx: click.Context, method: str, params: dict[str, Any]) -> Any:
    from aos import cli_call  # the CLI's own syscall path

    config = ctx.find_root().obj.config
    return asyncio.run(
        cli_call(
            config,
            "skill.call",
            {"skill": "aos-mcp", "method": method, "params": params},
            in_process=False,
        )
    )


def _emit(ctx: click.Context, method: str, params: dict[str, Any], as_json: bool) -> None:
    """Run the method; print its result as JSON, or as the agent's command does."""
    result = _method(ctx, method, params)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    elif show(method, result):
        ctx.exit(1)


@hookimpl
def cli_register(cli: click.Group) -> None:
    @cli.group(name="mcp")
    def mcp() -> None:
        """The project's MCP servers (the aos-mcp skill; its service must run:
        aos-mcp in default_skills).

        \b
        Example:
          aos mcp list
        """

    @mcp.command(name="list")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.pass_context
    def list_(ctx: click.Context, as_json: bool) -> None:
        """Every server, its status and its tools.

        \b
        Example:
          aos mcp list --json
        """
        _emit(ctx, "list", {}, as_json)

    @mcp.command(name="tools")
    @click.argument("server", required=False)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.pass_context
    def tools(ctx: click.Context, server: str | None, as_json: bool) -> None:
        """Every tool (of SERVER, or of every server), one line each.

        \b
        Example:
          aos mcp tools files
        """
        listed = [
            {"server": s["name"], "tool": t["name"], "summary": t["summary"]}
            for s in _method(ctx, "list", {})["servers"]
            if server in (None, s["name"])
            for t in s["tools"]
        ]
        if as_json:
            click.echo(json.dumps(listed, indent=2))
        else:
            show("grep", listed)

    @mcp.command(name="info")
    @click.argument("server")
    @click.argument("tool")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.pass_context
    def info(ctx: click.Context, server: str, tool: str, as_json: bool) -> None:
        """A tool's description and input schema.

        \b
        Example:
          aos mcp info files read_file
        """
        _emit(ctx, "info", {"server": server, "tool": tool}, as_json)

    @mcp.command(name="call")
    @click.argument("server")
    @click.argument("tool")
    @click.argument("arguments", default="{}")
    @click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
    @click.pass_context
    def call(ctx: click.Context, server: str, tool: str, arguments: str, as_json: bool) -> None:
        """Call a tool with a JSON object of arguments.

        \b
        Example:
          aos mcp call files read_file '{"path": "README.md"}'
        """
        try:
            parsed = json.loads(arguments)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="ARGUMENTS") from None
        _emit(ctx, "call", {"server": server, "tool": tool, "arguments": parsed}, as_json)
