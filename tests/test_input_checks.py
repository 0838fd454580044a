"""Input checked at the door: each bad input is one sentence, and nothing is made
or lost because of it (real CLI subprocesses, real kernels, real databases)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from conftest import pg_base_url
from test_main_job_cli import AOS, Project, llm, project

from aos.config import ConfigError, load_config
from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.syscalls import SyscallError
from aos.testing import Reply, ScriptedLLM

__all__ = ["llm", "project"]  # the fixtures, shared with the main job's tests
pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("garbage", "'garbage' is not a database URL: use sqlite:///ABSOLUTE/PATH/aos.db"),
        ("mysql://localhost/db", "is not a database URL"),
        ("sqlite://relative.db", "the SQLite path 'relative.db' is not absolute"),
        ("sqlite:////nonexistent/dir/aos.db", "the directory /nonexistent/dir does not exist"),
    ],
)
def test_a_bad_database_url_is_a_configuration_error(tmp_path: Path, url: str, says: str) -> None:
    with pytest.raises(ConfigError, match="invalid setting db_url") as info:
        load_config(environ={"AOS_HOME": str(tmp_path / "home"), "AOS_DB_URL": url}, cwd=tmp_path)
    assert says in str(info.value)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # no stray database file, no directory
    assert not Path("/nonexistent").exists()


def test_the_cli_says_so_and_creates_nothing(project: Project) -> None:
    project.env["AOS_DB_URL"] = "garbage"
    result = project.aos("start")
    assert result.returncode == 2
    assert result.stderr.startswith("Error: configuration error: invalid setting db_url")
    assert not (project.root / "garbage").exists()


def test_a_missing_postgresql_database_is_one_sentence(project: Project) -> None:
    base = urlsplit(pg_base_url())
    missing = f"aos_missing_{uuid.uuid4().hex[:8]}"
    project.env["AOS_DB_URL"] = urlunsplit(base._replace(path=f"/{missing}", query=""))
    result = project.aos("start")
    assert result.returncode == 5, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: the daemon could not start: cannot connect to postgresql://")
    assert f'database "{missing}" does not exist: create it (createdb ' in line


async def test_agent_names_and_skills_are_checked(kernel: Kernel) -> None:
    for name in ("", "  ", "two words", "-dash-first", "x" * 65, "semi;colon"):
        with pytest.raises(SyscallError) as info:
            await kernel.syscall(ADMIN, "agent.create", {"name": name})
        assert info.value.code == "invalid"
        assert info.value.message.startswith(f"invalid agent name {name!r}: a name is 1 to 64")
    with pytest.raises(SyscallError) as info:
        await kernel.syscall(
            ADMIN, "agent.create", {"name": "ok", "config": {"skills": ["no-such-skill"]}}
        )
    assert info.value.code == "not_found"
    assert "no skill named 'no-such-skill'" in info.value.message
    assert await kernel.syscall(ADMIN, "agent.list", {}) == []  # nothing was made
    made = await kernel.syscall(ADMIN, "agent.create", {"name": "ok.agent_1"})
    with pytest.raises(SyscallError) as info:
        await kernel.syscall(
            ADMIN, "agent.update", {"id": made["agent"]["id"], "config": {"skills": ["nope"]}}
        )
    assert info.value.code == "not_found"
    with pytest.raises(SyscallError) as info:
        await kernel.syscall(ADMIN, "agent.update", {"id": made["agent"]["id"], "name": "a b"})
    assert info.value.code == "invalid"


def test_the_cli_refuses_them_with_exit_codes(project: Project) -> None:
    unknown = project.aos("agent", "create", "helper", "--skill", "no-such-skill")
    assert unknown.returncode == 3
    assert "no skill named 'no-such-skill'" in unknown.stderr
    spaced = project.aos("agent", "create", "two words", "--json")
    assert spaced.returncode == 2
    assert json.loads(spaced.stdout)["error"]["code"] == "invalid"
    assert json.loads(project.aos("agent", "list", "--json").stdout) == []


async def test_an_empty_message_is_not_dispatched(
    model_kernel: Kernel, scripted_llm: ScriptedLLM
) -> None:
    agent = await model_kernel.syscall(ADMIN, "agent.create", {"name": "a"})
    session = await model_kernel.syscall(
        ADMIN, "session.create", {"agent_id": agent["agent"]["id"]}
    )
    for message in ("", " \n\t "):
        with pytest.raises(SyscallError) as info:
            await model_kernel.syscall(
                ADMIN, "session.dispatch", {"id": session["id"], "message": message}
            )
        assert (info.value.code, info.value.message) == (
            "invalid",
            "session.dispatch: the message is empty",
        )
    assert await model_kernel.syscall(ADMIN, "session.history", {"id": session["id"]}) == []
    assert scripted_llm.requests == []


async def test_a_timeout_above_the_cap_is_stated(
    model_kernel: Kernel, scripted_llm: ScriptedLLM
) -> None:
    cap = model_kernel.config.aoscb.limits.tool_timeout
    scripted_llm.add(Reply.tool_call("echo ran", timeout=cap + 180), Reply.text("done"))
    agent = await model_kernel.syscall(ADMIN, "agent.create", {"name": "a"})
    session = await model_kernel.syscall(
        ADMIN, "session.create", {"agent_id": agent["agent"]["id"]}
    )
    outcome = await model_kernel.syscall(
        ADMIN, "session.dispatch", {"id": session["id"], "message": "go"}
    )
    assert outcome["status"] == "completed"
    history = await model_kernel.syscall(ADMIN, "session.history", {"id": session["id"]})
    [result] = [h["fact"] for h in history if h["fact"]["kind"] == "tool.result"]
    assert result["output"] == (
        f"[a timeout of {cap + 180:g} s is above the cap of {cap:g} s: it ran with {cap:g} s]\n"
        "ran\n"
    )


def test_skill_validate_needs_the_service_program(project: Project) -> None:
    skill = project.root / "skills" / "demo"
    skill.mkdir(parents=True)
    (skill / "SKILL.md").write_text(
        "---\nname: demo\ndescription: A demo skill.\nservice: ./nope.py\n---\n"
    )
    result = project.aos("skill", "validate", str(skill))
    assert result.returncode == 1
    assert "service: './nope.py' does not exist in the skill directory" in result.stderr
    (skill / "nope.py").write_text("print('hi')\n")
    assert project.aos("skill", "validate", str(skill)).returncode == 0


def test_a_message_that_is_not_utf8_is_a_usage_error(project: Project) -> None:
    """It reached the wire as lone surrogates and ended in a UnicodeEncodeError traceback."""
    given = subprocess.run(
        [AOS, "run", os.fsdecode(b"caf\xe9")], cwd=project.root, env=project.env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    piped = subprocess.run(
        [AOS, "run"], cwd=project.root, env=project.env, input=b"caf\xe9",
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert (given.returncode, piped.returncode) == (2, 2)
    assert given.stderr == (
        "Error: the message given is not UTF-8 text (byte 0xe9 at offset 3): convert it "
        "first, e.g. with iconv -f latin1 -t utf-8\n"
    )
    assert b"the message on stdin is not UTF-8 text (byte 0xe9 at offset 3)" in piped.stderr
