"""``aos run`` and ``aos chat`` from the terminal, driven as subprocesses against a
real daemon and the scripted model: Ctrl-C and a closed terminal interrupt the
dispatch they started; the message comes from MESSAGE, stdin or a file."""

from __future__ import annotations

import json
import os
import pty
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from test_main_job_cli import AOS, Project, first_lines, llm, project

from aos.testing import Reply, ScriptedLLM

__all__ = ["llm", "project"]  # the fixtures, shared with the main job's tests


def start_run(project: Project, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [AOS, "run", *args], cwd=project.root, env=project.env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def history(project: Project, session: str) -> list[dict[str, object]]:
    return json.loads(project.aos("session", "history", session, "--json").stdout)


def running_command(project: Project, run: subprocess.Popen[str]) -> str:
    """The session whose dispatch (started by ``run``) is running its command."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert run.poll() is None, run.communicate()
        for s in json.loads(project.aos("session", "list", "--json").stdout):
            if any(f["kind"] == "tool.call" for f in history(project, s["id"])):
                return s["id"]
        time.sleep(0.1)
    raise AssertionError("the command did not start within 30 s")


@pytest.mark.parametrize(
    ("signum", "daemon"),
    [(signal.SIGINT, "started"), (signal.SIGHUP, "started"), (signal.SIGINT, "embedded")],
)
def test_a_signal_interrupts_the_dispatch_and_waits_for_it(
    project: Project, llm: ScriptedLLM, signum: signal.Signals, daemon: str
) -> None:
    """Ctrl-C (or a closed terminal) during `sleep 30`: the session is idle with the
    interruption recorded within 2 s, and the CLI exits with 128 + the signal."""
    llm.add(Reply.tool_call("sleep 30"), Reply.text("never asked for"))
    if daemon == "started":
        assert project.aos("start").returncode == 0
    run = start_run(project, "wait for it")
    session = running_command(project, run)
    sent = time.monotonic()
    run.send_signal(signum)
    out, err = run.communicate(timeout=10)
    assert time.monotonic() - sent < 2
    assert run.returncode == 128 + signum, err
    if signum == signal.SIGINT:
        assert "aos: interrupting the dispatch (Ctrl-C again to leave it running)" in err
        assert "[interrupted] interrupted by session.interrupt" in out
    scb = json.loads(project.aos("session", "show", session, "--json").stdout)
    assert (scb["status"], scb["lease_owner"]) == ("idle", None)
    facts = history(project, session)
    assert [f["status"] for f in facts if f["kind"] == "tool.result"] == ["interrupted"]
    assert facts[-1]["kind"] == "dispatch.finished"
    assert facts[-1]["status"] == "interrupted"
    assert len(llm.requests) == 1  # the model was not asked again


def test_a_second_ctrl_c_leaves_at_once(project: Project, llm: ScriptedLLM) -> None:
    """A command that ignores SIGTERM takes the kill grace (1 s) to stop: a second
    Ctrl-C meanwhile leaves without waiting and names the command that stops it."""
    llm.add(Reply.tool_call("trap '' TERM; sleep 30"))
    assert project.aos("start").returncode == 0
    run = start_run(project, "wait for it")
    session = running_command(project, run)
    run.send_signal(signal.SIGINT)
    time.sleep(0.3)
    sent = time.monotonic()
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=10)
    assert time.monotonic() - sent < 0.5
    assert run.returncode == 130
    assert err.strip().splitlines()[-1] == (
        f"aos: left without waiting for the dispatch to settle: `aos session show {session}` "
        f"shows it, `aos session interrupt {session}` stops it"
    )
    deadline = time.monotonic() + 10  # the daemon finishes the interrupt on its own
    while json.loads(project.aos("session", "show", session, "--json").stdout)["status"] != "idle":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert history(project, session)[-1]["status"] == "interrupted"


def aos_input(project: Project, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AOS, *args], cwd=project.root, env=project.env, input=stdin,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def sent_message(result: subprocess.CompletedProcess[str]) -> str:
    """The user message a ``run --json`` dispatched."""
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)["facts"]
    return next(f["text"] for f in facts if f["kind"] == "message.user")


def test_the_message_comes_from_stdin_or_a_file(
    project: Project, llm: ScriptedLLM, tmp_path: Path
) -> None:
    llm.add(*(Reply.text("ok") for _ in range(4)))
    assert sent_message(aos_input(project, "from a dash\n", "run", "--json", "-")) == (
        "from a dash\n"
    )
    assert sent_message(aos_input(project, "piped in", "run", "--json")) == "piped in"
    prompt = tmp_path / "prompt.md"
    prompt.write_text("from a file")
    assert sent_message(aos_input(project, "", "run", "--json", "--file", str(prompt))) == (
        "from a file"
    )
    big = "a line of a long prompt\n" * 12_000  # 288 KB: more than an argument can hold
    assert sent_message(aos_input(project, big, "run", "--json", "-")) == big
    assert llm.requests[-1].body["messages"][-1]["content"] == big


@pytest.mark.parametrize(
    ("stdin", "args", "error"),
    [
        ("", ["run", ""], "the message is empty: give the text to send the agent"),
        ("", ["run", " \t "], "the message is empty: give the text to send the agent"),
        (" \n\n", ["run", "-"], "the message is empty: give the text to send the agent"),
        ("", ["run"], "the message is empty: give the text to send the agent"),
        ("", ["run", "--file", "notes.txt", "hi"], "give MESSAGE or --file, not both"),
    ],
)
def test_an_empty_message_is_a_usage_error(
    project: Project, llm: ScriptedLLM, stdin: str, args: list[str], error: str
) -> None:
    result = aos_input(project, stdin, *args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"Error: {error}"
    assert llm.requests == []
    assert json.loads(project.aos("session", "list", "--json").stdout) == []  # nothing sent


def test_model_overrides_the_agents_for_run_and_chat(project: Project, llm: ScriptedLLM) -> None:
    llm.add(*(Reply.text("ok") for _ in range(4)))
    ran = project.aos("run", "--model", "vendor/other", "hi")
    assert ran.returncode == 0, ran.stderr
    chat = aos_input(project, "hello\nagain\n", "chat", "-m", "vendor/chatty")
    assert chat.returncode == 0, chat.stderr
    assert [r.body["model"] for r in llm.requests] == [
        "vendor/other", "vendor/chatty", "vendor/chatty",
    ]  # fmt: skip
    plain = project.aos("run", "hi")
    assert plain.returncode == 0, plain.stderr
    assert llm.requests[-1].body["model"] == "test-model"  # the agent's own model again


def test_ctrl_c_in_chat_interrupts_and_comes_back_to_the_prompt(
    project: Project, llm: ScriptedLLM
) -> None:
    llm.add(Reply.tool_call("sleep 30"), Reply.text("Back again."))
    chat = subprocess.Popen(
        [AOS, "chat"], cwd=project.root, env=project.env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert chat.stdin is not None
    chat.stdin.write("wait\n")
    chat.stdin.flush()
    session = running_command(project, chat)
    chat.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 2
    while history(project, session)[-1]["kind"] != "dispatch.finished":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    out, err = chat.communicate("are you there?\n", timeout=30)
    assert chat.returncode == 0, err
    assert "[interrupted] interrupted by session.interrupt" in out
    assert "Back again." in out
    facts = history(project, session)
    assert [f["status"] for f in facts if f["kind"] == "dispatch.finished"] == [
        "interrupted", "completed",
    ]  # fmt: skip


# -- aos start, aos up and aos doctor ----------------------------------------------------------


def test_start_waits_for_every_service(project: Project) -> None:
    started = project.aos("start")
    assert started.returncode == 0, started.stderr
    port = project.env["AOS_FRONTEND_PORT"]
    assert started.stdout.splitlines()[-1].startswith(f"ui:      http://127.0.0.1:{port}/?token=")
    status = json.loads(project.aos("status", "--json").stdout)
    states = {s["skill"]: s["state"] for s in status["services"]}
    assert "aos-frontend" in states
    assert set(states.values()) == {"running"}  # none still starting


def test_a_taken_ui_port_is_reported_with_the_fix(project: Project) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        project.env["AOS_FRONTEND_PORT"] = str(port)
        up = first_lines(project, 3)
        assert up[2] == (
            f"aos: the web UI cannot start: port {port} on 127.0.0.1 is taken: set "
            "AOS_FRONTEND_PORT to a free port (in .env or the environment) and restart the "
            "daemon, or stop the program holding it and run `aos skill reload aos-frontend`\n"
        )
        started = project.aos("start")
        assert started.returncode == 5  # unavailable
        assert started.stdout.startswith("started: pid ")
        assert "ui:" not in started.stdout  # never another program's address
        [error] = started.stderr.strip().splitlines()
        assert error.startswith("Error: service aos-frontend failed (exited with code 2")
        assert f"port {port} on 127.0.0.1 is taken by {os.getpid()} " in error
        assert error.endswith("run `aos skill reload aos-frontend`")


def test_doctor_shows_the_model_server_the_key_and_the_daemon(
    project: Project, llm: ScriptedLLM
) -> None:
    project.env["OPENROUTER_API_KEY"] = "sk-never-shown-42"
    socket_path = str(project.home / "run" / "aos.sock")
    before = project.aos("doctor", "--json")
    assert before.returncode == 0, before.stderr
    report = json.loads(before.stdout)
    assert report["model"] == {
        "model": "test-model",
        "source": "environment AOS_MODEL",
        "base_url": llm.base_url,
        "key_variable": "OPENROUTER_API_KEY",
        "key_set": True,
        "problem": None,
    }
    assert report["daemon"]["socket"] == socket_path
    assert (report["daemon"]["running"], report["daemon"]["pid"]) == (False, None)
    started = project.aos("start")
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout.split()[2])
    text = project.aos("doctor").stdout
    assert "sk-never-shown-42" not in text + before.stdout
    lines = [line.split() for line in text.splitlines()]
    assert ["server", llm.base_url] in lines
    assert ["key", "OPENROUTER_API_KEY", "set"] in lines
    assert ["socket", socket_path] in lines
    assert f"pid {pid}, node" in text
    del project.env["OPENROUTER_API_KEY"]
    assert json.loads(project.aos("doctor", "--json").stdout)["model"]["key_set"] is False


def test_no_message_from_a_terminal_says_how_to_give_one(
    project: Project, llm: ScriptedLLM
) -> None:
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run(
            [AOS, "run"], cwd=project.root, env=project.env, stdin=terminal,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        os.close(controller)
        os.close(terminal)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: give MESSAGE, `-` to read it from stdin, or --file PATH"
    )
    assert llm.requests == []


def test_ctrl_c_at_the_chat_prompt_leaves(project: Project) -> None:
    chat = subprocess.Popen(
        [AOS, "chat"], cwd=project.root, env=project.env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert chat.stdout is not None
    banner = chat.stdout.readline()
    assert banner.startswith("session ses_")
    chat.send_signal(signal.SIGINT)
    out, err = chat.communicate(timeout=30)
    assert chat.returncode == 130, err
    assert f"session {banner.split()[1]}" in out.splitlines()  # (the prompt may follow it)
