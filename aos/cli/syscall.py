"""How the CLI makes syscalls: :func:`call`, one as admin (the running daemon,
else a kernel opened in process), for the CLI's own commands and for those
plugins add (``cli.register``); ``aos syscall NAME JSON``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
)
from pathlib import Path
from typing import Any

import click
from aos_sdk import Client, NotConnected, SyscallFailed

from aos.cli._app import Context, cli, pass_context
from aos.cli.output import (
    CLIError,
    ExitCode,
    emit_json,
    syscall_error,
)
from aos.config import Config
from aos.daemon import Daemon, DaemonPaths, setup_logging
from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.syscalls import SyscallError


@contextlib.asynccontextmanager
async def daemon_socket(config: Any, *, embed: bool) -> AsyncIterator[Path | None]:
    """The running daemon's control socket; else an embedded daemon's (``embed``),
    else None (the caller opens the kernel in process)."""
    paths = DaemonPaths.of(config)
    try:
        async with Client(paths.control_socket, token="", connect_timeout=0):
            pass
    except NotConnected:
        if not embed:
            yield None
            return
        setup_logging(paths.log_file, foreground=False)
        daemon = Daemon(config)
        task = await daemon.start()
        try:
            yield paths.control_socket
        finally:
            assert daemon.kernel is not None
            daemon.kernel.shutdown_reason = "the embedded daemon's command finished"
            daemon.kernel.shutdown_requested.set()
            await task
        return
    yield paths.control_socket


Syscall = Callable[[str, "dict[str, Any] | None"], Awaitable[Any]]
"""A syscall as the admin: ``await syscall(name, params)``; failures are CLI errors."""


def cli_errors(call: Callable[[str, Any], Awaitable[Any]]) -> Syscall:
    """``call`` with its syscall failures turned into CLI errors (with exit codes)."""

    async def syscall(name: str, params: dict[str, Any] | None = None) -> Any:
        try:
            return await call(name, params)
        except (SyscallFailed, SyscallError) as exc:
            raise syscall_error(exc.code, exc.message, name=name) from None

    return syscall


@contextlib.asynccontextmanager
async def admin(config: Config, *, in_process: bool = True) -> AsyncIterator[Syscall]:
    """Syscalls as admin for one command: on the running daemon; else on a kernel
    opened in process (``in_process``), or a CLI error saying how to start one."""
    paths = DaemonPaths.of(config)
    async with daemon_socket(config, embed=False) as socket_path:
        if socket_path is not None:
            client = Client(socket_path, token="", connect_timeout=0)
            try:
                await client.connect()
            except NotConnected:  # it stopped in between
                raise no_daemon(paths) from None
            try:
                yield cli_errors(client.call)
            finally:
                await client.close()
            return
        if not in_process:
            raise no_daemon(paths)
        kernel = await Kernel.open(config)
        try:
            yield cli_errors(functools.partial(kernel.syscall, ADMIN))
        finally:
            await kernel.close()


async def call(
    config: Config, name: str, params: dict[str, Any] | None = None, *, in_process: bool = True
) -> Any:
    """One syscall as admin: on the running daemon, else (``in_process``) on a
    kernel opened for it; a failure is a :class:`~aos.cli.output.CLIError` with
    the syscall's exit code. What plugins' commands (``cli.register``) call."""
    async with admin(config, in_process=in_process) as syscall:
        return await syscall(name, params)


def no_daemon(paths: DaemonPaths) -> CLIError:
    return CLIError(
        f"no AgentOS daemon is running (no answer at {paths.control_socket}): "
        "start one with `aos start` (background) or `aos up` (foreground)",
        code="unavailable",
        exit_code=ExitCode.UNAVAILABLE,
    )


@cli.command(name="syscall")
@click.argument("name")
@click.argument("params", required=False, default="{}")
@click.option("--json", "as_json", is_flag=True, help="Errors as JSON too (results always are).")
@pass_context
def syscall_cmd(ctx: Context, name: str, params: str, as_json: bool) -> None:
    """Call any syscall on the running daemon: aos syscall NAME '{"json": "params"}'.

    \b
    Example:
      aos syscall agent.list '{"status": "active"}'
    """
    del as_json  # the result is JSON either way; the root group renders errors by it
    try:
        decoded = json.loads(params)
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"PARAMS is not JSON: {exc}") from None
    if not isinstance(decoded, dict):
        raise click.UsageError("PARAMS must be a JSON object")
    emit_json(asyncio.run(call(ctx.config, name, decoded, in_process=False)))
