"""Escalation attempts against skill services, each made by a hostile agent's own
bash in a real dispatch: taking my-guard's socket, a guard that fails at start,
a stopped guard."""

from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, copy_skill, poll_until
from escalation import Agent, attempt, hostile_node, new_agent
from test_services import running, service, write_service

from aos.daemon import alive

pytestmark = pytest.mark.anyio

INTRUDER = (REPO / "tests" / "intruder.py").read_text()
DROP = "echo 'DROP TABLE users' > f"
MY_GUARD = {"config": {"skills": ["my-guard"]}}
"""Until node-installed guards apply to every agent, the agent has it among its skills."""


def intruder(skill: str, mode: str) -> str:
    """The command: the agent feeds its own impostor script to python."""
    return f"{sys.executable} - {skill} {mode} <<'EOF'\n{INTRUDER}\nEOF"


def refused_by(result: dict[str, Any], skill: str) -> bool:
    return str(result["output"]).startswith(f"rejected by {skill}: ")


@pytest.mark.parametrize("mode", ["kill-connect", "kill-bind"])
async def test_agent_cannot_take_my_guard_s_socket(tmp_path: Path, mode: str) -> None:
    """The agent kills my-guard's service and races the restarted one to its socket
    (connecting as my-guard, or replacing the path); its DROP TABLE is still refused."""
    copy_skill("my-guard", tmp_path)
    async with hostile_node(tmp_path) as (daemon, client):
        await poll_until(lambda: running(daemon, "my-guard"))
        agent = await new_agent(client, "mallory", **MY_GUARD)
        taken = await agent.bash(intruder("my-guard", mode))
        output = str(taken["output"])
        if "REFUSED:" in output:  # it reached the socket: the kernel said why not
            assert "the socket of service my-guard accepts only the process the daemon" in output
        attempt(
            f"take my-guard's socket ({mode})",
            taken,
            succeeded="ACCEPTED" in output,
        )
        dropped = await agent.bash(DROP)
        attempt(
            f"DROP TABLE after trying to take my-guard's socket ({mode})",
            dropped,
            succeeded=not refused_by(dropped, "my-guard"),
        )
        await poll_until(lambda: running(daemon, "my-guard"))
        dropped = await agent.bash(DROP)
        assert dropped["output"] == "rejected by my-guard: blocked: DROP TABLE"


BROKEN_GUARD = """
import sys
print("guard: cannot load its rules", file=sys.stderr)
sys.exit(1)
"""


async def test_a_guard_that_fails_at_start_refuses_every_command(tmp_path: Path) -> None:
    """Declared fail-closed, a guard whose service exits at once refuses the
    dangerous command and the harmless one alike, before and after a restart."""
    write_service(
        tmp_path,
        "strict-guard",
        BROKEN_GUARD,
        "hooks:\n  tool.before:\n    failure: fail-closed\n",
    )
    home = tempfile.mkdtemp(prefix="aos-", dir="/tmp")
    reason = re.compile(
        r"rejected by strict-guard: strict-guard failed on tool\.before: RuntimeError: the "
        r"service of strict-guard is not running \((starting|failed|backoff): exited with code 1 "
        r"before saying hello\): try again shortly"
    )

    async def all_refused(agent: Agent, when: str) -> None:
        for command in (DROP, "echo hi"):
            result = await agent.bash(command)
            attempt(
                f"{command!r} past a guard that failed at start{when}",
                result,
                succeeded=not refused_by(result, "strict-guard"),
            )
            assert reason.fullmatch(result["output"])

    async with hostile_node(tmp_path, AOS_HOME=home) as (_, client):
        agent = await new_agent(client, "mallory", config={"skills": ["strict-guard"]})
        await all_refused(agent, "")
    async with hostile_node(tmp_path, AOS_HOME=home) as (_, client):
        await all_refused(Agent(client, agent.id, agent.session_id), ", after a daemon restart")


async def test_a_stopped_guard_is_replaced_and_guards_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test stops my-guard's process (SIGSTOP); within the ping deadline it is
    reported, killed and restarted, and the agent's next command meets the new one."""
    monkeypatch.setattr("aos.services.PING_INTERVAL", 0.1)
    monkeypatch.setattr("aos.services.PING_DEADLINE", 0.5)
    copy_skill("my-guard", tmp_path)
    async with hostile_node(tmp_path) as (daemon, client):
        await poll_until(lambda: running(daemon, "my-guard"))
        agent = await new_agent(client, "mallory", **MY_GUARD)
        first = service(daemon, "my-guard")["pid"]
        os.kill(first, signal.SIGSTOP)
        await poll_until(
            lambda: running(daemon, "my-guard") and service(daemon, "my-guard")["pid"] != first
        )
        assert not alive(first)
        status = await client.call("kernel.status")
        [guard] = [s for s in status["services"] if s["skill"] == "my-guard"]
        assert guard["last_error"] == "did not answer a ping within 0.5s: killed"
        log = await client.call("log.read", {"kind": "service"})
        assert any("service my-guard: not answering" in e["message"] for e in log)
        result = await agent.bash(DROP)
        attempt(
            "DROP TABLE once a stopped my-guard was replaced",
            result,
            succeeded=result["output"] != "rejected by my-guard: blocked: DROP TABLE",
        )
