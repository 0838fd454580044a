"""The bash tool on its own, through a real spawner process: process groups, exit
codes, a failed start-up record never leaving a command running, the spawner
dying mid-command, and what a command inherits (stdin, signals, environment)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from aos.bash import BashResult, group_alive, run_bash
from aos.spawner import Spawner

pytestmark = pytest.mark.anyio

ENV = {"PATH": os.environ.get("PATH", os.defpath)}


@pytest.fixture
async def spawner() -> AsyncIterator[Spawner]:
    spawner = Spawner()
    yield spawner
    await spawner.aclose()


async def run(
    spawner: Spawner,
    command: str,
    cwd: Path | str,
    *,
    on_start: Callable[[int], Awaitable[None]] | None = None,
    time_limit: float = 30,
    env: dict[str, str] = ENV,
) -> BashResult:
    return await run_bash(
        command,
        spawner=spawner,
        cwd=str(cwd),
        env=env,
        time_limit=time_limit,
        output_cap=4096,
        on_start=on_start,
    )


async def bash(spawner: Spawner, command: str, cwd: Path) -> tuple[int | None, str]:
    result = await run(spawner, command, cwd)
    return result.exit_code, result.output


async def process_gone(pid: int) -> bool:
    """Whether process ``pid`` (not necessarily a child of ours) ends within 10 s."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, lambda: ended.done() or ended.set_result(None))
    try:
        await asyncio.wait_for(ended, 10)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return True


async def group_gone(pgid: int) -> bool:
    """Whether process group ``pgid`` is empty within 10 s (a SIGKILL takes a moment)."""
    for _ in range(1000):
        if not group_alive(pgid):
            return True
        await asyncio.sleep(0.01)
    return False


class Starts:
    """An ``on_start`` that records the process groups and lets a test wait for one."""

    def __init__(self) -> None:
        self.groups: list[int] = []
        self.event = asyncio.Event()

    async def __call__(self, pgid: int) -> None:
        self.groups.append(pgid)
        self.event.set()

    async def first(self) -> int:
        await asyncio.wait_for(self.event.wait(), 10)
        return self.groups[0]


async def test_exit_codes_and_output(spawner: Spawner, tmp_path: Path) -> None:
    assert await bash(spawner, "echo hi; exit 3", tmp_path) == (3, "hi\n")
    assert await bash(spawner, "pwd", tmp_path) == (0, f"{tmp_path}\n")
    assert await bash(spawner, "pwd", Path(".")) == (0, f"{Path.cwd()}\n")  # the kernel's
    assert await bash(spawner, "echo out; echo err >&2", tmp_path) == (0, "out\nerr\n")
    assert await bash(spawner, "kill -TERM $$", tmp_path) == (-signal.SIGTERM, "")


async def test_the_environment_is_exactly_the_one_given(spawner: Spawner, tmp_path: Path) -> None:
    result = await run(spawner, "env | sort", tmp_path, env={**ENV, "AOS_X": "1"})
    lines = set(result.output.splitlines())
    assert {"AOS_X=1", f"PATH={ENV['PATH']}", f"PWD={tmp_path}"} <= lines
    assert {line.split("=")[0] for line in lines} <= {"AOS_X", "PATH", "PWD", "SHLVL", "_"}


async def test_stdin_is_closed_and_sigpipe_has_its_default_action(
    spawner: Spawner, tmp_path: Path
) -> None:
    assert await bash(spawner, "cat; echo done", tmp_path) == (0, "done\n")
    # `yes` dies of SIGPIPE once head leaves (an ignored SIGPIPE would leave it writing)
    assert await bash(spawner, "yes | head -n 2; echo ${PIPESTATUS[0]}", tmp_path) == (
        0,
        f"y\ny\n{128 + signal.SIGPIPE}\n",
    )


async def test_each_command_is_its_own_process_group(spawner: Spawner, tmp_path: Path) -> None:
    result = await run(spawner, "ps -o pgid= -p $$", tmp_path)
    assert int(result.output) == result.pgid
    assert result.pgid != os.getpgid(0)


async def test_a_failing_on_start_kills_the_group(spawner: Spawner, tmp_path: Path) -> None:
    """If the command cannot be recorded, it must not run on unrecorded."""
    groups: list[int] = []

    async def refuse(pgid: int) -> None:
        groups.append(pgid)
        raise RuntimeError("the store is down")

    with pytest.raises(RuntimeError, match="the store is down"):
        await run(spawner, "sleep 30 & sleep 30", tmp_path, on_start=refuse)
    [pgid] = groups
    assert await group_gone(pgid)  # killed (its reparented children reaped a moment later)


@pytest.mark.parametrize(
    "command",
    [
        "echo before; sleep 30 & sleep 30",
        # the leader exits at once, but what it left running still holds the output
        "sleep 30 & echo before",
    ],
)
async def test_a_timeout_kills_everything_the_command_started(
    spawner: Spawner, tmp_path: Path, command: str
) -> None:
    result = await run(spawner, command, tmp_path, time_limit=0.5)
    assert result.status == "timeout"
    assert result.exit_code is None
    assert result.output.startswith("before\n")
    assert "[timed out after 0.5s" in result.output
    assert await group_gone(result.pgid)


async def test_cancelling_kills_the_group(spawner: Spawner, tmp_path: Path) -> None:
    starts = Starts()
    task = asyncio.ensure_future(run(spawner, "sleep 30", tmp_path, on_start=starts))
    pgid = await starts.first()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not group_alive(pgid)


async def test_a_missing_working_directory_is_a_result_not_a_crash(
    spawner: Spawner, tmp_path: Path
) -> None:
    started: list[int] = []

    async def on_start(pgid: int) -> None:
        started.append(pgid)

    missing = tmp_path / "gone"
    result = await run(spawner, "echo never", missing, on_start=on_start)
    assert result.status == "error"
    assert result.exit_code is None
    assert result.pgid == 0
    assert result.output == (
        f"[the command did not start: cannot use the working directory {missing}: "
        "No such file or directory]"
    )
    assert started == []  # nothing ran, so nothing is recorded as running
    assert await bash(spawner, "echo next", tmp_path) == (0, "next\n")


async def test_a_long_command_and_many_at_once(spawner: Spawner, tmp_path: Path) -> None:
    word = "x" * 100_000  # larger than a socket buffer: the request goes in pieces
    assert await bash(spawner, f"printf %s {word} | wc -c", tmp_path) == (0, "100000\n")
    results = await asyncio.gather(*(bash(spawner, f"exit {i}", tmp_path) for i in range(60)))
    assert results == [(i, "") for i in range(60)]


async def test_the_spawner_dying_kills_the_running_command_and_comes_back(
    spawner: Spawner, tmp_path: Path
) -> None:
    starts = Starts()
    task = asyncio.ensure_future(run(spawner, "sleep 30 & sleep 30", tmp_path, on_start=starts))
    pgid = await starts.first()
    first = spawner.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    result = await asyncio.wait_for(task, 10)
    assert result.status == "error"
    assert result.exit_code is None
    assert "the command spawner stopped while the command ran" in result.output
    assert await group_gone(pgid)
    assert await bash(spawner, "echo again", tmp_path) == (0, "again\n")
    assert spawner.pid not in (None, first)


async def test_closing_the_spawner_ends_its_process(tmp_path: Path) -> None:
    spawner = Spawner()
    assert await bash(spawner, "true", tmp_path) == (0, "")
    pid = spawner.pid
    assert pid is not None
    os.kill(pid, 0)  # it runs
    await spawner.aclose()
    assert await process_gone(pid)


def test_commands_run_from_event_loops_in_several_threads(tmp_path: Path) -> None:
    """Each loop has its own spawner; results never cross."""
    results: list[list[tuple[int | None, str]]] = []

    def in_thread(n: int) -> None:
        async def main() -> list[tuple[int | None, str]]:
            spawner = Spawner()
            try:
                return list(
                    await asyncio.gather(
                        *(bash(spawner, f"exit {n + i}", tmp_path) for i in range(5))
                    )
                )
            finally:
                await spawner.aclose()

        results.append(asyncio.run(main()))

    threads = [threading.Thread(target=in_thread, args=(n * 10,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [[(n * 10 + i, "") for i in range(5)] for n in range(3)]


async def test_a_command_inherits_no_descriptor_but_its_three(
    spawner: Spawner, tmp_path: Path
) -> None:
    result = await run(spawner, "cd /proc/$$/fd && echo *", tmp_path)
    assert result.output == "0 1 2 3\n"  # 3: the directory the glob itself is reading
