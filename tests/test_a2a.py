"""aos-a2a end to end: real daemon, the skill's real service, real bash running
the agents' `a2a` command, the scripted model deciding per request."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aos_sdk import Client
from conftest import poll_until, running_daemon

from aos.daemon import Daemon
from aos.hookspecs import hookimpl
from aos.testing import Reply, ScriptedLLM, free_port
from aos_stdskills.aos_a2a.__main__ import UsageError, parse

pytestmark = pytest.mark.anyio


def a2a_running(daemon: Daemon) -> bool:
    assert daemon.kernel is not None
    assert daemon.kernel.services is not None
    return any(
        s["skill"] == "aos-a2a" and s["state"] == "running" for s in daemon.kernel.services.status()
    )


async def history(client: Client, session_id: str) -> list[dict[str, Any]]:
    return [h["fact"] for h in await client.call("session.history", {"id": session_id})]


async def messages(client: Client, session_id: str) -> list[dict[str, Any]]:
    return [f for f in await history(client, session_id) if f["kind"] == "a2a.message"]


async def wait_until(check: Any, seconds: float = 30) -> None:
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - the daemon's work, seen through syscalls
            await asyncio.sleep(0.1)


def delegation(body: dict[str, Any]) -> Reply:
    """The model of all three agents, deciding from what each request shows."""
    msgs = body["messages"]
    last = msgs[-1]
    if last["role"] == "tool":
        previous = next(m for m in reversed(msgs) if m["role"] == "assistant")
        commands = [
            json.loads(c["function"]["arguments"])["command"] for c in previous["tool_calls"]
        ]
        if commands[0].startswith("a2a send"):
            return Reply.text("Delegated both parts; waiting for the replies.")
        return Reply.text(f"part done: {last['content'].splitlines()[0]}")
    user = str(last["content"])
    if user.startswith("Split the work"):
        return Reply.tool_calls(
            ['a2a send w1 "count the files" --wake', 'a2a send w2 "measure the size" --wake']
        )
    if "needs an answer" in user:
        return Reply.tool_call('echo "done by $AOS_AGENT_ID"')
    replies = [m for m in msgs if m["role"] == "user" and "replying to msg_" in str(m["content"])]
    if len(replies) == 2:
        return Reply.text("FINAL: both workers answered.")
    return Reply.text("One reply so far.")


async def test_lead_delegates_two_subtasks_with_wake(tmp_path: Path) -> None:
    with ScriptedLLM(default=delegation) as llm:
        async with running_daemon(
            tmp_path, OPENROUTER_BASE_URL=llm.base_url, AOS_MODEL="m"
        ) as daemon:
            await poll_until(lambda: a2a_running(daemon))
            async with Client(daemon.paths.control_socket, token="") as client:
                lead = (await client.call("agent.create", {"name": "lead"}))["agent"]["id"]
                w1 = (await client.call("agent.create", {"name": "w1", "parent": lead}))["agent"][
                    "id"
                ]
                w2 = (await client.call("agent.create", {"name": "w2", "parent": lead}))["agent"][
                    "id"
                ]
                session = (await client.call("session.create", {"agent_id": lead}))["id"]
                await client.call("session.dispatch", {"id": session, "message": "Split the work"})
                # (fast workers may answer while the lead is still in that dispatch: their
                # replies then show up in its next step)
                sent = [f for f in await history(client, session) if f["kind"] == "tool.result"]
                assert [r["output"].split()[0] for r in sent] == ["sent", "sent"]

                async def finished() -> bool:
                    return any(
                        f["kind"] == "dispatch.finished"
                        and (f.get("answer") or "").startswith("FINAL")
                        for f in await history(client, session)
                    )

                await wait_until(finished)
                replies = await messages(client, session)
                assert sorted(r["from_agent"] for r in replies) == sorted([w1, w2])
                for worker in (w1, w2):
                    [inbox] = await client.call("session.list", {"agent_id": worker})
                    assert inbox["title"] == "a2a inbox"
                    [received] = await messages(client, inbox["id"])  # delivered once
                    assert (received["from_agent"], received["mode"], received["from_session"]) == (
                        lead,
                        "wake",
                        session,
                    )
                    [answer] = [r for r in replies if r["from_agent"] == worker]
                    assert answer["reply_to"] == received["message_id"]  # linked
                    assert answer["text"] == f"part done: done by {worker}"
                    results = [
                        f for f in await history(client, inbox["id"]) if f["kind"] == "tool.result"
                    ]
                    assert results[0]["output"] == f"done by {worker}\n"  # the worker ran bash


def ping_pong(body: dict[str, Any]) -> Reply:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply.text(f"sent: {last['content'].splitlines()[0]}")
    user = str(last["content"])
    if user.startswith("Start"):
        return Reply.tool_call('a2a send b "ping" --wake')
    if "needs an answer" in user or "The reply to" in user:
        # whoever is woken wakes the other one again
        return Reply.tool_call(
            'a2a send "$PEER" "ping" --wake'.replace("$PEER", "a" if "from b" in user else "b")
        )
    return Reply.text("idle")


async def test_agents_waking_each_other_stop_at_the_hop_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AOS_A2A_MAX_HOPS", "4")  # the skill's service reads it
    with ScriptedLLM(default=ping_pong) as llm:
        async with running_daemon(
            tmp_path, OPENROUTER_BASE_URL=llm.base_url, AOS_MODEL="m"
        ) as daemon:
            await poll_until(lambda: a2a_running(daemon))
            async with Client(daemon.paths.control_socket, token="") as client:
                a = (await client.call("agent.create", {"name": "a"}))["agent"]["id"]
                b = (await client.call("agent.create", {"name": "b", "parent": a}))["agent"]["id"]
                session = (await client.call("session.create", {"agent_id": a}))["id"]
                await client.call("session.dispatch", {"id": session, "message": "Start"})

                async def stopped() -> bool:
                    for agent_id in (a, b):
                        for s in await client.call("session.list", {"agent_id": agent_id}):
                            if any(
                                "hop limit reached" in m["text"]
                                for m in await messages(client, s["id"])
                            ):
                                return True
                    return False

                await wait_until(stopped)
                async with asyncio.timeout(60):  # every branch of the chain comes to rest
                    while True:
                        count = len(llm.requests)
                        await asyncio.sleep(1.5)
                        if len(llm.requests) == count:
                            break
                limit_facts = [
                    m
                    for agent_id in (a, b)
                    for s in await client.call("session.list", {"agent_id": agent_id})
                    for m in await messages(client, s["id"])
                    if m["from_agent"] == "aos-a2a"
                ]
                assert limit_facts  # a clear fact where the chain stopped
                assert all(f["text"].startswith("hop limit reached") for f in limit_facts)
                assert all(f["hops"] > 4 for f in limit_facts)  # past the limit of 4


async def test_a_send_outside_the_tree_is_denied_and_visible(tmp_path: Path) -> None:
    with ScriptedLLM(
        Reply.tool_call('a2a send stranger "hello" --silent'), Reply.text("could not send")
    ) as llm:
        async with running_daemon(
            tmp_path, OPENROUTER_BASE_URL=llm.base_url, AOS_MODEL="m"
        ) as daemon:
            await poll_until(lambda: a2a_running(daemon))
            async with Client(daemon.paths.control_socket, token="") as client:
                me = (await client.call("agent.create", {"name": "me"}))["agent"]["id"]
                await client.call("agent.create", {"name": "stranger"})
                session = (await client.call("session.create", {"agent_id": me}))["id"]
                await client.call("session.dispatch", {"id": session, "message": "say hi"})
                [result] = [f for f in await history(client, session) if f["kind"] == "tool.result"]
                assert result["exit_code"] == 1
                assert (
                    "me may not message stranger: they are not in the same agent tree"
                    in result["output"]
                )
                seen = llm.requests[1].body["messages"][-1]["content"]
                assert "not in the same agent tree" in seen


class Closed:
    """A policy skill that refuses every dispatch of the agents that have it."""

    @hookimpl
    def dispatch_before(self, output: dict[str, Any]) -> object:
        return {"verdict": "reject", "reason": "closed for the day"}


async def test_a_target_that_cannot_start_is_reported_to_the_sender(tmp_path: Path) -> None:
    """The message is delivered and acknowledged; the target's dispatch is refused;
    the sender finds why in its own history."""
    with ScriptedLLM(Reply.tool_call('a2a send shut "open up" --wake'), Reply.text("sent")) as llm:
        async with running_daemon(
            tmp_path, OPENROUTER_BASE_URL=llm.base_url, AOS_MODEL="m"
        ) as daemon:
            assert daemon.kernel is not None
            daemon.kernel.pm.register(Closed(), name="closed")
            await poll_until(lambda: a2a_running(daemon))
            async with Client(daemon.paths.control_socket, token="") as client:
                me = (await client.call("agent.create", {"name": "me"}))["agent"]["id"]
                await client.call(
                    "agent.create",
                    {"name": "shut", "parent": me, "config": {"skills": ["closed"]}},
                )
                session = (await client.call("session.create", {"agent_id": me}))["id"]
                await client.call("session.dispatch", {"id": session, "message": "ask shut"})
                [result] = [f for f in await history(client, session) if f["kind"] == "tool.result"]
                assert result["exit_code"] == 0 and "sent msg_" in result["output"]

                async def notice() -> bool:
                    return any(
                        "could not be started" in m["text"] for m in await messages(client, session)
                    )

                await wait_until(notice)
                [note] = [
                    m for m in await messages(client, session) if m["from_agent"] == "aos-a2a"
                ]
                assert "delivered to shut, but shut could not be started" in note["text"]
                assert "closed for the day" in note["text"]


def test_a_wake_cut_by_a_crash_is_completed_after_restart(tmp_path: Path) -> None:
    """kill -9 while the woken agent runs a command: after a restart the reply still
    arrives, once."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    from aos.daemon import alive

    tries = {"worker": 0}

    def model(body: dict[str, Any]) -> Reply:
        last = body["messages"][-1]
        if last["role"] == "tool":
            return Reply.text("sent" if "sent msg_" in str(last["content"]) else "worked")
        user = str(last["content"])
        if user.startswith("Ask w1"):
            return Reply.tool_call('a2a send w1 "do it" --wake')
        if "needs an answer" in user:
            tries["worker"] += 1
            return Reply.tool_call("sleep 30" if tries["worker"] == 1 else "echo finally")
        return Reply.text("got the reply")

    aos = str(Path(sys.executable).with_name("aos"))
    home = Path(tempfile.mkdtemp(prefix="aos-", dir="/tmp"))
    with ScriptedLLM(default=model) as llm:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AOS_", "OPENROUTER_"))},
            "AOS_HOME": str(home),
            "AOS_MODEL": "m",
            "OPENROUTER_BASE_URL": llm.base_url,
            "AOS_FRONTEND_PORT": str(free_port()),  # `aos start` fails when the UI's is taken
        }

        def run(*args: str) -> Any:
            done = subprocess.run(
                [aos, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, done.stderr
            return json.loads(done.stdout) if done.stdout.startswith(("{", "[")) else done.stdout

        try:
            pid = int(run("start").split()[2])
            lead = run("syscall", "agent.create", '{"name": "lead"}')["agent"]["id"]
            w1 = run("syscall", "agent.create", json.dumps({"name": "w1", "parent": lead}))[
                "agent"
            ]["id"]
            session = run("syscall", "session.create", json.dumps({"agent_id": lead}))["id"]
            run("syscall", "session.dispatch", json.dumps({"id": session, "message": "Ask w1"}))
            deadline = time.monotonic() + 30
            inbox = None
            while time.monotonic() < deadline:
                sessions = run("syscall", "session.list", json.dumps({"agent_id": w1}))
                if sessions and any(
                    h["fact"]["kind"] == "tool.call"
                    for h in run(
                        "syscall", "session.history", json.dumps({"id": sessions[0]["id"]})
                    )
                ):
                    inbox = sessions[0]["id"]
                    break
                time.sleep(0.1)
            assert inbox is not None
            os.kill(pid, signal.SIGKILL)  # the worker is inside `sleep 30`
            while alive(pid):
                time.sleep(0.05)
            run("start")
            deadline = time.monotonic() + 60
            replies: list[dict[str, Any]] = []
            while time.monotonic() < deadline and not replies:
                time.sleep(0.2)
                replies = [
                    h["fact"]
                    for h in run("syscall", "session.history", json.dumps({"id": session}))
                    if h["fact"]["kind"] == "a2a.message"
                ]
            time.sleep(1)  # would a second reply come?
            replies = [
                h["fact"]
                for h in run("syscall", "session.history", json.dumps({"id": session}))
                if h["fact"]["kind"] == "a2a.message"
            ]
            assert len(replies) == 1
            assert replies[0]["text"] == "worked"
            worker = [
                h["fact"] for h in run("syscall", "session.history", json.dumps({"id": inbox}))
            ]
            assert [f.get("status", "ok") for f in worker if f["kind"] == "tool.result"] == [
                "lost",
                "ok",
            ]
            log = run("a2a", "log", "--json")
            assert [m["mode"] for m in log] == ["wake", "notify"]
            assert log[1]["reply_to"] == log[0]["message_id"]
        finally:
            subprocess.run([aos, "stop"], cwd=tmp_path, env=env, capture_output=True, timeout=60)
            shutil.rmtree(home, ignore_errors=True)


async def test_without_aos_a2a_agents_have_no_a2a(tmp_path: Path) -> None:
    with ScriptedLLM(Reply.tool_call("command -v a2a || echo missing"), Reply.text("ok")) as llm:
        async with running_daemon(
            tmp_path,
            OPENROUTER_BASE_URL=llm.base_url,
            AOS_MODEL="m",
            AOS_DEFAULT_SKILLS="aos-context,aos-skill",
        ) as daemon:
            async with Client(daemon.paths.control_socket, token="") as client:
                me = (await client.call("agent.create", {"name": "me"}))["agent"]["id"]
                session = (await client.call("session.create", {"agent_id": me}))["id"]
                outcome = await client.call("session.dispatch", {"id": session, "message": "check"})
                assert outcome["status"] == "completed"  # nothing else changed
                [result] = [f for f in await history(client, session) if f["kind"] == "tool.result"]
                assert result["output"] == "missing\n"
                assert daemon.kernel is not None
                active = await daemon.kernel.agents.active_skills(me, session)
                assert "aos-a2a" not in active


@pytest.mark.parametrize(
    ("argv", "parsed"),
    [
        (["send", "bob", "hi", "--wake"], ("send", "bob", "hi", "wake", None)),
        (["send", "--silent", "bob", "hi"], ("send", "bob", "hi", "silent", None)),
        (
            ["send", "bob", "--> see log", "--notify"],
            ("send", "bob", "--> see log", "notify", None),
        ),
        (["send", "bob", "hi", "--wake", "--wake"], ("send", "bob", "hi", "wake", None)),
        (["send", "bob", "hi", "--wake", "--session", "S1"], ("send", "bob", "hi", "wake", "S1")),
        (["send", "bob", "hi", "--session=S1", "--notify"], ("send", "bob", "hi", "notify", "S1")),
        (["send", "--wake", "--", "bob", "-x"], ("send", "bob", "-x", "wake", None)),
    ],
)
def test_the_a2a_command_reads_its_arguments(argv: list[str], parsed: tuple[Any, ...]) -> None:
    action, params = parse(argv)
    assert (action, params["to"], params["text"], params["mode"], params["session"]) == parsed


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        ([], "an action is required"),
        (["shout"], "unknown action 'shout'"),
        (["inbox", "x"], "inbox takes no arguments"),
        (["send", "bob", "hi"], "exactly one of --silent, --notify, --wake"),
        (["send", "bob", "hi", "--silent", "--wake"], "exactly one of"),
        (["send", "bob", "--wake"], "send takes AGENT and MESSAGE"),
        (["send", "bob", "hi", "--session", "--wake"], "--session needs a session id"),
        (["send", "bob", "hi", "--loud"], "unknown option --loud"),
    ],
)
def test_the_a2a_command_says_what_is_wrong(argv: list[str], error: str) -> None:
    with pytest.raises(UsageError, match=re.escape(error)):
        parse(argv)
    assert parse(["inbox"]) == ("inbox", {}) and parse(["agents"]) == ("agents", {})
