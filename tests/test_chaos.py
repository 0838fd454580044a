"""The chaos suite: faults injected into real dispatches, invariants checked after each.

- ``kill -9`` of a real daemon at a random moment of a multi-step dispatch (in
  the model's stream, in a command, in a burst of appends), on both backends,
  with a model that reuses one tool call id in every step;
- PostgreSQL stopped (like a crash) and started again mid-dispatch, on a private
  cluster of the test's own (tests/private_pg.py);
- the command spawner killed; a service SIGKILLed, and one SIGSTOPped.

After each: no acknowledged fact lost, no tool call re-run, every cut call has
exactly one result that names the true cause, no process group of the session
alive, the session usable again. The counts are printed at the end of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from aos_sdk import Client, ConnectionClosed, NotConnected
from conftest import IN_CI, copy_skill, kernel_with_model, poll_until, running_daemon
from private_pg import PrivateCluster, pg_bin
from test_main_job_cli import Project
from test_services import running, service

from aos import services
from aos.bash import group_alive
from aos.daemon import alive
from aos.kernel import Kernel
from aos.paths import Paths
from aos.principals import ADMIN
from aos.testing import Reply, ScriptedLLM

pytestmark = pytest.mark.anyio

COUNTS: Counter[str] = Counter()
"""trials, kills, cut dispatches, outages, facts checked, lost results, re-runs:
printed by conftest."""
SEED = int(os.environ.get("AOS_CHAOS_SEED", "15"))
"""The random choices of the kill trials (set AOS_CHAOS_SEED to replay others)."""
TRIALS = 5
"""kill -9 trials per backend."""


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
    COUNTS.update({"trials": 1, "outages": 1, "facts checked": len(facts)})


# -- kill -9 at random points -------------------------------------------------------------


def plan_of(rng: random.Random, ledger: Path, trial: int) -> list[tuple[str, float]]:
    """A dispatch of 2-5 steps: each command writes its tag to the ledger (a second
    line with one tag would be a re-run), some sleep; some replies come late."""
    steps = []
    for step in range(rng.randint(2, 5)):
        pause = rng.choice([0, 0.2, 0.6, 1.0])
        command = f"echo t{trial}s{step} >> {ledger}" + (f"; sleep {pause}" if pause else "")
        steps.append((command, rng.choice([0, 0, 0.3])))
    return steps


def scripted(plan: list[tuple[str, float]]) -> Any:
    """The model's answer to any request of the trial: the next step of the plan
    after the last user message (every call with the id ``call_0``), then a final
    answer; ``usable?`` gets ``usable again``."""

    def reply(body: dict[str, Any]) -> Reply:
        messages = body["messages"]
        last = max(i for i, m in enumerate(messages) if m["role"] == "user")
        if messages[last]["content"] == "usable?":
            return Reply.text("usable again")
        done = sum(1 for m in messages[last:] if m["role"] == "assistant" and m.get("tool_calls"))
        if done < len(plan):
            command, delay = plan[done]
            return Reply.tool_call(command, id="call_0", delay=delay)
        return Reply.text("all steps done, and this answer streams slowly", chunk=2, delay=0.2)

    return reply


async def collect(client: Client, session_id: str, acked: dict[int, dict[str, Any]]) -> None:
    """Every fact the daemon announced as committed, until it dies (the client does
    not wait for another: it was made with ``connect_timeout=0``)."""
    with contextlib.suppress(ConnectionClosed, NotConnected, OSError):
        async for event in client.subscribe(topics=["history.append"], session_id=session_id):
            acked[event.data["seq"]] = event.data["fact"]


def check_recovered(
    history: list[dict[str, Any]], acked: dict[int, dict[str, Any]], ledger: Path
) -> None:
    """The invariants, on a session's history after a kill -9 and a restart."""
    facts = {entry["seq"]: entry["fact"] for entry in history}
    assert sorted(facts) == list(range(1, len(facts) + 1))  # seq contiguous
    for seq, fact in acked.items():  # no acknowledged fact lost
        assert facts.get(seq) == fact, (seq, fact)
    COUNTS["facts checked"] += len(acked)
    ran = ledger.read_text().split() if ledger.exists() else []
    reruns = len(ran) - len(set(ran))
    COUNTS["re-runs"] += reruns
    assert reruns == 0, ran
    calls = [f for f in facts.values() if f["kind"] == "tool.call"]
    assert len({c["command"] for c in calls}) == len(calls)  # no command started twice
    for call in calls:
        assert not group_alive(call["pgid"]), call  # nothing of a cut call still runs
    answered: Counter[tuple[int, int]] = Counter()
    asked: list[tuple[int, int]] = []
    message = 0
    for seq, fact in sorted(facts.items()):
        if fact["kind"] == "message.assistant" and fact.get("tool_calls"):
            message = seq
            asked += [(seq, i) for i in range(len(fact["tool_calls"]))]
        elif fact["kind"] == "tool.result":
            answered[(message, fact["index"])] += 1
            if fact.get("status") == "lost":
                COUNTS["lost results"] += 1
                assert fact["output"] in (
                    "lost: the daemon stopped while this command ran; it was not re-run",
                    "not run: the daemon stopped before this command started",
                ), fact
    assert all(answered[call] == 1 for call in asked), (asked, answered)  # one result each
    ends = [f for f in facts.values() if f["kind"] == "dispatch.finished"]
    assert len(ends) == 1  # the cut dispatch is closed, once
    COUNTS["cut dispatches"] += ends[0]["status"] == "lost"
    assert set(answered) <= set(asked)


async def kill_9_trial(node: Project, llm: ScriptedLLM, rng: random.Random, trial: int) -> None:
    ledger = node.root / "ledger"
    llm.default = scripted(plan_of(rng, ledger, trial))
    started = node.aos("start")
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout.split()[2])
    socket = Paths.resolve(node.home).runtime_dir / "aos.sock"
    acked: dict[int, dict[str, Any]] = {}
    async with Client(socket, token="", connect_timeout=0) as client:
        agent = await client.call("agent.create", {"name": f"chaos{trial}"})
        session = (await client.call("session.create", {"agent_id": agent["agent"]["id"]}))["id"]
        watcher = asyncio.create_task(collect(client, session, acked))
        await asyncio.sleep(0.1)  # subscribed before anything is appended
        await client.call("session.dispatch", {"id": session, "message": "go", "wait": False})
        await asyncio.sleep(rng.uniform(0.05, 2.5))
        os.kill(pid, signal.SIGKILL)
        COUNTS["kills"] += 1
        with anyio.fail_after(10):
            while alive(pid):  # noqa: ASYNC110 - another process
                await asyncio.sleep(0.02)
        await asyncio.wait_for(watcher, 10)
    restarted = node.aos("start")  # recovers the cut dispatch
    assert restarted.returncode == 0, restarted.stderr
    async with Client(socket, token="") as client:
        history = await client.call("session.history", {"id": session})
        check_recovered(history, acked, ledger)
        again = await client.call("session.dispatch", {"id": session, "message": "usable?"})
        assert (again["status"], again["answer"]) == ("completed", "usable again"), again
    node.aos("stop")
    COUNTS["trials"] += 1


async def test_kill_9_at_random_points_with_reused_call_ids(db_url: str, tmp_path: Path) -> None:
    rng = random.Random(f"{SEED}-{db_url.split(':')[0]}")
    for trial in range(TRIALS):
        root = tmp_path / f"trial{trial}"
        (root / "skills").mkdir(parents=True)
        with ScriptedLLM() as llm:
            node = Project(root, llm)
            node.env.update(AOS_DB_URL=db_url, AOS_SANDBOX="off", AOS_DEFAULT_SKILLS="aos-context")
            try:
                await kill_9_trial(node, llm, rng, trial)
            finally:
                node.aos("stop")
                shutil.rmtree(node.home, ignore_errors=True)


# -- the spawner and the services -----------------------------------------------------------


async def new_dispatch(kernel: Kernel, message: str = "go") -> tuple[dict[str, Any], str]:
    """A new agent's session dispatched ``message``: ``(outcome, session id)``."""
    agent = await kernel.syscall(ADMIN, "agent.create", {"name": f"chaos-{os.urandom(4).hex()}"})
    session = (await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]}))[
        "id"
    ]
    outcome = await kernel.syscall(ADMIN, "session.dispatch", {"id": session, "message": message})
    return outcome, session


async def results_of(kernel: Kernel, session_id: str) -> list[dict[str, Any]]:
    return [f for f in await facts_of(kernel, session_id) if f["kind"] == "tool.result"]


async def test_the_spawner_killed_mid_command(
    db_url: str, tmp_path: Path, scripted_llm: ScriptedLLM
) -> None:
    """The command is killed with it and says so; the next command gets a new spawner."""
    async with kernel_with_model(db_url, tmp_path, scripted_llm, AOS_SANDBOX="off") as kernel:
        scripted_llm.add(Reply.tool_call("sleep 30", id="call_0"), Reply.text("noted"))
        dispatch = asyncio.create_task(new_dispatch(kernel))
        with anyio.fail_after(30):
            while not kernel.sandboxes.plain.groups():  # noqa: ASYNC110 - the dispatch's task
                await asyncio.sleep(0.02)
        [group] = kernel.sandboxes.plain.groups()
        assert kernel.sandboxes.plain.pid is not None
        os.kill(kernel.sandboxes.plain.pid, signal.SIGKILL)
        COUNTS["kills"] += 1
        outcome, session = await asyncio.wait_for(dispatch, 30)
        assert outcome["status"] == "completed", outcome
        [result] = await results_of(kernel, session)
        assert result["status"] == "error"
        assert result["output"].endswith(
            "[the command spawner stopped while the command ran: the command was killed]"
        )
        assert not group_alive(group)
        scripted_llm.add(Reply.tool_call("echo alive", id="call_0"), Reply.text("fine"))
        outcome, session = await new_dispatch(kernel)
        assert outcome["status"] == "completed", outcome
        [result] = await results_of(kernel, session)
        assert (result.get("status", "ok"), result["output"]) == ("ok", "alive\n")
    COUNTS["trials"] += 1


@pytest.mark.parametrize("signum", [signal.SIGSTOP, signal.SIGKILL], ids=["SIGSTOP", "SIGKILL"])
async def test_a_guard_service_stopped_or_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signum: signal.Signals
) -> None:
    """While my-guard cannot answer, its gate fails closed (a command is refused,
    saying why, never run unguarded); the supervisor restarts it (a stopped one
    when its pings go unanswered) and it guards again."""
    monkeypatch.setattr(services, "PING_INTERVAL", 0.2)
    monkeypatch.setattr(services, "PING_DEADLINE", 1.0)
    copy_skill("my-guard", tmp_path)
    with ScriptedLLM() as llm:
        async with running_daemon(
            tmp_path, OPENROUTER_BASE_URL=llm.base_url, AOS_MODEL="m", AOS_HOOK_TIMEOUT="0.5"
        ) as daemon:
            kernel = daemon.kernel
            assert kernel is not None
            await poll_until(lambda: running(daemon, "my-guard"))
            first = service(daemon, "my-guard")["pid"]
            os.kill(first, signum)
            COUNTS["kills"] += 1
            marker = tmp_path / "ran-unguarded"
            llm.add(Reply.tool_call(f"touch {marker}", id="call_0"), Reply.text("refused"))
            outcome, session = await new_dispatch(kernel)
            assert outcome["status"] == "completed", outcome
            [result] = await results_of(kernel, session)
            assert (result["status"], result["rejected_by"]) == ("rejected", "my-guard"), result
            assert not marker.exists()
            await poll_until(
                lambda: running(daemon, "my-guard") and service(daemon, "my-guard")["pid"] != first,
                30,
            )
            llm.add(
                Reply.tool_call("rm -rf /", id="call_0"),
                Reply.tool_call("echo guarded", id="call_0"),
                Reply.text("done"),
            )
            outcome, session = await new_dispatch(kernel)
            assert outcome["status"] == "completed", outcome
            blocked, passed = await results_of(kernel, session)
            assert blocked["output"] == "rejected by my-guard: blocked: rm -rf /"
            assert passed["output"] == "guarded\n"
    COUNTS["trials"] += 1
