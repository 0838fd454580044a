"""The main job end to end: a real daemon, the real LLM client against the
scripted server (real HTTP, real SSE), real bash, real services."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from aos_sdk import Client, SyscallFailed
from conftest import REPO, poll_until, running_daemon

from aos.bash import group_alive
from aos.daemon import Daemon
from aos.facts import Fact, ToolCall, ToolResult
from aos.hookspecs import hookimpl
from aos.store import Conflict, StoreUnavailable
from aos.testing import Reply, ScriptedLLM, ScriptedToolCall

pytestmark = pytest.mark.anyio


async def new_session(client: Client, agent: str = "worker", **config: Any) -> str:
    created = await client.call("agent.create", {"name": agent, "config": config})
    return (await client.call("session.create", {"agent_id": created["agent"]["id"]}))["id"]


async def kinds(client: Client, session_id: str) -> list[str]:
    return [h["fact"]["kind"] for h in await client.call("session.history", {"id": session_id})]


async def facts(client: Client, session_id: str, kind: str) -> list[dict[str, Any]]:
    return [
        h["fact"]
        for h in await client.call("session.history", {"id": session_id})
        if h["fact"]["kind"] == kind
    ]


async def test_a_tool_call_its_output_and_a_final_answer(
    aos_client: Client, scripted_llm: ScriptedLLM, aos_project: Path
) -> None:
    (aos_project / "hello.txt").write_text("hi\n")
    scripted_llm.add(Reply.tool_call("ls"), Reply.text("There is one file: hello.txt.", chunk=3))
    session = await new_session(aos_client)
    stream: list[dict[str, Any]] = []
    events = aos_client.subscribe(topics=["stream", "history.append"], session_id=session)

    async def collect() -> None:
        async for event in events:
            stream.append({"topic": event.topic, **event.data})
            if (
                event.topic == "history.append"
                and event.data["fact"]["kind"] == "dispatch.finished"
            ):
                return

    collecting = asyncio.ensure_future(collect())
    await asyncio.sleep(0.05)
    outcome = await aos_client.call(
        "session.dispatch", {"id": session, "message": "what is here?", "cwd": str(aos_project)}
    )
    async with asyncio.timeout(10):
        await collecting
    assert outcome["status"] == "completed"
    assert outcome["answer"] == "There is one file: hello.txt."
    assert outcome["steps"] == 2
    assert await kinds(aos_client, session) == [
        "dispatch.started",
        "message.user",
        "message.assistant",
        "tool.call",
        "tool.result",
        "message.assistant",
        "dispatch.finished",
    ]
    [result] = await facts(aos_client, session, "tool.result")
    assert result["output"] == "hello.txt\nskills\n"
    assert result["exit_code"] == 0
    deltas = [e["text"] for e in stream if e["topic"] == "stream" and e["kind"] == "content"]
    assert len(deltas) > 3  # token by token, before the assistant fact
    assert "".join(deltas) == "There is one file: hello.txt."
    # the model saw the tool result on its second step
    second = scripted_llm.requests[1].body["messages"]
    assert second[-1] == {
        "role": "tool",
        "tool_call_id": result["call_id"],
        "content": "hello.txt\nskills\n\n[exit code 0]",
    }
    assert second[0]["role"] == "system"


async def test_my_guard_rejects_and_nothing_runs(tmp_path: Path) -> None:
    shutil.copytree(REPO / "skills" / "my-guard", tmp_path / "skills" / "my-guard")
    marker = tmp_path / "ran"
    with ScriptedLLM(
        Reply.tool_call(f"rm -rf / ; touch {marker}"), Reply.text("I was stopped.")
    ) as llm:
        async with running_daemon(
            tmp_path, OPENROUTER_BASE_URL=llm.base_url, AOS_MODEL="m"
        ) as daemon:
            await poll_until(lambda: any(s["state"] == "running" for s in services(daemon)))
            async with Client(daemon.paths.control_socket, token="") as client:
                session = await new_session(client, skills=["my-guard"])  # my-guard is active
                outcome = await client.call(
                    "session.dispatch", {"id": session, "message": "clean up"}
                )
                assert outcome["status"] == "completed"
                [result] = await facts(client, session, "tool.result")
                assert result["status"] == "rejected"
                assert result["rejected_by"] == "my-guard"
                assert result["output"] == "rejected by my-guard: blocked: rm -rf /"
                assert await facts(client, session, "tool.call") == []  # it never started
            seen = llm.requests[1].body["messages"][-1]
            assert seen["content"].startswith("rejected by my-guard: blocked: rm -rf /")
    assert not marker.exists()


def services(daemon: Daemon) -> list[dict[str, Any]]:
    assert daemon.kernel is not None
    assert daemon.kernel.services is not None
    return daemon.kernel.services.status()


async def test_interrupt_stops_a_long_command(
    aos_client: Client, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.add(Reply.tool_call("sleep 30 & sleep 30; echo never"))
    session = await new_session(aos_client)
    started = await aos_client.call(
        "session.dispatch", {"id": session, "message": "wait", "wait": False}
    )
    assert started["status"] == "running"

    async def running_command() -> bool:
        return bool(await facts(aos_client, session, "tool.call"))

    for _ in range(200):
        if await running_command():
            break
        await asyncio.sleep(0.02)
    [call] = await facts(aos_client, session, "tool.call")
    async with asyncio.timeout(2):  # the bound: within 2 s
        outcome = await aos_client.call("session.interrupt", {"id": session})
    assert outcome["status"] == "interrupted"
    [result] = await facts(aos_client, session, "tool.result")
    assert result["status"] == "interrupted"
    assert not group_alive(call["pgid"])  # the whole process group is gone
    scb = await aos_client.call("session.get", {"id": session})
    assert (scb["status"], scb["lease_owner"]) == ("idle", None)
    # the session is usable again, and the model sees what happened
    scripted_llm.add(Reply.text("ok"))
    assert (await aos_client.call("session.dispatch", {"id": session, "message": "go on"}))[
        "status"
    ] == "completed"


async def test_one_dispatch_per_session(aos_client: Client, scripted_llm: ScriptedLLM) -> None:
    scripted_llm.add(Reply.text("slow answer", delay=1.0))
    session = await new_session(aos_client)
    await aos_client.call("session.dispatch", {"id": session, "message": "one", "wait": False})
    with pytest.raises(SyscallFailed) as info:
        await aos_client.call("session.dispatch", {"id": session, "message": "two"})
    assert info.value.code == "conflict"
    assert "is running a dispatch" in info.value.message


async def test_llm_errors_reach_the_user_as_one_sentence(
    aos_client: Client, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.add(Reply.error(401, "No auth credentials found"))
    session = await new_session(aos_client)
    outcome = await aos_client.call("session.dispatch", {"id": session, "message": "hi"})
    assert outcome["status"] == "failed"
    port = scripted_llm.base_url.split(":")[2].split("/")[0]
    assert outcome["error"] == (
        f"The model server at 127.0.0.1:{port} rejected the API key (401): "
        "check OPENROUTER_API_KEY in .env"
    )
    assert len(scripted_llm.requests) == 1  # not retried
    [finished] = await facts(aos_client, session, "dispatch.finished")
    assert finished["error"] == outcome["error"]
    assert (await aos_client.call("session.get", {"id": session}))["status"] == "idle"


async def test_no_model_configured_fails_at_once(tmp_path: Path) -> None:
    (tmp_path / "aoscb.json").write_text('{"model": null}')  # no default model
    async with running_daemon(tmp_path, OPENROUTER_BASE_URL="http://127.0.0.1:9/v1") as daemon:
        async with Client(daemon.paths.control_socket, token="") as client:
            session = await new_session(client)
            with pytest.raises(SyscallFailed) as info:
                await client.call("session.dispatch", {"id": session, "message": "hi"})
            assert info.value.code == "unavailable"
            assert info.value.message.startswith("No model is configured: set AOS_MODEL")
            assert await kinds(client, session) == []  # nothing was recorded


async def test_max_steps(aos_client: Client, scripted_llm: ScriptedLLM) -> None:
    scripted_llm.default = Reply.tool_call("true")
    session = await new_session(aos_client, max_steps=3)
    outcome = await aos_client.call("session.dispatch", {"id": session, "message": "loop"})
    assert outcome["status"] == "max_steps"
    assert outcome["steps"] == 3
    assert len(await facts(aos_client, session, "tool.result")) == 3


async def test_bash_environment_and_output_cap(
    aos_client: Client, scripted_llm: ScriptedLLM, aos_daemon: Daemon
) -> None:
    scripted_llm.add(
        Reply.tool_calls(
            [
                'echo "$AOS_SESSION_ID $AOS_AGENT_ID ${OPENROUTER_API_KEY:-no-key} ${AOS_TOKEN:0:5}"; echo "$PATH" | tr : "\\n" | grep -c scripts',
                "head -c 100000 /dev/zero | tr '\\0' x",
                "exit 3",
                "sleep 5",
            ]
        ),
        Reply.text("done"),
    )
    session = await new_session(aos_client)
    os.environ["OPENROUTER_API_KEY"] = "secret-should-not-leak"
    try:
        await aos_client.call("session.dispatch", {"id": session, "message": "env"})
    finally:
        del os.environ["OPENROUTER_API_KEY"]
    results = {r["call_id"]: r for r in await facts(aos_client, session, "tool.result")}
    env_result, big, failed, slow = results.values()
    agent_id = (await aos_client.call("session.get", {"id": session}))["agent_id"]
    assert env_result["output"].splitlines()[0] == f"{session} {agent_id} no-key aos1."
    assert env_result["output"].splitlines()[1] == "2"  # aos-skill and aos-a2a scripts/ on PATH
    assert big["truncated_bytes"] > 0
    assert "bytes of output cut" in big["output"]
    assert len(big["output"]) < 40_000
    assert (failed["status"], failed["exit_code"]) == ("error", 3)
    assert slow["exit_code"] == 0
    assert aos_daemon.kernel is not None
    await aos_daemon.kernel.flush_logs()
    raw = await aos_client.call("log.read", {"kind": "tool.raw", "session_id": session})
    assert max(r["data"]["bytes"] for r in raw) == 100000


async def test_tool_timeout_kills_the_group(aos_client: Client, scripted_llm: ScriptedLLM) -> None:
    scripted_llm.add(Reply.tool_call("sleep 60", timeout=0.5), Reply.text("it timed out"))
    session = await new_session(aos_client)
    async with asyncio.timeout(20):
        await aos_client.call("session.dispatch", {"id": session, "message": "wait"})
    [result] = await facts(aos_client, session, "tool.result")
    assert result["status"] == "timeout"
    assert "timed out after 0.5s" in result["output"]


async def test_skill_load_from_bash_enters_the_context(
    aos_project: Path, aos_client: Client, scripted_llm: ScriptedLLM, aos_daemon: Daemon
) -> None:
    notes = aos_project / "skills" / "notes"
    notes.mkdir()
    (notes / "SKILL.md").write_text(
        "---\nname: notes\ndescription: Keeps notes.\n---\nWrite notes to NOTES.md.\n"
    )
    assert aos_daemon.kernel is not None
    aos_daemon.kernel.skills.refresh([notes])
    scripted_llm.add(
        Reply.tool_call("skill list"), Reply.tool_call("skill load notes"), Reply.text("loaded")
    )
    session = await new_session(aos_client)
    await aos_client.call("session.dispatch", {"id": session, "message": "take notes"})
    listed, loaded = await facts(aos_client, session, "tool.result")
    assert "  notes: Keeps notes." in listed["output"]
    assert loaded["output"].startswith("loaded notes; its instructions:")
    [fact] = await facts(aos_client, session, "skill.loaded")
    assert fact["body"] == "Write notes to NOTES.md."
    system = scripted_llm.requests[-1].body["messages"][0]["content"]
    assert '<loaded_skill name="notes">\nWrite notes to NOTES.md.\n</loaded_skill>' in system


async def test_without_aos_context_dispatch_fails_clearly(tmp_path: Path) -> None:
    with ScriptedLLM(Reply.text("unused")) as llm:
        async with running_daemon(
            tmp_path,
            OPENROUTER_BASE_URL=llm.base_url,
            AOS_MODEL="m",
            AOS_DEFAULT_SKILLS="aos-skill",
        ) as daemon:
            async with Client(daemon.paths.control_socket, token="") as client:
                session = await new_session(client)
                outcome = await client.call("session.dispatch", {"id": session, "message": "hi"})
                assert outcome["status"] == "failed"
                assert outcome["error"] == "no skill provides session.assemble"
                assert await client.call("kernel.status")  # nothing else broke


class Policy:
    """An in-process policy skill, active for agents that name it."""

    def __init__(self, **verdicts: Any) -> None:
        self.verdicts = verdicts

    @hookimpl
    def compute_before(self, output: dict[str, Any]) -> Any:
        return self.verdicts.get("compute.before", output)

    @hookimpl
    def tool_after(self, output: dict[str, Any]) -> Any:
        return self.verdicts.get("tool.after", output)

    @hookimpl
    async def dispatch_before(self, output: dict[str, Any]) -> Any:
        await asyncio.sleep(self.verdicts.get("slow", 0))
        return output


async def test_a_tool_after_reject_replaces_what_the_model_sees(
    aos_client: Client, scripted_llm: ScriptedLLM, aos_daemon: Daemon
) -> None:
    assert aos_daemon.kernel is not None
    aos_daemon.kernel.pm.register(
        Policy(**{"tool.after": {"verdict": "reject", "reason": "output withheld"}}), name="policy"
    )
    scripted_llm.add(Reply.tool_call("echo secret"), Reply.text("ok"))
    session = await new_session(aos_client, skills=["policy"])
    outcome = await aos_client.call("session.dispatch", {"id": session, "message": "go"})
    assert outcome["status"] == "completed"
    [result] = await facts(aos_client, session, "tool.result")
    assert (result["status"], result["rejected_by"]) == ("rejected", "policy")
    assert result["output"] == "rejected by policy: output withheld"


async def test_a_compute_before_reject_ends_the_dispatch_as_rejected(
    aos_client: Client, scripted_llm: ScriptedLLM, aos_daemon: Daemon
) -> None:
    assert aos_daemon.kernel is not None
    aos_daemon.kernel.pm.register(
        Policy(**{"compute.before": {"verdict": "reject", "reason": "budget exhausted"}}),
        name="policy",
    )
    session = await new_session(aos_client, skills=["policy"])
    outcome = await aos_client.call("session.dispatch", {"id": session, "message": "go"})
    assert outcome["status"] == "rejected"
    assert outcome["error"] == "compute.before rejected by policy: budget exhausted"
    assert scripted_llm.requests == []


async def test_an_invalid_gate_result_never_reaches_history(
    aos_client: Client, scripted_llm: ScriptedLLM, aos_daemon: Daemon
) -> None:
    assert aos_daemon.kernel is not None
    aos_daemon.kernel.pm.register(
        Policy(**{"tool.after": {"output": "x", "exit_code": 0, "status": "fine"}}), name="policy"
    )
    scripted_llm.add(Reply.tool_call("true"))
    session = await new_session(aos_client, skills=["policy"])
    outcome = await aos_client.call("session.dispatch", {"id": session, "message": "go"})
    assert outcome["status"] == "failed"
    assert outcome["error"].startswith(
        "tool.after returned an invalid result: Invalid enum value 'fine'"
    )
    assert await aos_client.call("session.history", {"id": session})  # still readable


async def test_two_dispatches_at_once_on_one_session(
    aos_client: Client, scripted_llm: ScriptedLLM, aos_daemon: Daemon
) -> None:
    assert aos_daemon.kernel is not None
    aos_daemon.kernel.pm.register(Policy(slow=0.3), name="policy")
    scripted_llm.default = Reply.text("done")
    session = await new_session(aos_client, skills=["policy"])
    results = await asyncio.gather(
        aos_client.call("session.dispatch", {"id": session, "message": "one"}),
        aos_client.call("session.dispatch", {"id": session, "message": "two"}),
        return_exceptions=True,
    )
    [ok] = [r for r in results if isinstance(r, dict)]
    [refused] = [r for r in results if isinstance(r, SyscallFailed)]
    assert ok["status"] == "completed"
    assert refused.code == "conflict"
    assert await kinds(aos_client, session) == [
        "dispatch.started", "message.user", "message.assistant", "dispatch.finished",
    ]  # fmt: skip


async def dispatch_refusing(
    client: Client, daemon: Daemon, kind: type[Fact], error: Exception, *, once: bool
) -> tuple[str, dict[str, Any]]:
    """A dispatch whose commits holding a ``kind`` fact fail with ``error`` (the
    first one only when ``once``); its session and outcome."""
    kernel = daemon.kernel
    assert kernel is not None
    store = kernel.store
    append_all = store.append_all
    failures: list[str] = []

    async def failing(session_id: str, batch: Any) -> list[int]:
        if any(isinstance(f, kind) for f in batch) and not (once and failures):
            failures.append(session_id)
            raise error
        return await append_all(session_id, batch)

    session = await new_session(client)
    store.append_all = failing  # type: ignore[method-assign]
    try:
        outcome = await client.call("session.dispatch", {"id": session, "message": "go"})
    finally:
        store.append_all = append_all  # type: ignore[method-assign]
    assert failures == [session] if once else set(failures) == {session}
    assert outcome["status"] == "failed"
    return session, outcome


async def dispatch_with_a_store_failure(
    client: Client, daemon: Daemon, kind: type[Fact]
) -> tuple[str, dict[str, Any]]:
    """A dispatch whose first commit holding a ``kind`` fact fails (the store
    gone for a moment); its session and outcome."""
    error = StoreUnavailable("database went away")
    session, outcome = await dispatch_refusing(client, daemon, kind, error, once=True)
    assert outcome["error"].startswith(
        "the database became unreachable (database went away) and was back 0 s later"
    )
    return session, outcome


async def test_a_tool_result_that_fails_to_commit_is_written_with_the_end(
    aos_client: Client, scripted_llm: ScriptedLLM, aos_daemon: Daemon
) -> None:
    """The tool result commits while the next step starts; when that commit fails
    the dispatch ends failed, saying so, and the result goes with dispatch.finished."""
    scripted_llm.add(Reply.tool_call("echo hi"), Reply.text("done"))
    session, _ = await dispatch_with_a_store_failure(aos_client, aos_daemon, ToolResult)
    kinds_seen = await kinds(aos_client, session)
    assert kinds_seen[-2:] == ["tool.result", "dispatch.finished"]
    assert kinds_seen.count("tool.result") == 1
    [result] = await facts(aos_client, session, "tool.result")
    assert result["output"] == "hi\n"


async def test_a_reply_that_fails_to_commit_is_written_before_its_results(
    aos_client: Client, scripted_llm: ScriptedLLM, aos_daemon: Daemon
) -> None:
    """The reply and its tool.call commit together; if the store refuses them the
    command is killed, and dispatch.finished takes them along with the call's
    result: no tool result is ever recorded without the reply that asked for it."""
    scripted_llm.add(Reply.tool_call("sleep 30"))
    session, _ = await dispatch_with_a_store_failure(aos_client, aos_daemon, ToolCall)
    assert await kinds(aos_client, session) == [
        "dispatch.started", "message.user", "message.assistant", "tool.call", "tool.result",
        "dispatch.finished",
    ]  # fmt: skip
    [call] = await facts(aos_client, session, "tool.call")
    assert not group_alive(call["pgid"])
    [result] = await facts(aos_client, session, "tool.result")
    assert result["status"] == "interrupted"


async def test_a_missing_working_directory_is_the_tool_result(
    aos_client: Client, scripted_llm: ScriptedLLM, tmp_path: Path
) -> None:
    """A cwd that cannot be entered is told to the model; the dispatch goes on.
    (Unsandboxed: in a sandbox the workspace is a mount point nothing can remove.)"""
    gone = tmp_path / "gone"
    gone.mkdir()
    scripted_llm.add(Reply.tool_call(f"rmdir {gone}"), Reply.tool_call("pwd"), Reply.text("ok"))
    session = await new_session(aos_client, sandbox="off")
    outcome = await aos_client.call(
        "session.dispatch", {"id": session, "message": "go", "cwd": str(gone)}
    )
    assert outcome["status"] == "completed"
    removed, missing = await facts(aos_client, session, "tool.result")
    assert removed["exit_code"] == 0
    assert missing["status"] == "error"
    assert missing.get("exit_code") is None
    assert missing["output"] == (
        f"[the command did not start: cannot use the working directory {gone}: "
        "No such file or directory]"
    )
    assert len(await facts(aos_client, session, "tool.call")) == 1  # only what ran


async def test_a_spawner_that_cannot_start_fails_the_dispatch_clearly(
    aos_daemon: Daemon,
    aos_client: Client,
    scripted_llm: ScriptedLLM,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import aos.spawner

    assert aos_daemon.kernel is not None
    await aos_daemon.kernel.sandboxes.aclose()  # the next command starts a new one...
    monkeypatch.setattr(aos.spawner, "PROGRAM", str(tmp_path / "no-such-program.py"))  # ...or not
    scripted_llm.add(Reply.tool_call("true"))
    session = await new_session(aos_client)
    outcome = await aos_client.call("session.dispatch", {"id": session, "message": "go"})
    assert outcome["status"] == "failed"
    assert outcome["error"].startswith("the command spawner ")  # sandboxed or not...
    assert "exited 2" in outcome["error"]  # ...it says how it ended
    assert await kinds(aos_client, session) == [
        "dispatch.started",
        "message.user",
        "message.assistant",
        "tool.result",
        "dispatch.finished",
    ]


async def test_signed_reasoning_goes_back_to_the_provider(
    aos_client: Client, scripted_llm: ScriptedLLM
) -> None:
    """OpenRouter's reasoning_details (signed reasoning) are kept with the assistant
    message and sent back with it on the next request, as OpenRouter documents."""
    thought = "I should list the files first, then answer."
    scripted_llm.add(
        Reply.tool_call("true", reasoning=thought, signature="sig-123", chunk=5),
        Reply.text("done"),
    )
    session = await new_session(aos_client)
    outcome = await aos_client.call("session.dispatch", {"id": session, "message": "go"})
    assert outcome["status"] == "completed", outcome
    expected = [
        {
            "type": "reasoning.text",
            "text": thought,
            "format": "anthropic-claude-v1",
            "index": 0,
            "signature": "sig-123",
        }
    ]
    [first, _] = await facts(aos_client, session, "message.assistant")
    assert first["reasoning"] == thought
    assert first["reasoning_details"] == expected
    [assistant] = [m for m in scripted_llm.requests[1].body["messages"] if m["role"] == "assistant"]
    assert assistant["reasoning_details"] == expected
    assert "reasoning_details" not in scripted_llm.requests[0].body["messages"][-1]


async def test_reused_and_repeated_call_ids_answer_the_right_call(
    aos_client: Client, scripted_llm: ScriptedLLM
) -> None:
    """Providers reuse ids across steps and some repeat one within a reply: each
    result still answers its own call (its message and index), in history and in
    what the model is sent back."""
    scripted_llm.add(
        Reply.tool_calls(
            [
                ScriptedToolCall.bash("echo one", id="call_0"),
                ScriptedToolCall.bash("echo two", id="call_0"),
            ]
        ),
        Reply.tool_call("echo three", id="call_0"),
        Reply.text("done"),
    )
    session = await new_session(aos_client)
    outcome = await aos_client.call("session.dispatch", {"id": session, "message": "go"})
    assert outcome["status"] == "completed", outcome
    results = await facts(aos_client, session, "tool.result")
    assert [(r["index"], r["output"].strip()) for r in results] == [
        (0, "one"),
        (1, "two"),
        (0, "three"),
    ]
    sent = scripted_llm.requests[2].body["messages"]
    replies = [m for m in sent if m["role"] == "assistant"]
    assert [[c["id"] for c in m["tool_calls"]] for m in replies] == [
        ["call_0-0", "call_0-1"],
        ["call_0"],
    ]
    answers = [
        (m["tool_call_id"], m["content"].split("\n")[0]) for m in sent if m["role"] == "tool"
    ]
    assert answers == [("call_0-0", "one"), ("call_0-1", "two"), ("call_0", "three")]


async def test_a_fact_the_store_refuses_for_good_still_ends_the_dispatch(
    aos_client: Client, scripted_llm: ScriptedLLM, aos_daemon: Daemon
) -> None:
    """A write refused every time (not an outage) is said in the dispatch's end,
    which is recorded without it: the session never stays running (nor is it later
    "lost: the daemon stopped", which it did not)."""
    scripted_llm.add(Reply.tool_call("echo hi"), Reply.text("done"))
    refused = Conflict("PostgreSQL refused the write: no")
    session, outcome = await dispatch_refusing(
        aos_client, aos_daemon, ToolResult, refused, once=False
    )
    assert outcome["error"] == (
        "recording history failed: PostgreSQL refused the write: no; the store refused to "
        "record tool.result: PostgreSQL refused the write: no"
    )
    assert (await kinds(aos_client, session))[-1] == "dispatch.finished"
    assert (await aos_client.call("session.get", {"id": session}))["status"] == "idle"
