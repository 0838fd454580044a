"""How the ``aos`` CLI speaks: errors and exit codes, ``--json``, colour and times.

One place decides, for every command:

- an error is one sentence on stderr (``Error: ...``), or with ``--json`` one
  object on stdout, ``{"error": {"code": ..., "message": ...}}``;
- the exit code says what kind of failure it was (:class:`ExitCode`);
- colour is off with ``--no-color``, with ``NO_COLOR`` set, and in pipes;
- times are "2 minutes ago" for people and ISO 8601 in JSON.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import click
import humanize
from aos_sdk.errors import ConnectionClosed

__all__ = [
    "CLIError",
    "ExitCode",
    "Group",
    "ago",
    "emit_json",
    "is_time",
    "json_option",
    "local_time",
    "syscall_error",
]


class ExitCode(enum.IntEnum):
    """The ``aos`` exit codes (docs/specs/aos-lifecycle.md, "Exit codes")."""

    OK = 0
    ERROR = 1
    """Anything else: a failed dispatch, a conflict with the current state."""
    USAGE = 2
    """The command line or the input is wrong (missing or empty message, bad name)."""
    NOT_FOUND = 3
    """An agent, session or skill named does not exist."""
    REFUSED = 4
    """Denied: a missing permission, or a guard (gate hook) said no."""
    UNAVAILABLE = 5
    """No daemon answers, the database or the model server cannot be used."""
    INTERRUPTED = 130
    """Ctrl-C (SIGINT); a closed terminal (SIGHUP) gives 129."""


_SYSCALL_EXITS = {
    "invalid": ExitCode.USAGE,
    "unknown": ExitCode.USAGE,
    "not_found": ExitCode.NOT_FOUND,
    "denied": ExitCode.REFUSED,
    "unavailable": ExitCode.UNAVAILABLE,
}
"""Syscall error codes (docs/specs/aos-syscall.md) as exit codes; ``conflict`` is 1."""


DAEMON_GONE = (
    "the daemon stopped while this ran (the connection closed before its answer): "
    "`aos status` says whether it runs again; a dispatch it was running is recorded as "
    "lost when it starts (`aos session history` shows what was done)"
)


class CLIError(click.ClickException):
    """A failure with a machine-readable ``code`` and its :class:`ExitCode`."""

    def __init__(self, message: str, *, code: str = "error", exit_code: int = ExitCode.ERROR):
        super().__init__(message)
        self.code = code
        self.exit_status = exit_code


def syscall_error(code: str, message: str, *, name: str | None = None) -> CLIError:
    """A failed syscall (``code`` one of the six syscall error codes) as a CLI error."""
    text = f"{name} failed: {code}: {message}" if name else f"{code}: {message}"
    return CLIError(text, code=code, exit_code=_SYSCALL_EXITS.get(code, ExitCode.ERROR))


def _as_cli_error(exc: click.ClickException) -> CLIError:
    if isinstance(exc, CLIError):
        return exc
    if isinstance(exc, click.UsageError):
        return CLIError(exc.format_message(), code="usage", exit_code=ExitCode.USAGE)
    return CLIError(exc.format_message(), exit_code=exc.exit_code)


def _wants_json(args: Sequence[str]) -> bool:
    """Whether ``--json`` is among the options (before a ``--``), read from the
    command line itself so that an error while parsing it is JSON too."""
    options = args[: list(args).index("--")] if "--" in args else args
    return "--json" in options


class Group(click.Group):
    """The root group: renders every error as text or JSON with its exit code, and
    turns colour off for ``--no-color`` and ``NO_COLOR``."""

    def main(  # type: ignore[override]  # the standalone mode is ours, always
        self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        as_json = _wants_json(argv)
        try:
            result = super().main(argv, prog_name, standalone_mode=False, **extra)
        except click.exceptions.Abort:  # Ctrl-C at a prompt
            _report(
                CLIError("interrupted", code="interrupted", exit_code=ExitCode.INTERRUPTED), as_json
            )
        except click.ClickException as exc:
            _report(_as_cli_error(exc), as_json)
        except ConnectionClosed:  # the daemon died (or was stopped) while it answered
            _report(syscall_error("unavailable", DAEMON_GONE), as_json)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        sys.exit(result if isinstance(result, int) else 0)


def _report(error: CLIError, as_json: bool) -> NoReturn:
    if as_json:
        emit_json({"error": {"code": error.code, "message": error.message}})
    else:
        click.echo(click.style(f"Error: {error.message}", fg="red"), err=True)
    sys.exit(error.exit_status)


def colour_callback(ctx: click.Context, no_color: bool, env: Mapping[str, str]) -> None:
    """Turn styling off for this command line when asked (``--no-color``, or
    ``NO_COLOR`` set to anything but empty, as https://no-color.org says)."""
    if no_color or env.get("NO_COLOR"):
        ctx.color = False


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
"""The ``--json`` flag every command takes."""

TIME_FIELDS = frozenset(
    {"ts", "created_at", "updated_at", "started_at", "finished_at", "lease_expires", "expires"}
)
"""Keys holding Unix times in what syscalls return; JSON output gives them in ISO 8601."""


def is_time(key: str, value: Any) -> bool:
    """Whether ``value`` under ``key`` is a Unix time to show as a time."""
    return key in TIME_FIELDS and isinstance(value, int | float) and value > 0


def local_time(ts: float) -> str:
    """A Unix time as local ISO 8601 with its offset (``2026-12-04T01:02:03+01:00``)."""
    return dt.datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def ago(ts: float | None) -> str:
    """A Unix time for people: "2 minutes ago" (empty for none)."""
    if not ts:
        return ""
    return humanize.naturaltime(dt.datetime.fromtimestamp(ts))


def tokens(count: int) -> str:
    """A token count for people: ``12,345``."""
    return humanize.intcomma(count)


def cost(dollars: float | None) -> str:
    """A cost the provider reported, in dollars (empty when none did)."""
    return "" if dollars is None else f"${dollars:.4f}"


def usage_line(usage: Mapping[str, Any]) -> str:
    """``N calls, X in + Y out tokens, $C`` of a UsageTotals or ModelUsage."""
    spent = f", {cost(usage['cost'])}" if usage.get("cost") is not None else ""
    return (
        f"{usage['calls']} calls, {tokens(usage['input_tokens'])} in + "
        f"{tokens(usage['output_tokens'])} out tokens{spent}"
    )


def _iso_times(data: Any) -> Any:
    if isinstance(data, dict):
        return {
            key: local_time(value) if is_time(key, value) else _iso_times(value)
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [_iso_times(item) for item in data]
    return data


def emit_json(data: Any) -> None:
    """``data`` as indented JSON on stdout, its times in ISO 8601."""
    click.echo(json.dumps(_iso_times(data), indent=2, default=str))


def warn_isolation(isolation: Mapping[str, Any]) -> None:
    """Say on stderr when agent commands are not sandboxed though they could be
    asked to be (``sandbox: auto`` on a host without bubblewrap)."""
    if isolation.get("warning"):
        click.echo(click.style(f"aos: warning: {isolation['warning']}", fg="yellow"), err=True)
