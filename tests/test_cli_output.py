"""What the CLI prints, for scripts and for people: ``--json`` on every command,
errors as one JSON object with an exit code that says what failed, names wherever
ids are, tables with headers and times, ``NO_COLOR``. Driven as subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import subprocess

import click
import pytest
from test_main_job_cli import AOS, Project, llm, project

from aos import cli_call
from aos.cli import cli
from aos.cli.output import syscall_error
from aos.config import load_config
from aos.facts import Usage
from aos.syscalls import ERROR_CODES
from aos.testing import Reply, ScriptedLLM

__all__ = ["llm", "project"]  # the fixtures, shared with the main job's tests

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


def commands(
    group: click.Group, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    found: list[tuple[tuple[str, ...], click.Command]] = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += commands(command, (*path, name))
        else:
            found.append(((*path, name), command))
    return found


def test_every_command_takes_json() -> None:
    missing = [
        " ".join(path)
        for path, command in commands(cli)
        if not any("--json" in p.opts for p in command.params if isinstance(p, click.Option))
    ]
    assert len(commands(cli)) > 20
    assert missing == []


@pytest.mark.parametrize(
    ("args", "code", "exit_code"),
    [
        (["agent", "show", "nobody"], "not_found", 3),
        (["agent", "archive", "nobody"], "not_found", 3),
        (["session", "list", "-a", "nobody"], "not_found", 3),
        (["session", "show", "ses_nope"], "not_found", 3),
        (["skill", "show", "no-such-skill"], "not_found", 3),
        (["run", "   "], "usage", 2),
        (["agent", "create", ""], "usage", 2),
        (["syscall", "agent.get", "[1]"], "usage", 2),
        (["session", "history", "ses_nope"], "not_found", 3),
        (["stop"], "unavailable", 5),
        (["logs"], "not_found", 3),
    ],
)
def test_errors_are_one_json_object_and_an_exit_code(
    project: Project, args: list[str], code: str, exit_code: int
) -> None:
    result = project.aos(*args, "--json")
    assert result.returncode == exit_code, result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["code"] == code
    assert error["message"] and "\n" not in error["message"]
    assert result.stderr == ""
    text = project.aos(*args)  # the same failure for people: one line on stderr
    assert text.returncode == exit_code
    assert text.stdout == ""
    assert text.stderr.strip() == f"Error: {error['message']}"


def test_syscall_failures_map_to_exit_codes(project: Project) -> None:
    assert project.aos("start").returncode == 0
    unknown = project.aos("syscall", "no.such.syscall", "--json")
    assert unknown.returncode == 2
    assert json.loads(unknown.stdout)["error"]["code"] == "unknown"
    # the admin is refused nothing: a refusal's exit code, from the one table
    exits = {code: syscall_error(code, "m").exit_status for code in ERROR_CODES}
    assert exits == {
        "unknown": 2, "invalid": 2, "not_found": 3, "denied": 4, "unavailable": 5, "conflict": 1,
    }  # fmt: skip


def test_names_work_wherever_ids_do(project: Project, llm: ScriptedLLM) -> None:
    created = json.loads(project.aos("agent", "create", "helper", "--json").stdout)["agent"]
    child = project.aos("agent", "create", "junior", "--parent", "helper", "--json")
    assert json.loads(child.stdout)["agent"]["parent"] == created["id"]
    shown = json.loads(project.aos("agent", "show", "helper", "--json").stdout)
    assert shown["agent"]["id"] == created["id"]
    assert ISO.match(shown["agent"]["created_at"])
    llm.add(Reply.text("hello"))
    assert project.aos("run", "-a", "helper", "hi").returncode == 0
    listed = json.loads(project.aos("session", "list", "-a", "helper", "--json").stdout)
    assert [s["agent_id"] for s in listed] == [created["id"]]
    assert json.loads(project.aos("session", "list", "-a", "junior", "--json").stdout) == []
    archived = project.aos("agent", "archive", "junior", "--json")
    assert json.loads(archived.stdout)["status"] == "archived"


def test_agent_prompts_and_moves_from_the_command_line(project: Project) -> None:
    assert project.aos("agent", "create", "lead", "--prompt", "Be brief.").returncode == 0
    created = project.aos("agent", "create", "worker", "--prompt", "Use Python.", "--json")
    worker = json.loads(created.stdout)["agent"]
    assert worker["parent"] is None
    moved = project.aos("agent", "update", "worker", "--parent", "lead")
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.startswith(f"updated agent worker {worker['id']} (under agt_")
    shown = project.aos("agent", "show", "worker").stdout.splitlines()
    assert shown[-4:] == ["prompt:", "  Be brief.", "", "  Use Python."]
    info = json.loads(project.aos("agent", "update", "worker", "--prompt", "", "--json").stdout)
    assert "prompt" not in info["agent"]["config"]
    assert info["effective"]["prompt"] == "Be brief."
    rooted = json.loads(project.aos("agent", "update", "worker", "--root", "--json").stdout)
    assert rooted["agent"]["parent"] is None
    assert rooted["effective"]["prompt"] == ""
    both = project.aos("agent", "update", "worker", "--root", "--parent", "lead")
    assert both.returncode == 2


def test_sessions_found_renamed_and_their_a2a_messages_logged(
    project: Project, llm: ScriptedLLM
) -> None:
    lead = json.loads(project.aos("agent", "create", "lead", "--json").stdout)["agent"]
    llm.add(Reply.text("Whales are mammals."), Reply.text("Noted."))
    assert project.aos("run", "-a", "lead", "Tell me about whales").returncode == 0
    assert project.aos("run", "-a", "lead", "Something else").returncode == 0
    found = json.loads(project.aos("session", "list", "--search", "MAMMALS", "--json").stdout)
    [session] = found
    assert session["title"] == "Tell me about whales"
    renamed = project.aos("session", "rename", session["id"], "Marine biology")
    assert renamed.stdout == f"session {session['id']} is now titled 'Marine biology'\n"
    table = project.aos("session", "list", "-s", "marine").stdout
    assert "Marine biology" in table and "Something else" not in table
    fact = {
        "kind": "a2a.message",
        "message_id": "msg_1",
        "from_agent": lead["id"],
        "to_agent": lead["id"],
        "mode": "notify",
        "text": "a note to self",
    }
    config = load_config(environ=project.env, cwd=project.root)  # no daemon: in process
    asyncio.run(cli_call(config, "session.append", {"id": session["id"], "fact": fact}))
    [logged] = json.loads(project.aos("a2a", "log", "--json").stdout)
    assert (logged["message_id"], logged["session_id"]) == ("msg_1", session["id"])


def test_tables_and_records_are_for_people(project: Project, llm: ScriptedLLM) -> None:
    llm.add(
        Reply.tool_call("ls", usage=Usage(prompt_tokens=1000, completion_tokens=20, cost=0.001)),
        Reply.text("notes.txt is here.", usage=Usage(prompt_tokens=1500, completion_tokens=30)),
    )
    ran = project.aos("run", "what is in this directory?\nlook closely")
    session = ran.stderr.strip().split()[-1]
    table = project.aos("session", "list").stdout.splitlines()
    assert table[0].split() == ["ID", "STATUS", "AGENT", "ACTIVE", "TOKENS", "COST", "TITLE"]
    assert table[1].startswith(session)
    assert re.search(r"  2,550 +\$0\.0010  ", table[1])  # tokens in and out; the reported cost
    assert table[1].endswith("what is in this directory?")  # the first line of the message
    assert re.search(
        r"  default  +(now|a second ago|\d+ seconds ago)  ", table[1]
    )  # agent name, time for people
    record = project.aos("session", "show", session).stdout
    assert re.search(r"^created_at: (now|.* ago) \(\d{4}-\d\d-\d\dT", record, re.M), record
    assert "usage: 2 calls, 2,500 in + 50 out tokens, $0.0010\n" in record
    assert "  test-model: 2 calls, 2,500 in + 50 out tokens, $0.0010\n" in record
    assert re.search(
        r"^dispatch dsp_\w+ \(completed\): 2,500 in \+ 50 out, \$0.0010$", record, re.M
    )
    shown = json.loads(project.aos("session", "show", session, "--json").stdout)
    assert (
        shown["usage"]["input_tokens"] == 2500 and shown["dispatches"][0]["status"] == "completed"
    )
    listed = json.loads(project.aos("session", "list", "--json").stdout)
    assert ISO.match(listed[0]["created_at"]) and listed[0]["title"] == "what is in this directory?"
    history = project.aos("session", "history", session).stdout
    assert history.count("$ ls") == 1, history  # each command once
    assert listed[0]["usage"]["models"] == [
        {
            "model": "test-model",
            "calls": 2,
            "input_tokens": 2500,
            "output_tokens": 50,
            "cost": 0.001,
        }
    ]
    agents = project.aos("agent", "list").stdout.splitlines()
    assert agents[0].split() == ["NAME", "ID", "STATUS", "CREATED", "TOKENS", "COST"]
    assert re.search(r"  2,550 +\$0\.0010", agents[1])
    by_agent = json.loads(project.aos("agent", "list", "--json").stdout)
    assert by_agent[0]["usage"]["calls"] == 2


def in_a_terminal(project: Project, *args: str, **env: str) -> str:
    """What ``aos ARGS`` writes to a terminal (a pty): colour only goes there."""
    controller, terminal = pty.openpty()
    try:
        subprocess.run(
            [AOS, *args], cwd=project.root, env={**project.env, **env}, stdin=subprocess.DEVNULL,
            stdout=terminal, stderr=terminal, timeout=60, check=True,
        )  # fmt: skip
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal side is closed: all is read
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode()
    finally:
        os.close(controller)


def test_no_color_and_no_color_flag(project: Project) -> None:
    assert project.aos("agent", "create", "helper").returncode == 0
    assert "\x1b[" in in_a_terminal(project, "agent", "list")  # a bold header
    assert "\x1b[" not in in_a_terminal(project, "agent", "list", NO_COLOR="1")
    assert "\x1b[" not in in_a_terminal(project, "--no-color", "agent", "list")
    assert "NAME" in in_a_terminal(project, "--no-color", "agent", "list")


def test_chat_json_is_a_line_per_dispatch(project: Project, llm: ScriptedLLM) -> None:
    llm.add(Reply.text("one"), Reply.text("two"))
    chat = subprocess.run(
        [AOS, "chat", "--json"], cwd=project.root, env=project.env, input="first\nsecond\n",
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert chat.returncode == 0, chat.stderr
    lines = [json.loads(line) for line in chat.stdout.splitlines()]
    assert [(line["status"], line["answer"]) for line in lines] == [
        ("completed", "one"),
        ("completed", "two"),
    ]
    assert chat.stderr.splitlines()[-1] == f"session {lines[0]['session_id']}"
