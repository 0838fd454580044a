"""The one tool: bash. Its schema for the model, the model's call read into a
:class:`~aos.facts.ToolCallRequest`, and running it: a real subprocess per call.

Each call runs ``bash -c COMMAND`` in its own process group (so a timeout or an
interrupt kills everything it started), with stdin closed and stdout+stderr
captured together. The kernel's :class:`~aos.spawner.Spawner` starts it (off the
event loop's thread); the output is read and the group signalled from here.
The model sees at most ``output_cap`` bytes (head and tail, with a marker
saying how much was cut); the raw output, up to ``RAW_CAP``, goes to RuntimeLog.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aos.facts import ToolCallRequest
from aos.spawner import Child, NoWorkingDirectory, Spawner, SpawnerError

BashStatus = Literal["ok", "error", "timeout", "interrupted"]
RAW_CAP = 4 * 1024 * 1024
"""Bytes of raw output kept for RuntimeLog; the rest is counted, not kept."""
KILL_GRACE = 1.0
"""Seconds between SIGTERM and SIGKILL of a process group."""

BASH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "bash",
        "description": (
            "Run a bash command in the agent's workspace directory and return its output "
            "(stdout and stderr) and exit status."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The bash command to run."},
                "timeout": {
                    "type": "number",
                    "description": "Seconds before the command is killed (optional).",
                },
            },
            "required": ["command"],
        },
    },
}
"""The OpenAI tool schema of the single tool, ``bash``."""


def request_of(call_id: str, name: str, arguments: str) -> ToolCallRequest:
    """A tool call as the model asked for it, recorded as such: bad arguments (or
    another tool) become a call whose ``error`` the model is told as its result."""
    try:
        args = json.loads(arguments or "{}")
    except json.JSONDecodeError as exc:
        return ToolCallRequest(
            id=call_id, command="", timeout=None, error=f"invalid JSON arguments: {exc}"
        )
    if name != "bash":
        return ToolCallRequest(
            id=call_id, command="", error=f"unknown tool {name!r}: the only tool is bash"
        )
    if not isinstance(args, dict) or not isinstance(args.get("command"), str):
        return ToolCallRequest(
            id=call_id,
            command="",
            error='arguments must be {"command": "...", "timeout": seconds}',
        )
    timeout = args.get("timeout")
    return ToolCallRequest(
        id=call_id,
        command=args["command"],
        timeout=float(timeout) if isinstance(timeout, int | float) and timeout > 0 else None,
    )


@dataclass(frozen=True)
class BashResult:
    output: str
    """What the model sees (capped, with a marker when cut)."""
    raw: bytes
    """The output as produced (up to RAW_CAP) for RuntimeLog."""
    exit_code: int | None
    status: BashStatus
    truncated_bytes: int
    total_bytes: int
    duration: float
    pgid: int
    """The command's process group (its pid); 0 if it did not start."""


def visible(raw: bytes, total: int, cap: int) -> tuple[str, int]:
    """The part of the output the model sees, and how many bytes were cut."""
    if total <= cap and len(raw) == total:
        return raw.decode(errors="replace"), 0
    head, tail = raw[: cap // 2], raw[-(cap - cap // 2) :] if len(raw) > cap // 2 else b""
    cut = total - len(head) - len(tail)
    marker = f"\n[... {cut} bytes of output cut: showing the first {len(head)} and the last {len(tail)} ...]\n"
    return head.decode(errors="replace") + marker + tail.decode(errors="replace"), cut


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal a process group; False if it is gone (pgid 0: it ended before its
    pid was known; never the kernel's own group)."""
    if pgid <= 1:
        return False
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def group_alive(pgid: int) -> bool:
    """Whether any live (not zombie) process is in group ``pgid`` (Linux /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


async def run_bash(
    command: str,
    *,
    spawner: Spawner,
    cwd: str,
    env: Mapping[str, str],
    time_limit: float,
    output_cap: int,
    on_start: Callable[[int], Awaitable[None]] | None = None,
) -> BashResult:
    """Run one command through ``spawner``. Cancelling the caller, or ``on_start``
    raising, kills the process group (status ``interrupted`` is then the caller's
    to record). A command that cannot start (its working directory is missing,
    bash cannot be run) is a result with status ``error``, exit code None and pgid
    0, and ``on_start`` is not called; a spawner that cannot be had raises
    :class:`~aos.spawner.SpawnerError`."""
    started = time.monotonic()
    try:
        child = await spawner.spawn(command, cwd=cwd, env=env)
    except OSError as exc:
        what = f"the working directory {cwd}" if isinstance(exc, NoWorkingDirectory) else "bash"
        return BashResult(
            output=f"[the command did not start: cannot use {what}: {exc.strerror}]",
            raw=b"",
            exit_code=None,
            status="error",
            truncated_bytes=0,
            total_bytes=0,
            duration=time.monotonic() - started,
            pgid=0,
        )
    reader = _Output(child.output)
    status: BashStatus
    exit_code: int | None = None
    note = ""
    try:
        if on_start is not None:
            await on_start(child.pid)
        try:
            async with asyncio.timeout(time_limit):
                exit_code = await asyncio.shield(child.exited)
                await asyncio.shield(reader.eof)  # what it left running may still write
            status = "ok" if exit_code == 0 else "error"
        except TimeoutError:
            status, exit_code = "timeout", None  # even if the leader was done: the group was not
            note = f"\n[timed out after {time_limit:g}s: the command and everything it started were killed]"
            await _terminate(child)
        except SpawnerError:  # its exit code is lost with the spawner: nothing may outlive it
            status = "error"
            note = "\n[the command spawner stopped while the command ran: the command was killed]"
            kill_group(child.pid)
    except BaseException:  # cancelled, or on_start failed: nothing may outlive the call
        await asyncio.shield(_terminate(child))
        raise
    finally:
        reader.close()
        if child.exited.done() and not child.exited.cancelled():
            child.exited.exception()  # retrieved: a lost spawner is reported above
    raw = b"".join(reader.chunks)
    output, cut = visible(raw, reader.total, output_cap)
    return BashResult(
        output=output + note,
        raw=raw,
        exit_code=exit_code,
        status=status,
        truncated_bytes=cut,
        total_bytes=reader.total,
        duration=time.monotonic() - started,
        pgid=child.pid,
    )


class _Output:
    """Reads a command's output pipe on the event loop (up to RAW_CAP kept)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.chunks: list[bytes] = []
        self.kept = 0
        self.total = 0
        self._loop = asyncio.get_running_loop()
        self.eof: asyncio.Future[None] = self._loop.create_future()
        self._loop.add_reader(fd, self._readable)

    def _readable(self) -> bool:
        """Take one read; False once nothing more is there for now."""
        try:
            chunk = os.read(self.fd, 65536)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:  # not expected of a pipe: the output ends here
            chunk = f"\n[reading the output failed: {exc}]".encode()
            self.chunks.append(chunk)
            chunk = b""
        if not chunk:
            self._loop.remove_reader(self.fd)
            if not self.eof.done():
                self.eof.set_result(None)
            return False
        self.total += len(chunk)
        if self.kept < RAW_CAP:
            self.chunks.append(chunk[: RAW_CAP - self.kept])
            self.kept += len(self.chunks[-1])
        return True

    def close(self) -> None:
        """Take what is already in the pipe, stop reading and close it."""
        if not self.eof.done():
            while self._readable():
                pass
            self._loop.remove_reader(self.fd)
            self.eof.cancel()
        os.close(self.fd)


async def _terminate(child: Child) -> None:
    """SIGTERM the group, SIGKILL it after a grace period, wait for the leader."""
    kill_group(child.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError, SpawnerError):
        async with asyncio.timeout(KILL_GRACE):
            await asyncio.shield(child.exited)
    kill_group(child.pid, signal.SIGKILL)  # stragglers of the group, even if the leader left
    with contextlib.suppress(TimeoutError, SpawnerError):
        async with asyncio.timeout(KILL_GRACE):
            await asyncio.shield(child.exited)
