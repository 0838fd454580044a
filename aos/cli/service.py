"""``aos service``: remote services' tokens (mint, revoke)."""

from __future__ import annotations

import asyncio
import time

import click

from aos.cli._app import Context, cli, pass_context
from aos.cli.output import emit_json, json_option
from aos.cli.syscall import call
from aos.remotes import DEFAULT_TTL_DAYS


@cli.group()
def service() -> None:
    """Grant services that run on other machines (over the WebSocket face).

    \b
    Example:
      aos service token my-guard --scopes session.read
      AOS_URL=ws://node:7878/ AOS_SKILL=my-guard AOS_TOKEN=... python service.py
    """


@service.command(name="token")
@click.argument("name")
@click.option(
    "--scopes",
    default="",
    help="Comma list of scopes its syscalls may use (none by default).",
)
@click.option(
    "--hooks",
    default="",
    help="Comma list of gate/provide hooks enforced (failing by policy) before its first hello.",
)
@click.option(
    "--ttl-days",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TTL_DAYS,
    show_default=True,
    help="Days until the token expires.",
)
@json_option
@pass_context
def service_token(
    ctx: Context, name: str, scopes: str, hooks: str, ttl_days: float, as_json: bool
) -> None:
    """Mint the token of remote service NAME (replacing any earlier one).

    The token is printed once; the node keeps only its grant. From now on the
    service's hooks guard every agent, failing as their policy says (a gate
    closed) whenever it is not attached.

    \b
    Example:
      aos service token my-guard --scopes session.read --hooks tool.before
    """
    params = {
        "name": name,
        "scopes": _comma_list(scopes),
        "hooks": _comma_list(hooks),
        "ttl_days": ttl_days,
    }
    minted = asyncio.run(call(ctx.config, "service.token", params))
    if as_json:
        emit_json(minted)
        return
    url = minted["url"] or "ws://HOST:PORT/ (the daemon has no WebSocket face: set AOS_WS_LISTEN)"
    days = (minted["expires"] - time.time()) / 86400
    click.echo(
        f"remote service {minted['name']}: scopes {', '.join(minted['scopes']) or '(none)'}, "
        f"guarded before its hello: {', '.join(minted['hooks']) or '(no hooks)'}, "
        f"valid {days:.0f} days\n"
        f"run it with:\n"
        f"  AOS_URL={url} AOS_SKILL={minted['name']} AOS_TOKEN={minted['token']}"
    )


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@service.command(name="revoke")
@click.argument("name")
@json_option
@pass_context
def service_revoke(ctx: Context, name: str, as_json: bool) -> None:
    """Revoke remote service NAME: its token stops working, its connection and hooks go.

    \b
    Example:
      aos service revoke my-guard
    """
    revoked = asyncio.run(call(ctx.config, "service.revoke", {"name": name}))
    if as_json:
        emit_json(revoked)
        return
    if not revoked["revoked"]:
        raise click.ClickException(f"no remote service named {name!r}")
    click.echo(f"revoked remote service {name}")
