"""The one tool: bash. A real subprocess per call.

Each call runs ``bash -c COMMAND`` in its own process group (so a timeout or an
interrupt kills everything it started), with stdin closed and stdout+stderr
captured together. The model sees at most ``output_cap`` bytes (head and tail,
with a marker saying how much was cut); the raw output, up to ``RAW_CAP``, goes
to RuntimeLog.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

BashStatus = Literal["ok", "error", "timeout", "interrupted"]
RAW_CAP = 4 * 1024 * 1024
"""Bytes of raw output kept for RuntimeLog; the rest is counted, not kept."""
KILL_GRACE = 1.0
"""Seconds between SIGTERM and SIGKILL of a process group."""


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


@functools.cache
def _use_pidfd_watcher() -> None:
    """Reap children through pidfds on Python 3.11, as 3.12+ does by default.

    3.11's default watcher starts a thread per child process (about half a
    millisecond of the loop's time each under load, and a thread hop per
    exit); a pidfd is watched by the event loop itself."""
    if sys.version_info >= (3, 12):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):  # an old kernel or a sandbox without pidfd_open
        return
    try:
        asyncio.set_child_watcher(_PidfdWatcher())
    except NotImplementedError:  # another event loop (uvloop) reaps its children itself
        return


class _PidfdWatcher(asyncio.AbstractChildWatcher):
    """3.12's pidfd watcher for 3.11: each child is watched by the loop that
    started it (3.11's own ``PidfdChildWatcher`` is bound to one loop)."""

    def __init__(self) -> None:
        self._children: dict[int, tuple[asyncio.AbstractEventLoop, int]] = {}

    def add_child_handler(self, pid: int, callback: Callable[..., object], *args: object) -> None:
        loop = asyncio.get_running_loop()
        pidfd = os.pidfd_open(pid)
        self._children[pid] = (loop, pidfd)
        loop.add_reader(pidfd, self._reap, pid, callback, args)

    def _reap(self, pid: int, callback: Callable[..., object], args: tuple[object, ...]) -> None:
        if not self.remove_child_handler(pid):
            return
        try:
            _, status = os.waitpid(pid, 0)
            returncode = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # reaped elsewhere: the status is lost
            returncode = 255
        callback(pid, returncode, *args)

    def remove_child_handler(self, pid: int) -> bool:
        child = self._children.pop(pid, None)
        if child is None:
            return False
        loop, pidfd = child
        loop.remove_reader(pidfd)
        os.close(pidfd)
        return True

    def attach_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Children are watched by the loop that starts them: nothing to attach."""

    def close(self) -> None:
        """Nothing is held between children."""

    def is_active(self) -> bool:
        return True

    def __enter__(self) -> _PidfdWatcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


def visible(raw: bytes, total: int, cap: int) -> tuple[str, int]:
    """The part of the output the model sees, and how many bytes were cut."""
    if total <= cap and len(raw) == total:
        return raw.decode(errors="replace"), 0
    head, tail = raw[: cap // 2], raw[-(cap - cap // 2) :] if len(raw) > cap // 2 else b""
    cut = total - len(head) - len(tail)
    marker = f"\n[... {cut} bytes of output cut: showing the first {len(head)} and the last {len(tail)} ...]\n"
    return head.decode(errors="replace") + marker + tail.decode(errors="replace"), cut


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal a process group; False if it is gone."""
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
    cwd: str,
    env: Mapping[str, str],
    time_limit: float,
    output_cap: int,
    on_start: Callable[[int], Awaitable[None]] | None = None,
) -> BashResult:
    """Run one command. Cancelling the caller, or ``on_start`` raising, kills the
    process group (status ``interrupted`` is then the caller's to record)."""
    started = time.monotonic()
    _use_pidfd_watcher()
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        command,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    pgid = process.pid
    chunks: list[bytes] = []
    kept = 0
    total = 0

    async def read_all() -> None:
        nonlocal kept, total
        assert process.stdout is not None
        while chunk := await process.stdout.read(65536):
            total += len(chunk)
            if kept < RAW_CAP:
                chunks.append(chunk[: RAW_CAP - kept])
                kept += len(chunks[-1])
        await process.wait()

    status: BashStatus
    try:
        if on_start is not None:
            await on_start(pgid)
        try:
            async with asyncio.timeout(time_limit):
                await read_all()
            status = "ok" if process.returncode == 0 else "error"
        except TimeoutError:
            status = "timeout"
            await _terminate(process, pgid)
    except BaseException:  # cancelled, or on_start failed: nothing may outlive the call
        await asyncio.shield(_terminate(process, pgid))
        raise
    raw = b"".join(chunks)
    output, cut = visible(raw, total, output_cap)
    if status == "timeout":
        output += f"\n[timed out after {time_limit:g}s: the command and everything it started were killed]"
    return BashResult(
        output=output,
        raw=raw,
        exit_code=process.returncode if status != "timeout" else None,
        status=status,
        truncated_bytes=cut,
        total_bytes=total,
        duration=time.monotonic() - started,
        pgid=pgid,
    )


async def _terminate(process: asyncio.subprocess.Process, pgid: int) -> None:
    """SIGTERM the group, SIGKILL it after a grace period, reap the leader."""
    kill_group(pgid, signal.SIGTERM)
    try:
        async with asyncio.timeout(KILL_GRACE):
            await process.wait()
    except TimeoutError:
        pass
    kill_group(pgid, signal.SIGKILL)  # stragglers of the group, even if the leader left
    with contextlib.suppress(ProcessLookupError):
        await process.wait()
