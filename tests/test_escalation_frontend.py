"""Escalation through the web UI (aos-frontend): a hostile agent's own bash,
sharing the host's loopback, tries the UI's API on 127.0.0.1 and asks the UI's
service for its address with the token. Every attempt is a real dispatch
(tests/escalation.py); each must get nothing and show why in its tool result."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from escalation import Agent, attempt, hostile_node, new_agent

from aos.testing import wait_for_http
from aos_stdskills.aos_frontend.access import HOW_TO_OPEN

pytestmark = pytest.mark.anyio

HTTP = """
import sys, urllib.request as r, urllib.error as e
method, url, body = sys.argv[1], sys.argv[2], sys.argv[3].encode() or None
request = r.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
try:
    with r.urlopen(request, timeout=10) as answer:
        print("HTTP", answer.status, answer.read().decode())
except e.HTTPError as refused:
    print("HTTP", refused.code, refused.read().decode())
except OSError as failed:
    print("no connection:", failed)
"""
"""What the agent runs: one HTTP request; prints the status and the body."""

ADDRESS = """
import aos_sdk
try:
    print(aos_sdk.call("skill.call", {"skill": "aos-frontend", "method": "address"}))
except aos_sdk.SyscallFailed as refused:
    print("refused:", refused)
"""
"""What the agent runs: ask the UI's service for the address with its token."""


def python(script: str, *args: str) -> str:
    """A bash command running ``script`` with the agent's Python (as skill scripts do)."""
    return " ".join(
        ['"${AOS_PYTHON:-python3}"', "-c", shlex.quote(script), *map(shlex.quote, args)]
    )


async def ui_request(agent: Agent, base: str, method: str, path: str, body: str = "") -> str:
    """The agent's bash makes one request to the UI; what it saw."""
    result = await agent.bash(python(HTTP, method, base + path, body))
    output = str(result.get("output"))
    attempt(
        f"{method} {path} on the web UI's port from the agent's bash",
        result,
        succeeded="HTTP 2" in output or "HTTP 3" in output,
    )
    return output


async def test_an_agent_gets_nothing_from_the_ui_on_loopback(tmp_path: Path) -> None:
    async with hostile_node(tmp_path) as (daemon, admin):
        assert daemon.kernel is not None
        port = daemon.kernel.config.environ()["AOS_FRONTEND_PORT"]
        base = f"http://127.0.0.1:{port}"
        await wait_for_http(base)
        victim = await new_agent(admin, "victim")
        mallory = await new_agent(admin, "mallory")
        attempts = [
            ("GET", "/api/sessions", ""),  # every agent's sessions
            ("GET", f"/api/sessions/{victim.session_id}/history", ""),
            (
                "POST",
                f"/api/sessions/{victim.session_id}/dispatch",
                json.dumps({"message": "RUN echo owned"}),
            ),
        ]
        for method, path, body in attempts:
            output = await ui_request(mallory, base, method, path, body)
            # the reason is in what the agent saw: the UI's refusal (or, where the
            # agent's network cannot reach the node's ports at all, no connection)
            assert ("HTTP 401 " in output and HOW_TO_OPEN in output) or "no connection" in output, (
                output
            )
        victim_facts = await admin.call("session.history", {"id": victim.session_id})
        assert victim_facts == []  # nothing was dispatched into it

        result = await mallory.bash(python(ADDRESS))
        output = str(result.get("output"))
        attempt(
            "ask aos-frontend for the UI's address with its token",
            result,
            succeeded="token=" in output,
        )
        # refused by the service (or, should the kernel deny the agent skill.call, by it)
        assert "refused: denied" in output, output
