"""aos-budget on a real daemon: an agent whose model calls in the window pass its
budget (aoscb.json "budgets") has its next model call refused, with the reason in
its history; an agent without a budget is not touched; a bad entry is a doctor line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aos_sdk import Client
from conftest import poll_until
from test_services import running

from aos.facts import Usage
from aos.testing import Reply, ScriptedLLM, temporary_daemon

pytestmark = pytest.mark.anyio

SPENT = Usage(prompt_tokens=700, completion_tokens=100)


async def test_a_dispatch_that_crosses_the_budget_stops_at_the_next_model_call(
    tmp_path: Path,
) -> None:
    (tmp_path / "skills").mkdir()
    budgets = {"spender": {"tokens": 1000}, "thrifty": {"cost": "cheap"}}
    (tmp_path / "aoscb.json").write_text(json.dumps({"budgets": budgets}))
    with ScriptedLLM(
        Reply.tool_call("true", usage=SPENT),  # 800 tokens: under 1,000
        Reply.tool_call("true", usage=SPENT),  # 1,600: over, after this call
    ) as llm:
        async with temporary_daemon(
            tmp_path,
            AOS_MODEL="m",
            OPENROUTER_BASE_URL=llm.base_url,
            AOS_DEFAULT_SKILLS="aos-context,aos-budget",
        ) as daemon:
            await poll_until(lambda: running(daemon, "aos-budget"))
            async with Client(daemon.paths.control_socket, token="") as client:
                agent = await client.call("agent.create", {"name": "spender"})
                session = await client.call("session.create", {"agent_id": agent["agent"]["id"]})
                outcome = await client.call(
                    "session.dispatch", {"id": session["id"], "message": "spend"}
                )
                assert outcome["status"] == "rejected", outcome
                reason = (
                    "compute.before rejected by aos-budget: agent spender has spent 1,600 "
                    "tokens in the last 24 h, its budget is 1,000 (aoscb.json budgets.spender)"
                )
                assert outcome["error"].startswith(reason), outcome["error"]
                history = await client.call("session.history", {"id": session["id"]})
                [end] = [h["fact"] for h in history if h["fact"]["kind"] == "dispatch.finished"]
                assert end["status"] == "rejected" and end["error"] == outcome["error"]
                assert len(llm.requests) == 2  # the third model call was never made

                llm.add(Reply.text("free to talk"))  # no budget: not touched
                other = await client.call("agent.create", {"name": "other"})
                session = await client.call("session.create", {"agent_id": other["agent"]["id"]})
                free = await client.call("session.dispatch", {"id": session["id"], "message": "hi"})
                assert (free["status"], free["answer"]) == ("completed", "free to talk")

                problems = await client.call(
                    "skill.call", {"skill": "aos-budget", "method": "doctor", "params": {}}
                )
                assert len(problems) == 1 and problems[0].startswith("budgets.thrifty: ")
