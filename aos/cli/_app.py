"""The root ``aos`` group and what every command gets: :class:`Context`."""

from __future__ import annotations

import os
from typing import Any

import click

from aos import __version__
from aos.cli.output import (
    CLIError,
    ExitCode,
    Group,
    colour_callback,
)
from aos.config import Config, ConfigError, load_config


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
