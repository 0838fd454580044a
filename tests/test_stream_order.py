"""One ordered stream: a dispatch's events reach subscribers in history order.

A step's results commit while the next step's model call already streams (they are
appended ahead); the kernel holds that text until the results are announced, so no
consumer (the CLI, the UI, any events.subscribe) needs to reorder."""

from __future__ import annotations

from typing import Any

import pytest

from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.testing import Reply, ScriptedLLM

pytestmark = pytest.mark.anyio

ROUNDS = 200


async def test_the_next_steps_text_never_precedes_the_last_result(
    model_kernel: Kernel, scripted_llm: ScriptedLLM, db_url: str
) -> None:
    rounds = ROUNDS if db_url.startswith("sqlite") else ROUNDS // 4
    agent = await model_kernel.syscall(ADMIN, "agent.create", {"name": "a"})
    for n in range(rounds):
        session = await model_kernel.syscall(
            ADMIN, "session.create", {"agent_id": agent["agent"]["id"]}
        )
        seen: list[tuple[str, Any]] = []
        sub = model_kernel.events.subscribe(
            lambda topic, data, seen=seen: seen.append((topic, data)),
            topics=frozenset({"history.append", "stream"}),
            session_id=session["id"],
        )
        scripted_llm.add(Reply.tool_call("echo listed"), Reply.text("This is the answer.", chunk=4))
        try:
            outcome = await model_kernel.syscall(
                ADMIN, "session.dispatch", {"id": session["id"], "message": f"round {n}"}
            )
        finally:
            model_kernel.events.unsubscribe(sub.id)
        assert outcome["status"] == "completed", outcome
        order = [
            data["fact"]["kind"] if topic == "history.append" else "stream" for topic, data in seen
        ]
        result, text = order.index("tool.result"), order.index("stream")
        assert result < text, (n, order)
        seqs = [data["seq"] for topic, data in seen if topic == "history.append"]
        assert seqs == sorted(seqs) == list(range(seqs[0], seqs[0] + len(seqs)))
