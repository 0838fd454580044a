"""The bash tool on its own: process groups, exit codes, and a failed start-up
record never leaving a command running."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from aos.bash import group_alive, run_bash

pytestmark = pytest.mark.anyio

ENV = {"PATH": os.environ.get("PATH", os.defpath)}


async def bash(
    command: str, cwd: Path, on_start: Callable[[int], Awaitable[None]] | None = None
) -> tuple[int | None, str]:
    result = await run_bash(
        command, cwd=str(cwd), env=ENV, time_limit=30, output_cap=4096, on_start=on_start
    )
    return result.exit_code, result.output


async def test_exit_codes_and_output(tmp_path: Path) -> None:
    assert await bash("echo hi; exit 3", tmp_path) == (3, "hi\n")
    assert await bash("pwd", tmp_path) == (0, f"{tmp_path}\n")


async def test_a_failing_on_start_kills_the_group(tmp_path: Path) -> None:
    """If the command cannot be recorded, it must not run on unrecorded."""
    groups: list[int] = []

    async def refuse(pgid: int) -> None:
        groups.append(pgid)
        raise RuntimeError("the store is down")

    with pytest.raises(RuntimeError, match="the store is down"):
        await bash("sleep 30 & sleep 30", tmp_path, on_start=refuse)
    [pgid] = groups
    assert not group_alive(pgid)


def test_commands_run_from_event_loops_in_several_threads(tmp_path: Path) -> None:
    """Children are reaped by the loop that started them, whichever thread it is in."""
    results: list[list[tuple[int | None, str]]] = []

    def in_thread(n: int) -> None:
        async def main() -> list[tuple[int | None, str]]:
            return list(await asyncio.gather(*(bash(f"exit {n + i}", tmp_path) for i in range(5))))

        results.append(asyncio.run(main()))

    threads = [threading.Thread(target=in_thread, args=(n * 10,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [[(n * 10 + i, "") for i in range(5)] for n in range(3)]
