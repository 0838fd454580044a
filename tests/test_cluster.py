"""Scale-out: three real daemons (three AOS_HOMEs, `aos start`) on one PostgreSQL
schema, the scripted model behind them.

- 100 sessions dispatched through node A's socket: each dispatch runs exactly
  once, on some node (each node runs some), every history gap-free;
- kill -9 of node B while its dispatch runs a command, at 10 different moments:
  node A or C records the cut call as lost, nothing lost or repeated, the
  command never re-run, the session usable again (how soon is measured, not
  asserted: bench/bench_cluster.py's failover time against TTL + interval);
- `aos run` through node A for a session placed on node B prints what it prints
  through node B; `aos status --json` shows the cluster;
- a second daemon on one SQLite file is refused with one sentence.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from aos_sdk import Client, SyscallFailed
from test_main_job_cli import Project

from aos.testing import NodeProcess, Reply, ScriptedLLM, running_nodes

pytestmark = pytest.mark.anyio

NODE_TTL = 1.5
CLAIM_INTERVAL = 0.2
KILLS = 10


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


def settings(llm: ScriptedLLM, pg_url: str, skills: str = "aos-context") -> dict[str, str]:
    """Every node's: the test's database and model, short failover times."""
    return {
        "AOS_DB_URL": pg_url,
        "AOS_MODEL": "test-model",
        "OPENROUTER_BASE_URL": llm.base_url,
        "AOS_NODE_TTL": str(NODE_TTL),
        "AOS_CLAIM_INTERVAL": str(CLAIM_INTERVAL),
        "AOS_DEFAULT_SKILLS": skills,
    }


@pytest.fixture
def nodes(tmp_path: Path, llm: ScriptedLLM, pg_url: str) -> Iterator[list[NodeProcess]]:
    (tmp_path / "skills").mkdir()
    with running_nodes(tmp_path, 3, **settings(llm, pg_url)) as cluster:
        yield cluster


async def history_of(client: Client, session: str) -> list[dict[str, Any]]:
    """The session's facts, after checking their seqs are 1..n (no gap, no repeat)."""
    entries = await client.call("session.history", {"id": session})
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    return [e["fact"] for e in entries]


async def test_100_dispatches_through_one_node_run_once_each_over_all_three(
    nodes: list[NodeProcess], llm: ScriptedLLM
) -> None:
    a = nodes[0]
    llm.default = lambda body: Reply.text("done")
    async with a.client() as client:
        agent = (await client.call("agent.create", {"name": "many"}))["agent"]["id"]
        sessions = [
            (await client.call("session.create", {"agent_id": agent}))["id"] for _ in range(100)
        ]
        outcomes = await asyncio.gather(
            *(client.call("session.dispatch", {"id": s, "message": "go"}) for s in sessions)
        )
        assert [o["status"] for o in outcomes] == ["completed"] * 100
        ran: Counter[str] = Counter()
        for session, outcome in zip(sessions, outcomes, strict=True):
            history = await history_of(client, session)
            started = [f for f in history if f["kind"] == "dispatch.started"]
            finished = [f for f in history if f["kind"] == "dispatch.finished"]
            assert len(started) == len(finished) == 1  # exactly once
            assert started[0]["dispatch_id"] == outcome["dispatch_id"]
            ran[started[0]["node"]] += 1
        assert set(ran) == {node.id for node in nodes}, ran  # each node ran some
        status = await client.call("kernel.status")
        cluster = status["cluster"]
        assert cluster["shared"] is True
        assert {n["id"] for n in cluster["nodes"] if n["alive"]} == {node.id for node in nodes}


async def test_kill_9_of_the_running_node_is_recovered_by_another(
    nodes: list[NodeProcess], llm: ScriptedLLM, tmp_path: Path
) -> None:
    """A dispatch placed on node B runs `sleep`; B is killed at a random moment;
    A or C records the call as lost, never re-runs it; the session goes on."""
    a, b, _ = nodes
    rng = random.Random(20)
    workspace = tmp_path / "workspace"  # where the sandboxed command may write
    workspace.mkdir()
    marker = workspace / "runs"
    async with a.client() as client:
        agent = (await client.call("agent.create", {"name": "pinned"}))["agent"]
        for trial in range(KILLS):
            config = {"placement": f"node:{b.id}", "workspace": str(workspace)}
            await client.call("agent.update", {"id": agent["id"], "config": config})
            session = (await client.call("session.create", {"agent_id": agent["id"]}))["id"]
            command = f"echo t{trial} >> runs; sleep 30"
            llm.default = lambda body, command=command: (
                Reply.text("usable again")
                if body["messages"][-1]["content"] == "usable?"
                else Reply.tool_call(command)
            )
            started = await client.call(
                "session.dispatch", {"id": session, "message": "go", "wait": False}
            )
            assert started["status"] == "running"
            with anyio.fail_after(20):
                while f"t{trial}" not in (marker.read_text() if marker.exists() else ""):  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            await asyncio.sleep(rng.uniform(0, 0.5))
            b.kill()
            with anyio.fail_after(NODE_TTL + CLAIM_INTERVAL + 5):
                while True:
                    history = await history_of(client, session)
                    if any(f["kind"] == "dispatch.finished" for f in history):
                        break
                    await asyncio.sleep(0.05)
            with anyio.fail_after(5):  # the recovering node frees the session right after
                while (await client.call("session.get", {"id": session}))["lease_owner"]:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            results = [f for f in history if f["kind"] == "tool.result"]
            assert len(results) == 1 and results[0]["status"] == "lost", results
            assert f"node {b.id} died" in results[0]["output"]
            [end] = [f for f in history if f["kind"] == "dispatch.finished"]
            assert end["status"] == "lost"
            assert marker.read_text().split().count(f"t{trial}") == 1  # never re-run
            config["placement"] = "any"
            await client.call("agent.update", {"id": agent["id"], "config": config})
            again = await client.call("session.dispatch", {"id": session, "message": "usable?"})
            assert (again["status"], again["answer"]) == ("completed", "usable again")
            b.start()  # the same node again, for the next trial
        assert len(marker.read_text().split()) == KILLS


async def test_aos_run_through_another_node_prints_the_same_stream(
    nodes: list[NodeProcess], llm: ScriptedLLM
) -> None:
    a, b, _ = nodes
    async with a.client() as client:
        agent = (await client.call("agent.create", {"name": "onb"}))["agent"]["id"]
        await client.call("agent.update", {"id": agent, "config": {"placement": f"node:{b.id}"}})
    printed = []
    for via in (b, a):
        llm.add(
            Reply.tool_call("echo hello from the node"),
            Reply.text("It said hello, streamed in small pieces.", chunk=3),
        )
        run = via.aos("run", "--agent", "onb", "say hello")
        assert run.returncode == 0, run.stderr
        printed.append(run.stdout)
        session = run.stderr.strip().split()[-1]
        async with via.client() as client:
            history = await history_of(client, session)
        [started] = [f for f in history if f["kind"] == "dispatch.started"]
        assert started["node"] == b.id
    assert printed[0] == printed[1]
    assert "It said hello, streamed in small pieces." in printed[1]


async def test_placement_by_label_and_a_stopped_node_claims_nothing(
    tmp_path: Path, llm: ScriptedLLM, pg_url: str
) -> None:
    """An agent placed on a label runs on the node that has it; once that node
    stops, its dispatches are refused at once (no live node may run them), and an
    agent placed anywhere never runs on the stopped node."""
    (tmp_path / "skills").mkdir()
    llm.default = lambda body: Reply.text("done")
    with running_nodes(tmp_path, 2, **settings(llm, pg_url)) as (a, b):
        b.env["AOS_NODE_LABELS"] = "gpu"
        b.aos("stop")
        b.start()  # again, with its label
        async with a.client() as client:
            gpu = (await client.call("agent.create", {"name": "gpu"}))["agent"]["id"]
            await client.call("agent.update", {"id": gpu, "config": {"placement": "label:gpu"}})
            anywhere = (await client.call("agent.create", {"name": "anywhere"}))["agent"]["id"]
            on_gpu = (await client.call("session.create", {"agent_id": gpu}))["id"]
            ran = await client.call("session.dispatch", {"id": on_gpu, "message": "go"})
            assert ran["status"] == "completed"
            [started] = [
                f for f in await history_of(client, on_gpu) if f["kind"] == "dispatch.started"
            ]
            assert started["node"] == b.id
            b.aos("stop")
            nodes = {n["id"]: n for n in (await client.call("kernel.status"))["cluster"]["nodes"]}
            assert nodes[b.id]["state"] == "stopped" and not nodes[b.id]["alive"]
            with pytest.raises(SyscallFailed) as refused:
                await client.call("session.dispatch", {"id": on_gpu, "message": "again"})
            assert refused.value.code == "unavailable"
            assert (
                "no live node may run this dispatch (placement label:gpu" in refused.value.message
            )
            for _ in range(5):
                session = (await client.call("session.create", {"agent_id": anywhere}))["id"]
                await client.call("session.dispatch", {"id": session, "message": "go"})
                [started] = [
                    f for f in await history_of(client, session) if f["kind"] == "dispatch.started"
                ]
                assert started["node"] == a.id


async def test_a_queued_dispatch_whose_only_node_froze_is_refused_not_left_waiting(
    tmp_path: Path, llm: ScriptedLLM, pg_url: str
) -> None:
    """The one node with the agent's label is alive when the dispatch is queued, then
    stops answering (SIGSTOP) before it claims it: once that node is past its TTL,
    another node refuses the request, and the caller hears why."""
    (tmp_path / "skills").mkdir()
    llm.default = lambda body: Reply.text("done")
    with running_nodes(tmp_path, 2, **settings(llm, pg_url)) as (a, b):
        b.env["AOS_NODE_LABELS"] = "gpu"
        b.aos("stop")
        b.start()
        async with a.client() as client:
            gpu = (await client.call("agent.create", {"name": "gpu"}))["agent"]["id"]
            await client.call("agent.update", {"id": gpu, "config": {"placement": "label:gpu"}})
            session = (await client.call("session.create", {"agent_id": gpu}))["id"]
            os.kill(b.pid, signal.SIGSTOP)  # alive by its last heartbeat, claiming nothing
            try:
                with pytest.raises(SyscallFailed) as refused:
                    await client.call("session.dispatch", {"id": session, "message": "go"})
            finally:
                os.kill(b.pid, signal.SIGCONT)
            assert refused.value.code == "unavailable"
            assert "no live node may run this dispatch (placement label:gpu; it waited" in (
                refused.value.message
            )
            kinds = [f["kind"] for f in await history_of(client, session)]
            assert "dispatch.started" not in kinds  # it never ran
            [said] = await client.call(
                "log.read", {"session_id": session, "kind": "cluster.refused"}
            )
            assert said["level"] == "warning" and "placement label:gpu" in said["message"]


def test_a_second_daemon_on_one_sqlite_file_is_refused(tmp_path: Path, llm: ScriptedLLM) -> None:
    database = f"sqlite://{tmp_path / 'one.db'}"
    first, second = Project(tmp_path, llm), Project(tmp_path, llm)
    for project in (first, second):
        project.env["AOS_DB_URL"] = database
    try:
        assert first.aos("start").returncode == 0
        refused = second.aos("start")
        assert refused.returncode != 0
        message = refused.stderr.strip()
        assert f"the SQLite database {tmp_path / 'one.db'} is in use by another daemon" in message
        assert "SQLite serves one node" in message
        assert len(message.splitlines()) == 1, message
    finally:
        for project in (first, second):
            project.aos("stop")
            shutil.rmtree(project.home, ignore_errors=True)


async def test_an_a2a_wake_whose_target_node_dies_is_answered_once(
    tmp_path: Path, llm: ScriptedLLM, pg_url: str
) -> None:
    """The lead (node A) wakes a worker placed on node B; B dies while the worker's
    command runs: another node records it lost, A's aos-a2a answers the lead with
    that outcome, once, and the command is never run again."""
    (tmp_path / "skills").mkdir()
    workspace = tmp_path / "workspace"
    workspace.mkdir()

    def script(body: dict[str, Any]) -> Reply:
        last = body["messages"][-1]
        text = str(last.get("content") or "")
        if last["role"] == "tool":
            return Reply.text("ok")
        if text == "delegate":
            return Reply.tool_call("a2a send worker --wake 'count the runs'")
        if "needs an answer" in text:
            return Reply.tool_call("echo w >> runs; sleep 30")
        return Reply.text("noted the reply")

    llm.default = script
    with running_nodes(tmp_path, 3, **settings(llm, pg_url, "aos-context,aos-a2a")) as nodes:
        a, b, _ = nodes
        async with a.client() as client:
            lead = (await client.call("agent.create", {"name": "lead"}))["agent"]["id"]
            child = {"name": "worker", "parent": lead}  # a2a's policy: one agent tree
            worker = (await client.call("agent.create", child))["agent"]["id"]
            await client.call("agent.update", {"id": lead, "config": {"placement": f"node:{a.id}"}})
            config = {"placement": f"node:{b.id}", "workspace": str(workspace)}
            await client.call("agent.update", {"id": worker, "config": config})
            session = (await client.call("session.create", {"agent_id": lead}))["id"]
            sent = await client.call("session.dispatch", {"id": session, "message": "delegate"})
            assert sent["status"] == "completed", sent
            with anyio.fail_after(30):
                while not (workspace / "runs").exists():  # noqa: ASYNC110 - another process
                    await asyncio.sleep(0.02)
            b.kill()
            with anyio.fail_after(NODE_TTL + CLAIM_INTERVAL + 20):
                while True:
                    facts = await history_of(client, session)
                    replies = [f for f in facts if f["kind"] == "a2a.message" and f.get("reply_to")]
                    if replies and facts[-1]["kind"] == "dispatch.finished":
                        break
                    await asyncio.sleep(0.05)
            assert len(replies) == 1, replies
            assert replies[0]["text"].startswith("[lost] node "), replies[0]
            assert f"{b.id} died" in replies[0]["text"]
            assert (workspace / "runs").read_text() == "w\n"  # never run again


def test_a_cluster_setting_that_is_no_number_of_seconds_is_one_sentence(
    tmp_path: Path, llm: ScriptedLLM
) -> None:
    project = Project(tmp_path, llm)
    project.env["AOS_NODE_TTL"] = "soon"
    try:
        refused = project.aos("start")
        assert refused.returncode != 0
        assert refused.stderr.strip() == (
            "Error: the daemon could not start: configuration error: "
            "AOS_NODE_TTL must be a number of seconds, not 'soon'"
        )
    finally:
        project.aos("stop")
        shutil.rmtree(project.home, ignore_errors=True)
