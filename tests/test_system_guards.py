"""System guards: the seed's ``skills/my-guard``, dropped into a running node's
fresh ``skills/`` and nothing else, guards every agent's commands.

Real daemon, the repository's real my-guard service, real bash, the real ``aos
run`` CLI against the daemon, the real aos-a2a service waking an agent; the
scripted model runs what the user message says (tests/escalation.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from aos_sdk import Client
from conftest import copy_skill, live_token, poll_until
from escalation import Agent, hostile_model, hostile_node, new_agent
from test_skills import write_skill

from aos.daemon import Daemon
from aos.hooks import HookRejected
from aos.hookspecs import hookimpl
from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.syscalls import SyscallError
from aos.testing import Reply, ScriptedLLM

pytestmark = pytest.mark.anyio

AOS = str(Path(sys.executable).with_name("aos"))
DROP = "echo 'DROP TABLE users' > f"
REFUSED = "rejected by my-guard: blocked: DROP TABLE"


def model(body: dict[str, Any]) -> Reply:
    """hostile_model, and DROP for an agent woken by an a2a message."""
    last = body["messages"][-1]
    if last["role"] == "user" and "needs an answer" in str(last["content"]):
        return Reply.tool_call(DROP)
    return hostile_model(body)


def kernel_of(daemon: Daemon) -> Kernel:
    assert daemon.kernel is not None
    return daemon.kernel


async def install_guard(daemon: Daemon, project: Path) -> None:
    """Copy skills/my-guard in; wait until hot reload has it in the registry (its
    service may still be starting: a dispatch waits for that itself)."""
    kernel = kernel_of(daemon)
    copy_skill("my-guard", project)
    await poll_until(lambda: "my-guard" in kernel.system_skills)


async def aos_run(daemon: Daemon, project: Path, message: str) -> str:
    """``aos run MESSAGE`` in ``project`` against the running daemon; its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AOS_", "OPENROUTER_"))}
    env["AOS_HOME"] = str(kernel_of(daemon).config.paths.config_dir)
    process = await asyncio.create_subprocess_exec(
        AOS, "run", message, cwd=project, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def facts(client: Client, session_id: str) -> list[dict[str, Any]]:
    return [h["fact"] for h in await client.call("session.history", {"id": session_id})]


async def last_session(client: Client, agent_id: str) -> str:
    sessions = await client.call("session.list", {"agent_id": agent_id})
    return sessions[-1]["id"]


def refused(result: dict[str, Any]) -> bool:
    return (result.get("status"), result.get("rejected_by"), result["output"]) == (
        "rejected",
        "my-guard",
        REFUSED,
    )


async def woken_result(client: Client, worker: str) -> dict[str, Any]:
    """The tool result of the worker's dispatch that an a2a wake started."""
    async with asyncio.timeout(30):
        while True:
            for session in await client.call("session.list", {"agent_id": worker}):
                history = await facts(client, session["id"])
                done = [f for f in history if f["kind"] == "dispatch.finished"]
                results = [f for f in history if f["kind"] == "tool.result"]
                if done and results:
                    return results[-1]
            await asyncio.sleep(0.05)


async def test_dropped_in_guard_refuses_every_agent_and_lifts_when_removed(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    project.mkdir()  # no skills/ yet: the copy makes a fresh one under the running node
    async with hostile_node(project, model) as (daemon, client):
        kernel = kernel_of(daemon)
        # the default agent and its two children exist before the guard does
        out = await aos_run(daemon, project, "RUN echo ready")
        assert "ready" in out
        default = next(a for a in await client.call("agent.list", {}) if a["name"] == "default")
        helper = await new_agent(client, "helper", parent=default["id"])
        worker = await new_agent(client, "worker", parent=default["id"])
        lead = Agent(client, default["id"], await last_session(client, default["id"]))

        await install_guard(daemon, project)

        # the default agent, through the real CLI
        out = await aos_run(daemon, project, f"RUN {DROP}")
        assert REFUSED in out
        history = await facts(client, await last_session(client, default["id"]))
        assert refused([f for f in history if f["kind"] == "tool.result"][-1])
        assert not (project / "f").exists()
        # a child agent that never named the skill
        assert refused(await helper.bash(DROP))
        # an agent created after the guard appeared
        late = await new_agent(client, "late")
        assert refused(await late.bash(DROP))
        # an agent woken by a2a
        sent = await lead.bash("a2a send worker 'clean up the users table' --wake")
        assert sent["output"].startswith("sent"), sent
        assert refused(await woken_result(client, worker.id))
        assert "aos-a2a" not in kernel.system_skills  # standard skills: only where active
        listed = next(h for h in await client.call("hook.list") if h["hook"] == "tool.before")
        assert ("my-guard", True) in [(i["owner"], i["system"]) for i in listed["implementations"]]
        # the context face stays as it was: my-guard is not listed to the agents
        assert "my-guard" not in (await kernel.context.face_of(helper.id, helper.session_id)).names

        shutil.rmtree(project / "skills" / "my-guard")
        await poll_until(lambda: kernel.skills.get("my-guard") is None)
        assert "my-guard" not in kernel.system_skills

        out = await aos_run(daemon, project, f"RUN {DROP}")
        assert REFUSED not in out
        assert (project / "f").read_text() == "DROP TABLE users\n"
        result = await helper.bash(DROP)
        assert (result.get("status", "ok"), result["exit_code"]) == ("ok", 0), result


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """The kernel-level tests need one backend (the conftest's ``kernel`` runs on it)."""
    return f"sqlite://{tmp_path / 'aos.db'}"


class Refuser:
    @hookimpl
    def tool_before(self, output: dict[str, Any]) -> dict[str, Any]:
        return {"verdict": "reject", "reason": "system policy"}


def bash(command: str) -> dict[str, Any]:
    return {"tool": "bash", "args": {"command": command}, "cwd": "/tmp", "env": {}}


async def test_a_skill_in_a_root_is_in_every_scope_while_it_is_there(
    kernel: Kernel, tmp_path: Path
) -> None:
    kernel.pm.register(Refuser(), name="spy")  # as a service's proxy would be
    root = tmp_path / "skills"

    async def gate() -> dict[str, Any]:
        return await kernel.hooks.gate("tool.before", {}, bash("ls"), active=frozenset())

    assert await gate() == bash("ls")  # an owner the registry does not know: scoped
    write_skill(root, "spy")
    kernel.skills.scan()
    assert kernel.system_skills == {"spy"}
    with pytest.raises(HookRejected, match="rejected by spy: system policy"):
        await gate()
    shutil.rmtree(root / "spy")
    kernel.skills.scan()
    assert kernel.system_skills == frozenset()
    assert await gate() == bash("ls")


async def test_an_agent_cannot_unload_a_system_guard_but_a_context_skill(
    model_kernel: Kernel, scripted_llm: ScriptedLLM, tmp_path: Path
) -> None:
    kernel = model_kernel
    write_skill(tmp_path / "skills", "notes")
    guard = write_skill(tmp_path / "skills", "guard", extra="service: ./service.py\n")
    (guard / "service.py").write_text("")  # a service skill: its program must exist
    kernel.skills.scan()
    agent = (await kernel.syscall(ADMIN, "agent.create", {"name": "a"}))["agent"]["id"]
    session = (await kernel.syscall(ADMIN, "session.create", {"agent_id": agent}))["id"]
    for name in ("notes", "guard"):
        await kernel.syscall(ADMIN, "skill.load", {"name": name, "session_id": session})
    async with live_token(kernel, scripted_llm, session) as token:
        principal = kernel.tokens.verify(token)  # the agent's own, while its dispatch runs
        await kernel.syscall(principal, "skill.unload", {"name": "notes"})
        with pytest.raises(SyscallError) as refused:
            await kernel.syscall(principal, "skill.unload", {"name": "guard"})
    assert (refused.value.code, refused.value.message) == (
        "denied",
        "skill guard is system policy on this node: an agent cannot unload it",
    )
    assert await kernel.history.loaded_skills(session) == {"guard"}
    await kernel.syscall(ADMIN, "skill.unload", {"name": "guard", "session_id": session})
    assert await kernel.history.loaded_skills(session) == frozenset()
