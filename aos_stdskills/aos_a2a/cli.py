"""``aos a2a log``: the operator's view of messages (the skill's ``cli.register``).

This module is the skill's in-process plugin (its entry point); the package
itself stays light, so the agents' ``a2a`` command starts fast.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from aos import hookimpl


async def _messages(config: Any, limit: int) -> list[dict[str, Any]]:
    from aos import cli_call  # the CLI's own syscall path (daemon or in process)

    found = []
    for session in await cli_call(config, "session.list", {}):
        read = {"id": session["id"], "kinds": ["a2a.message"]}
        for entry in await cli_call(config, "session.history", read):
            found.append(
                {
                    "seq": entry["seq"],
                    "ts": entry["ts"],
                    "session_id": session["id"],
                    **entry["fact"],
                }
            )
    found.sort(key=lambda m: m["ts"])
    return found[-limit:]


@hookimpl
def cli_register(cli: click.Group) -> None:
    @cli.group(name="a2a")
    def a2a() -> None:
        """Agent-to-agent messages (the aos-a2a skill).

        \b
        Example:
          aos a2a log -n 20
        """

    @a2a.command(name="log")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.option("-n", "--limit", default=100, show_default=True, help="How many, newest last.")
    @click.pass_context
    def log(ctx: click.Context, as_json: bool, limit: int) -> None:
        """Recent messages across agents: sender, receiver, mode, reply links.

        \b
        Example:
          aos a2a log -n 20
        """
        messages = asyncio.run(_messages(ctx.find_root().obj.config, limit))
        if as_json:
            click.echo(json.dumps(messages, indent=2))
            return
        for m in messages:
            reply = f" reply to {m['reply_to']}" if m.get("reply_to") else ""
            click.echo(
                f"{m['message_id']}  {m['from_agent']} -> {m['to_agent']} ({m['mode']}{reply}, "
                f"hop {m['hops']})  {m['text'][:80]}"
            )
