"""The ``aos`` command line, one module per noun.

``_app`` holds the root group and its :class:`Context`; ``daemon`` (up, start,
stop, status, logs), ``doctor``, ``agent``, ``session`` (run, chat, session),
``skill``, ``service`` (remote services' tokens), ``hooks`` (hooks, plugins),
``harness`` and ``syscall`` add their
commands to it; ``output`` is how every command speaks. A plugin adds its own
commands in ``cli.register`` and makes syscalls with :func:`call`.
"""

from __future__ import annotations

import click

from aos.cli import agent, daemon, doctor, harness, hooks, service, session, skill
from aos.cli import syscall as _syscall
from aos.cli._app import cli
from aos.cli.syscall import call
from aos.hooks import HookRunner

__all__ = [
    "agent",
    "call",
    "cli",
    "daemon",
    "doctor",
    "harness",
    "hooks",
    "main",
    "service",
    "session",
    "skill",
]
_COMMANDS = (agent, daemon, doctor, harness, hooks, service, session, skill, _syscall)
"""The noun modules: importing them adds their commands to ``cli``."""


def main() -> None:
    pm, _ = hooks.plugins()
    try:
        HookRunner(pm).register_cli(cli)
    except Exception as exc:  # a broken plugin must not take the CLI down
        click.echo(f"aos: a plugin failed in cli.register: {type(exc).__name__}: {exc}", err=True)
    cli(prog_name="aos")
