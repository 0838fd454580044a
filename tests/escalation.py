"""The escalation suite's harness: a hostile agent, every attempt made by its own bash.

Each attempt is a real dispatch: the scripted model answers a user message
``RUN <command>`` with one bash call of that command, then ends the turn. The
tool result the agent saw comes back to the test, which judges whether the
attempt got through and records it with :func:`attempt`; the session summary
prints how many attempts were made and how many succeeded (the goal: none).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aos_sdk import Client
from conftest import running_daemon

from aos.daemon import Daemon
from aos.testing import Reply, ScriptedLLM

PREFIX = "RUN "
ATTEMPTS: list[tuple[str, bool]] = []
"""(what was tried, whether it succeeded), in the order made."""


def hostile_model(body: dict[str, Any]) -> Reply:
    """Runs what the user message says, once, then stops."""
    last = body["messages"][-1]
    content = str(last.get("content") or "")
    if last["role"] == "user" and content.startswith(PREFIX):
        return Reply.tool_call(content.removeprefix(PREFIX))
    return Reply.text("done")


def attempt(what: str, result: dict[str, Any], *, succeeded: bool) -> None:
    """Record an attempt and fail the test when it got through."""
    ATTEMPTS.append((what, succeeded))
    assert not succeeded, f"escalation succeeded: {what}: {result.get('output')!r}"


@dataclass
class Agent:
    """An agent with a session of its own, driven through the admin client."""

    client: Client
    id: str
    session_id: str

    async def bash(self, command: str) -> dict[str, Any]:
        """Dispatch one command into the agent's own bash; its ``tool.result`` fact."""
        before = await self.client.call("session.history", {"id": self.session_id})
        await self.client.call(
            "session.dispatch", {"id": self.session_id, "message": PREFIX + command}
        )
        facts = [
            h["fact"]
            for h in await self.client.call(
                "session.history", {"id": self.session_id, "after": len(before)}
            )
        ]
        results = [f for f in facts if f["kind"] == "tool.result"]
        assert results, f"the command did not run: {facts}"
        return results[-1]


async def new_agent(client: Client, name: str, **create: Any) -> Agent:
    agent = (await client.call("agent.create", {"name": name, **create}))["agent"]["id"]
    session = (await client.call("session.create", {"agent_id": agent}))["id"]
    return Agent(client, agent, session)


@asynccontextmanager
async def hostile_node(
    project: Path, model: Callable[[dict[str, Any]], Reply] = hostile_model, **environ: str
) -> AsyncIterator[tuple[Daemon, Client]]:
    """A daemon for ``project`` whose model runs what it is told (``model``), and an
    admin client."""
    with ScriptedLLM(default=model) as llm:
        async with running_daemon(
            project, OPENROUTER_BASE_URL=llm.base_url, AOS_MODEL="m", **environ
        ) as daemon:
            async with Client(daemon.paths.control_socket, token="") as client:
                yield daemon, client
