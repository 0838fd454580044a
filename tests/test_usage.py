"""session.usage on both backends (the store adds up the history's model calls in
SQL of each backend's JSON): totals and by model, by session and by agent, a cost
only where the provider reported one, and an agent limited to its subtree."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import expect, live_token

from aos.facts import Usage
from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.testing import Reply, ScriptedLLM

pytestmark = pytest.mark.anyio


async def dispatch(kernel: Kernel, agent: str, model: str | None = None) -> str:
    session = (await kernel.syscall(ADMIN, "session.create", {"agent_id": agent}))["id"]
    params: dict[str, Any] = {"id": session, "message": "count"}
    if model is not None:
        params["model"] = model
    outcome = await kernel.syscall(ADMIN, "session.dispatch", params)
    assert outcome["status"] == "completed", outcome
    return str(session)


async def test_totals_by_session_by_agent_and_by_model(
    model_kernel: Kernel, scripted_llm: ScriptedLLM
) -> None:
    kernel = model_kernel
    lead = (await kernel.syscall(ADMIN, "agent.create", {"name": "lead"}))["agent"]["id"]
    idle = (await kernel.syscall(ADMIN, "agent.create", {"name": "idle"}))["agent"]["id"]
    scripted_llm.add(
        Reply.tool_call("true", usage=Usage(prompt_tokens=100, completion_tokens=10, cost=0.5)),
        Reply.text("one", usage=Usage(prompt_tokens=200, completion_tokens=20, cost=0.25)),
        Reply.text("two", usage=Usage(prompt_tokens=7, completion_tokens=3), model="other-model"),
    )
    first = await dispatch(kernel, lead)
    second = await dispatch(kernel, lead, model="other-model")
    empty = (await kernel.syscall(ADMIN, "session.create", {"agent_id": lead}))["id"]

    [a, b, c] = await kernel.syscall(ADMIN, "session.usage", {"ids": [first, second, empty]})
    assert (a["id"], a["calls"], a["input_tokens"], a["output_tokens"]) == (first, 2, 300, 30)
    assert a["cost"] == pytest.approx(0.75)
    assert [m["model"] for m in a["models"]] == [scripted_llm.model]
    assert (b["calls"], b["input_tokens"], b["output_tokens"], b["cost"]) == (1, 7, 3, None)
    assert b["models"] == [
        {"model": "other-model", "calls": 1, "input_tokens": 7, "output_tokens": 3, "cost": None}
    ]
    assert (c["calls"], c["input_tokens"], c["models"], c["cost"]) == (0, 0, [], None)

    by_agent = await kernel.syscall(ADMIN, "session.usage", {"ids": [lead, idle], "by": "agent"})
    assert [(u["id"], u["calls"], u["input_tokens"]) for u in by_agent] == [
        (lead, 3, 307),
        (idle, 0, 0),
    ]
    assert {m["model"] for m in by_agent[0]["models"]} == {scripted_llm.model, "other-model"}
    everyone = await kernel.syscall(ADMIN, "session.usage", {})
    assert {u["id"] for u in everyone} == {first, second, empty}
    await expect("not_found", kernel, ADMIN, "session.usage", {"ids": ["ses_nope"]})


async def test_an_agent_sees_its_own_subtree_only(
    model_kernel: Kernel, scripted_llm: ScriptedLLM
) -> None:
    kernel = model_kernel
    other = (await kernel.syscall(ADMIN, "agent.create", {"name": "other"}))["agent"]["id"]
    theirs = (await kernel.syscall(ADMIN, "session.create", {"agent_id": other}))["id"]
    me = await kernel.syscall(ADMIN, "agent.create", {"name": "me", "scopes": ["session.read"]})
    mine = (await kernel.syscall(ADMIN, "session.create", {"agent_id": me["agent"]["id"]}))["id"]
    async with live_token(kernel, scripted_llm, mine) as token:
        principal = kernel.tokens.verify(token)
        seen = await kernel.syscall(principal, "session.usage", {})
        assert [u["id"] for u in seen] == [mine]
        await expect("denied", kernel, principal, "session.usage", {"ids": [theirs]})
        await expect("denied", kernel, principal, "session.usage", {"ids": [other], "by": "agent"})
