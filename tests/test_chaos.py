"""The chaos suite: faults injected into real dispatches, invariants checked after each.

- PostgreSQL stopped (like a crash) and started again mid-dispatch, on a private
  cluster of the test's own (tests/private_pg.py);
- ...

After each: no acknowledged fact lost, no tool call re-run, every cut call has
exactly one result that names the true cause, no process group of the session
alive, the session usable again.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import IN_CI, kernel_with_model
from private_pg import PrivateCluster, pg_bin

from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.testing import Reply, ScriptedLLM

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    bin_dir = pg_bin()
    if bin_dir is None:
        message = (
            "the chaos suite needs PostgreSQL's initdb and pg_ctl (apt-get install postgresql)"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="aos-chaos-pg-"))  # pytest's are the test user's alone
    cluster = PrivateCluster(root, bin_dir)
    cluster.start()
    try:
        yield cluster
    finally:
        if cluster.running():
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def chaos_kernel(
    cluster: PrivateCluster, tmp_path: Path, scripted_llm: ScriptedLLM
) -> AsyncIterator[Kernel]:
    if not cluster.running():
        cluster.start()
    url = f"{cluster.url}?schema=s_{tmp_path.name.replace('-', '_')}"
    async with kernel_with_model(url, tmp_path, scripted_llm, AOS_SANDBOX="off") as kernel:
        yield kernel


async def facts_of(kernel: Kernel, session_id: str) -> list[dict[str, Any]]:
    return [h["fact"] for h in await kernel.syscall(ADMIN, "session.history", {"id": session_id})]


async def until_started(kernel: Kernel, session_id: str) -> None:
    """Wait for the session's command to have started (its ``tool.call`` recorded)."""
    with anyio.fail_after(30):
        while not any(f["kind"] == "tool.call" for f in await facts_of(kernel, session_id)):  # noqa: ASYNC110 - a dispatch of its own
            await asyncio.sleep(0.05)


async def test_postgresql_stopped_and_started_mid_dispatch(
    chaos_kernel: Kernel, cluster: PrivateCluster, scripted_llm: ScriptedLLM, tmp_path: Path
) -> None:
    """The command finishes while the database is down; its result and the
    dispatch's end are recorded once it is back, with the outage and its length:
    never "lost: the daemon stopped" (it never did)."""
    kernel = chaos_kernel
    go = tmp_path / "go"
    scripted_llm.add(
        Reply.tool_call(f"while [ ! -e {go} ]; do sleep 0.05; done; echo finished"),
        Reply.text("this answer may come while the database is down"),
        Reply.text("still here"),
    )
    agent = await kernel.syscall(ADMIN, "agent.create", {"name": "a"})
    session = (await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]}))[
        "id"
    ]
    dispatch = asyncio.create_task(
        kernel.syscall(ADMIN, "session.dispatch", {"id": session, "message": "wait for go"})
    )

    await until_started(kernel, session)
    await asyncio.to_thread(cluster.stop)
    go.touch()  # the command ends while the database is down
    await asyncio.sleep(2)
    await asyncio.to_thread(cluster.start)
    outcome = await asyncio.wait_for(dispatch, 60)
    assert outcome["status"] == "failed", outcome
    assert outcome["error"].startswith("the database became unreachable ("), outcome
    assert " and was back " in outcome["error"]
    facts = await facts_of(kernel, session)
    [result] = [f for f in facts if f["kind"] == "tool.result"]
    assert (result.get("status", "ok"), result["output"]) == ("ok", "finished\n")
    kinds = [f["kind"] for f in facts]
    assert kinds.count("dispatch.finished") == 1
    assert kinds.count("tool.call") == 1  # never re-run
    assert len(facts) == len({str(f) for f in facts})  # none written twice
    assert facts[-1]["error"] == outcome["error"]
    scb = await kernel.syscall(ADMIN, "session.get", {"id": session})
    assert scb["status"] == "idle"
    again = await kernel.syscall(ADMIN, "session.dispatch", {"id": session, "message": "still?"})
    assert again["status"] == "completed", again["error"]
