"""Keep the hook list honest (as datasette does): every hookspec is documented,
and every hookspec is fired by the kernel (no hook is declared that nothing fires).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import anyio
import click
import pytest

from aos.config import load_config
from aos.daemon import Daemon
from aos.hookspecs import HOOKS, hookimpl
from aos.kernel import Kernel
from aos.principals import ADMIN, service_principal
from aos.testing import Reply, ScriptedLLM

DOCS = Path(__file__).resolve().parent.parent / "docs" / "specs" / "aos-hooks.md"


@pytest.mark.parametrize("hook", list(HOOKS))
def test_every_hook_is_documented(hook: str) -> None:
    headings = set(re.findall(r"^### (\S+)\s*$", DOCS.read_text(encoding="utf-8"), re.M))
    assert hook in headings, f"docs/specs/aos-hooks.md has no '### {hook}' section"


class Recorder:
    """Implements every hook and records which ones the kernel called."""

    def __init__(self) -> None:
        self.fired: set[str] = set()

    @hookimpl
    def daemon_start(self, event: Any) -> None:
        self.fired.add("daemon.start")

    @hookimpl
    def daemon_stop(self, event: Any) -> None:
        self.fired.add("daemon.stop")

    @hookimpl
    def agent_create(self, output: dict[str, Any]) -> dict[str, Any]:
        self.fired.add("agent.create")
        return output

    @hookimpl
    def session_create(self, event: Any) -> None:
        self.fired.add("session.create")

    @hookimpl
    def session_assemble(self, input: Any) -> None:
        self.fired.add("session.assemble")

    @hookimpl
    def dispatch_before(self, output: dict[str, Any]) -> dict[str, Any]:
        self.fired.add("dispatch.before")
        return output

    @hookimpl
    def compute_before(self, output: dict[str, Any]) -> dict[str, Any]:
        self.fired.add("compute.before")
        return output

    @hookimpl
    def compute_after(self, output: dict[str, Any]) -> dict[str, Any]:
        self.fired.add("compute.after")
        return output

    @hookimpl
    def tool_before(self, output: dict[str, Any]) -> dict[str, Any]:
        self.fired.add("tool.before")
        return output

    @hookimpl
    def tool_after(self, output: dict[str, Any]) -> dict[str, Any]:
        self.fired.add("tool.after")
        return output

    @hookimpl
    def dispatch_after(self, event: Any) -> None:
        self.fired.add("dispatch.after")

    @hookimpl
    def history_append(self, event: Any) -> None:
        self.fired.add("history.append")

    @hookimpl
    def skill_load(self, event: Any) -> None:
        self.fired.add("skill.load")

    @hookimpl
    def skill_unload(self, event: Any) -> None:
        self.fired.add("skill.unload")

    @hookimpl
    def syscall_before(self, output: dict[str, Any]) -> dict[str, Any]:
        self.fired.add("syscall.before")
        return output

    @hookimpl
    def cli_register(self, cli: click.Group) -> None:
        self.fired.add("cli.register")


def test_recorder_implements_every_hook() -> None:
    implemented = {name.replace("_", ".", 1) for name in vars(Recorder) if not name.startswith("_")}
    assert implemented == set(HOOKS)


async def exercise(kernel: Kernel, llm: ScriptedLLM) -> set[str]:
    """Everything the kernel does, with a recorder registered as a default skill."""
    recorder = Recorder()
    kernel.pm.register(recorder, name="aos-skill")  # a default skill: active for every agent
    agent = await kernel.syscall(ADMIN, "agent.create", {"name": "hooked"})
    session = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]})
    await kernel.syscall(
        ADMIN,
        "session.append",
        {"id": session["id"], "fact": {"kind": "message.user", "text": "hi"}},
    )
    skill_dir = kernel.config.skill_root_paths[0] / "notes"
    skill_dir.mkdir(parents=True)
    (skill_dir / "SKILL.md").write_text("---\nname: notes\ndescription: Keeps notes.\n---\nBody.\n")
    kernel.skills.refresh([skill_dir])
    await kernel.syscall(ADMIN, "skill.load", {"name": "notes", "session_id": session["id"]})
    await kernel.syscall(ADMIN, "skill.unload", {"name": "notes", "session_id": session["id"]})
    # a third-party service's call (the admin's never reach syscall.before)
    await kernel.syscall(service_principal("recorder", frozenset({"agent.read"})), "agent.list")
    llm.add(Reply.tool_call("true"), Reply.text("done"))
    outcome = await kernel.syscall(
        ADMIN, "session.dispatch", {"id": session["id"], "message": "go"}
    )
    assert outcome["status"] == "completed", outcome
    kernel.hooks.register_cli(click.Group("aos"))
    await kernel.hooks.drain()
    return recorder.fired


@pytest.mark.anyio
@pytest.mark.parametrize("hook", list(HOOKS))
async def test_every_hook_is_fired_by_the_kernel(
    model_kernel: Kernel, scripted_llm: ScriptedLLM, hook: str
) -> None:
    if hook.startswith("daemon."):
        fired = await exercise_daemon()
    else:
        fired = await exercise(model_kernel, scripted_llm)
    assert hook in fired


async def exercise_daemon() -> set[str]:
    """A daemon's life: start, serve, stop (its hooks have no session)."""
    home = Path(tempfile.mkdtemp(prefix="aos-", dir="/tmp"))
    try:
        config = load_config(environ={"AOS_HOME": str(home)}, cwd=home)
        kernel = await Kernel.open(config, load_plugins=False)
        recorder = Recorder()
        kernel.pm.register(recorder, name="recorder")
        ready = asyncio.Event()
        task = asyncio.get_running_loop().create_task(Daemon(config, kernel).run(ready=ready))
        with anyio.fail_after(30):
            await ready.wait()
            kernel.shutdown_requested.set()
            await task
        return recorder.fired
    finally:
        shutil.rmtree(home, ignore_errors=True)
