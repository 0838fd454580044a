"""Faults tell the truth: what a fault campaign found, each a regression test.

Runs on both backends (``model_kernel``): real dispatches, the real LLM client
against the scripted server, real bash."""

from __future__ import annotations

from typing import Any

import pytest

from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.testing import Reply, ScriptedLLM

pytestmark = pytest.mark.anyio


async def dispatch(kernel: Kernel, message: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A new agent's session dispatched ``message``: ``(outcome, facts)``."""
    agent = await kernel.syscall(ADMIN, "agent.create", {"name": "a"})
    session = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]})
    outcome = await kernel.syscall(
        ADMIN, "session.dispatch", {"id": session["id"], "message": message}
    )
    history = await kernel.syscall(ADMIN, "session.history", {"id": session["id"]})
    scb = await kernel.syscall(ADMIN, "session.get", {"id": session["id"]})
    assert scb["status"] == "idle"  # never left running
    return outcome, [h["fact"] for h in history]


async def test_a_nul_byte_in_output_and_prompt_is_kept(
    model_kernel: Kernel, scripted_llm: ScriptedLLM
) -> None:
    """PostgreSQL refused NUL: the dispatch failed after the model had seen the
    output, the finished command was recorded as lost, the session stayed running."""
    scripted_llm.add(Reply.tool_call("printf 'a\\000b'"), Reply.text("done"))
    outcome, facts = await dispatch(model_kernel, "say a\x00b")
    assert outcome["status"] == "completed", outcome
    [user] = [f for f in facts if f["kind"] == "message.user"]
    assert user["text"] == "say a\x00b"
    [result] = [f for f in facts if f["kind"] == "tool.result"]
    assert result["output"] == "a\x00b"
    assert result.get("status", "ok") == "ok"
    assert scripted_llm.requests[1].body["messages"][-1]["content"].startswith("a\x00b")


# -- every input bounded ------------------------------------------------------------------


async def test_a_message_over_the_context_budget_is_refused_at_the_door(
    model_kernel: Kernel,
) -> None:
    """A 5 MB prompt went to the model whole despite context_budget 100000."""
    from aos.syscalls import SyscallError

    agent = await model_kernel.syscall(ADMIN, "agent.create", {"name": "a"})
    session = await model_kernel.syscall(
        ADMIN, "session.create", {"agent_id": agent["agent"]["id"]}
    )
    huge = "word " * 100_001  # about 125,001 tokens
    with pytest.raises(SyscallError) as refused:
        await model_kernel.syscall(
            ADMIN, "session.dispatch", {"id": session["id"], "message": huge}
        )
    assert refused.value.code == "invalid"
    assert str(refused.value.message).startswith(
        "session.dispatch: the message is about 125,001 tokens, over the context budget of "
        "100,000 (limits.context_budget)"
    )
    assert await model_kernel.syscall(ADMIN, "session.history", {"id": session["id"]}) == []
    scb = await model_kernel.syscall(ADMIN, "session.get", {"id": session["id"]})
    assert scb["status"] == "idle"
