"""The node's sandboxes (aos/sandbox.py) with real bubblewrap: which spawner runs a
workspace's commands, when a sandbox is built anew or closed, and what the
kernel learns of the processes in it."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aos import sandbox
from aos.bash import group_alive, run_bash
from aos.sandbox import Layout, Sandboxes, probe

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("bubblewrap")]
ENV = {"PATH": os.defpath}


@pytest.fixture
async def boxes(tmp_path: Path) -> AsyncIterator[Sandboxes]:
    layout = Layout.of(readable=[], hidden=[tmp_path / "state"], agent_socket=None)
    node = Sandboxes(probe("auto"), lambda: layout, tmp_path / "run" / "pasta")
    try:
        yield node
    finally:
        await node.aclose()


async def bash(node: Sandboxes, workspace: Path, command: str) -> str:
    spawner = node.spawner_for(str(workspace))
    result = await run_bash(
        command, spawner=spawner, cwd=str(workspace), env=ENV, time_limit=10, output_cap=4096
    )
    return result.output


async def test_one_sandbox_per_workspace_and_its_pids_are_the_hosts(
    boxes: Sandboxes, tmp_path: Path
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    assert boxes.spawner_for(str(one)) is boxes.spawner_for(str(one))
    assert boxes.spawner_for(str(one)) is not boxes.spawner_for(str(two))
    assert boxes.spawner_for(str(one), sandboxed=False) is boxes.plain

    spawner = boxes.spawner_for(str(one))
    pids: list[int] = []

    async def started(pid: int) -> None:
        pids.append(pid)

    running = asyncio.ensure_future(
        run_bash(
            "echo $$; sleep 30", spawner=spawner, cwd=str(one), env=ENV, time_limit=30,
            output_cap=4096, on_start=started,
        )
    )  # fmt: skip
    try:
        while not pids:  # noqa: ASYNC110 - the command starts in another process
            await asyncio.sleep(0.02)
        [pid] = pids
        assert group_alive(pid)  # a host pid: the kernel signals it as any other
        assert boxes.started_by_agent(pid)
        assert not boxes.started_by_agent(os.getpid())
        assert spawner.pid in boxes.pids()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert not group_alive(pid)  # cancelling the call killed its group


async def test_a_workspace_made_anew_gets_a_new_sandbox(
    boxes: Sandboxes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "RECHECK", 0.0)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    assert (await bash(boxes, workspace, "echo first > note; cat note")) == "first\n"
    old = boxes.spawner_for(str(workspace))
    shutil.rmtree(workspace)
    workspace.mkdir()  # e.g. the admin replaced it: the old sandbox holds the deleted one
    new = boxes.spawner_for(str(workspace))
    assert new is not old
    assert (await bash(boxes, workspace, "ls; echo second > note")) == ""
    assert (workspace / "note").read_text() == "second\n"  # the new directory, not the old


async def test_an_idle_sandbox_is_closed(
    boxes: Sandboxes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "RECHECK", 0.0)
    monkeypatch.setattr(sandbox, "IDLE_AFTER", 0.0)
    idle, busy = tmp_path / "idle", tmp_path / "busy"
    idle.mkdir()
    busy.mkdir()
    closed = boxes.spawner_for(str(idle))
    ran = await run_bash(
        "echo hi", spawner=closed, cwd=str(idle), env=ENV, time_limit=10, output_cap=4096
    )
    assert ran.output == "hi\n"
    bwrap = closed.pid
    assert bwrap is not None
    await bash(boxes, busy, "true")  # another workspace's command sweeps the idle ones
    assert boxes.spawner_for(str(idle)) is not closed
    for _ in range(100):  # closing it ends bubblewrap and everything in the sandbox
        if _gone(bwrap):
            break
        await asyncio.sleep(0.05)
    assert _gone(bwrap)


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"
