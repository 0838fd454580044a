"""The main job from the command line, as the issue's acceptance runs it:
``aos run`` against the scripted model, and a daemon killed with -9 mid-command."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aos.aoscb import DEFAULT_MODEL
from aos.bash import group_alive
from aos.daemon import alive
from aos.testing import Reply, ScriptedLLM, free_port

AOS = str(Path(sys.executable).with_name("aos"))


class Project:
    def __init__(self, root: Path, llm: ScriptedLLM) -> None:
        self.root = root
        self.home = Path(tempfile.mkdtemp(prefix="aos-", dir="/tmp"))
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("AOS_", "OPENROUTER_"))}
        self.env = {
            **clean,
            "AOS_HOME": str(self.home),
            "AOS_MODEL": "test-model",
            "OPENROUTER_BASE_URL": llm.base_url,
            "AOS_FRONTEND_PORT": str(free_port()),  # `aos start` fails when the UI's is taken
        }

    def aos(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AOS, *args], cwd=self.root, env=self.env, capture_output=True, text=True,
            timeout=timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


@pytest.fixture
def project(tmp_path: Path, llm: ScriptedLLM) -> Iterator[Project]:
    (tmp_path / "notes.txt").write_text("remember the milk\n")
    (tmp_path / "skills").mkdir()  # the project's skill root (a sandbox would make it)
    p = Project(tmp_path, llm)
    yield p
    p.aos("stop")
    shutil.rmtree(p.home, ignore_errors=True)


def test_aos_run_streams_a_tool_call_and_answers(project: Project, llm: ScriptedLLM) -> None:
    llm.add(Reply.tool_call("ls"), Reply.text("This directory holds notes.txt."))
    result = project.aos("run", "what is in this directory?")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "$ ls",
        "  notes.txt",
        "  skills",
        "This directory holds notes.txt.",
    ]
    session = result.stderr.strip().split()[-1]
    history = json.loads(project.aos("session", "history", session, "--json").stdout)
    assert [
        f["kind"]
        for f in history
        if f["kind"] in ("message.user", "message.assistant", "tool.result")
    ] == [
        "message.user",
        "message.assistant",
        "tool.result",
        "message.assistant",
    ]
    assert history[2]["tool_calls"][0]["command"] == "ls"
    assert history[4]["output"] == "notes.txt\nskills\n"
    listed = json.loads(project.aos("session", "list", "--json").stdout)
    assert [(s["id"], s["status"]) for s in listed] == [(session, "idle")]


def test_aos_run_json(project: Project, llm: ScriptedLLM) -> None:
    llm.add(Reply.text("42"))
    result = project.aos("run", "--json", "the answer?")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "completed"
    assert report["answer"] == "42"
    assert [f["kind"] for f in report["facts"]] == [
        "dispatch.started", "message.user", "message.assistant", "dispatch.finished",
    ]  # fmt: skip


def test_the_key_alone_is_enough(project: Project, llm: ScriptedLLM) -> None:
    """The seed's promise: one required variable (here with the scripted server's URL)."""
    del project.env["AOS_MODEL"]
    project.env["OPENROUTER_API_KEY"] = "sk-or-test"
    llm.add(Reply.text("hello"))
    result = project.aos("run", "hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello"
    [request] = llm.requests
    assert request.body["model"] == DEFAULT_MODEL
    assert request.headers["authorization"] == "Bearer sk-or-test"


def test_no_model_is_one_clear_sentence(project: Project) -> None:
    del project.env["AOS_MODEL"]
    (project.root / "aoscb.json").write_text('{"model": null}')  # the default taken away
    result = project.aos("run", "hi")
    assert result.returncode == 5  # unavailable
    assert result.stderr.strip().startswith(
        "Error: unavailable: No model is configured: set AOS_MODEL"
    )
    assert "Traceback" not in result.stderr


def kill_9_during_sleep(
    project: Project, llm: ScriptedLLM, *, reused_id: str | None = None
) -> tuple[int, str, int]:
    """Start a daemon, `aos run` a `sleep 30`, kill -9 the daemon while it runs:
    ``(daemon pid, session id, the command's process group)``. With ``reused_id``,
    a first step runs `true` under that id, and the `sleep` reuses it (as
    OpenRouter's ``bash:0`` and local servers' ``call_0`` do)."""
    if reused_id is not None:
        llm.add(Reply.tool_call("true", id=reused_id))
    llm.add(Reply.tool_call("sleep 30", id=reused_id))
    started = project.aos("start")
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout.split()[2])
    run = subprocess.Popen(
        [AOS, "run", "wait for it"], cwd=project.root, env=project.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    session, pgid = None, None
    while time.monotonic() < deadline and pgid is None:
        time.sleep(0.1)
        for s in json.loads(project.aos("session", "list", "--json").stdout):
            calls = [
                f
                for f in json.loads(project.aos("session", "history", s["id"], "--json").stdout)
                if f["kind"] == "tool.call" and f["command"] == "sleep 30"
            ]
            if calls:
                session, pgid = s["id"], calls[0]["pgid"]
    assert session is not None
    assert pgid is not None
    os.kill(pid, signal.SIGKILL)
    _, stderr = run.communicate(timeout=30)
    assert "Traceback" not in stderr, stderr  # one sentence for a daemon that died mid-run
    assert run.returncode == 5, stderr
    assert stderr.startswith("Error: unavailable: the daemon stopped while this ran"), stderr
    return pid, session, pgid


@pytest.mark.usefixtures("bubblewrap")
def test_a_sandbox_ends_with_its_killed_daemon(project: Project, llm: ScriptedLLM) -> None:
    _, session, pgid = kill_9_during_sleep(project, llm)
    deadline = time.monotonic() + 10
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not group_alive(pgid)  # nothing of the sandbox outlives its daemon
    left = [int(p.read_text()) for p in (project.home / "run" / "pasta").glob("*.pid")]
    restarted = project.aos("start")
    assert restarted.returncode == 0, restarted.stderr
    assert not [pid for pid in left if alive(pid)]  # its network helper is ended too
    history = json.loads(project.aos("session", "history", session, "--json").stdout)
    [result] = [f for f in history if f["kind"] == "tool.result"]
    assert result["status"] == "lost"


@pytest.mark.parametrize("reused_id", [None, "call_0"], ids=["own-ids", "reused-ids"])
def test_kill_9_during_a_command_then_continue(
    project: Project, llm: ScriptedLLM, reused_id: str | None
) -> None:
    """Unsandboxed, a command outlives a killed daemon until recovery ends it (a
    sandbox ends with its daemon: tests/test_sandbox.py). A provider that reuses
    its call ids across steps changes nothing: a call is its message and index."""
    project.env["AOS_SANDBOX"] = "off"
    pid, session, pgid = kill_9_during_sleep(project, llm, reused_id=reused_id)
    assert group_alive(pgid)  # the command outlived its daemon...
    while alive(pid):
        time.sleep(0.05)

    restarted = project.aos("start")
    assert restarted.returncode == 0, restarted.stderr
    assert not group_alive(pgid)  # ...until recovery terminated its process group
    scb = json.loads(project.aos("session", "show", session, "--json").stdout)
    assert (scb["status"], scb["lease_owner"]) == ("idle", None)
    history = json.loads(project.aos("session", "history", session, "--json").stdout)
    *_, result = [f for f in history if f["kind"] == "tool.result"]
    assert [f.get("status", "ok") for f in history if f["kind"] == "tool.result"] == (
        ["lost"] if reused_id is None else ["ok", "lost"]
    )
    assert result["output"] == "lost: the daemon stopped while this command ran; it was not re-run"
    assert history[-1]["kind"] == "dispatch.finished"
    assert history[-1]["status"] == "lost"

    llm.add(Reply.text("Continuing: the sleep was lost, nothing else to do."))
    again = project.aos("run", "-s", session, "continue")
    assert again.returncode == 0, again.stderr
    assert "Continuing" in again.stdout
    seen = llm.requests[-1].body["messages"]
    assert {
        "role": "tool",
        "tool_call_id": result["call_id"],
        "content": result["output"] + "\n[lost]",
    } in seen
    assert [
        f["command"]
        for f in json.loads(project.aos("session", "history", session, "--json").stdout)
        if f["kind"] == "tool.call"
    ] == (["sleep 30"] if reused_id is None else ["true", "sleep 30"])  # never re-run


def test_aos_chat_is_a_loop_on_one_session(project: Project, llm: ScriptedLLM) -> None:
    llm.add(Reply.text("Hello!"), Reply.text("Still here."))
    result = subprocess.run(
        [AOS, "chat"], cwd=project.root, env=project.env, input="hi\n\nare you there?\n",
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Hello!" in result.stdout
    assert "Still here." in result.stdout
    session = result.stdout.strip().splitlines()[-1].split()[-1]
    history = json.loads(project.aos("session", "history", session, "--json").stdout)
    assert [f["text"] for f in history if f["kind"] == "message.user"] == ["hi", "are you there?"]
    context = json.loads(project.aos("session", "context", session, "--json").stdout)
    assert [m["role"] for m in context] == ["system", "user", "assistant", "user", "assistant"]


def first_lines(project: Project, count: int) -> list[str]:
    """What ``aos up`` prints first; then it is stopped with SIGTERM."""
    up = subprocess.Popen(
        [AOS, "up"], cwd=project.root, env=project.env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert up.stdout is not None
        return [up.stdout.readline() for _ in range(count)]
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=30)


def test_aos_up_says_which_model(project: Project) -> None:
    lines = first_lines(project, 2)
    assert lines[1].startswith("aos: model test-model (environment AOS_MODEL) at http://127.0.0.1:")
    del project.env["AOS_MODEL"]
    lines = first_lines(project, 2)
    assert lines[1].startswith(f"aos: model {DEFAULT_MODEL} (default) at http://127.0.0.1:")
    (project.root / "aoscb.json").write_text('{"model": null}')
    lines = first_lines(project, 2)
    assert lines[1].startswith("aos: dispatch is not ready: No model is configured: set AOS_MODEL")


def test_session_interrupt_from_the_cli(project: Project, llm: ScriptedLLM) -> None:
    llm.add(Reply.tool_call("sleep 30"), Reply.text("stopped"))
    assert project.aos("start").returncode == 0
    run = subprocess.Popen(
        [AOS, "run", "wait"], cwd=project.root, env=project.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    session = None
    for _ in range(300):
        time.sleep(0.05)
        running = [
            s
            for s in json.loads(project.aos("session", "list", "--json").stdout)
            if s["status"] == "running"
        ]
        if running and any(
            f["kind"] == "tool.call"
            for f in json.loads(
                project.aos("session", "history", running[0]["id"], "--json").stdout
            )
        ):
            session = running[0]["id"]
            break
    assert session is not None
    interrupted = project.aos("session", "interrupt", session)
    assert interrupted.returncode == 0, interrupted.stderr
    assert interrupted.stdout.startswith("interrupted dispatch dsp_")
    out, _ = run.communicate(timeout=30)
    assert run.returncode == 1
    assert "[interrupted] interrupted by session.interrupt" in out


def test_the_cli_tells_the_isolation_in_force(project: Project, llm: ScriptedLLM) -> None:
    """``aos doctor --json`` reports the sandbox; without bubblewrap on PATH (a PATH
    of its own here) ``aos run`` warns, and ``sandbox: required`` fails doctor."""
    found = json.loads(project.aos("doctor", "--json").stdout)["isolation"]
    assert found["mode"] == "auto"
    assert found["available"] == (shutil.which("bwrap") is not None)
    assert found["sandboxed"] == found["available"]
    assert found["user_namespaces"]

    empty = project.root / "no-bwrap"
    empty.mkdir()
    project.env["PATH"] = str(empty)
    missing = json.loads(project.aos("doctor", "--json").stdout)["isolation"]
    assert (missing["available"], missing["sandboxed"], missing["bwrap"]) == (False, False, None)
    assert "apt-get install bubblewrap" in missing["problem"]

    llm.add(Reply.text("Done."))
    run = project.aos("run", "hi")
    assert run.returncode == 0, run.stderr
    assert "aos: warning: agent commands run UNSANDBOXED: bubblewrap (bwrap) is not on PATH" in (
        run.stderr
    )

    project.env["AOS_SANDBOX"] = "required"
    doctor = project.aos("doctor")
    assert doctor.returncode == 1
    assert "sandbox: required and no sandbox can be built" in doctor.stderr
