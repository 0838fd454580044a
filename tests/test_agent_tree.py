"""Per-agent system-prompt additions that add up along the tree, and moving an agent
to another parent (agent.update's ``parent``), on both backends."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from conftest import WIDE, agent_with_token, expect, install, kernel_with_model, make_agent

from aos.agent import PROMPT_MAX
from aos.kernel import Kernel
from aos.principals import ADMIN, service_principal
from aos.syscalls import SyscallError
from aos.syscalls.agent import _moved
from aos.testing import ScriptedLLM

pytestmark = pytest.mark.anyio


async def system_message(kernel: Kernel, agent_id: str) -> str:
    session = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent_id})
    context = await kernel.syscall(ADMIN, "session.context", {"id": session["id"]})
    assert context[0]["role"] == "system"
    return context[0]["content"]


async def test_prompts_add_up_along_the_lineage_after_the_nodes(
    db_url: str, tmp_path: Path, scripted_llm: ScriptedLLM
) -> None:
    async with kernel_with_model(
        db_url, tmp_path, scripted_llm, AOS_PROMPT="NODE: be terse."
    ) as kernel:
        lead = await make_agent(kernel, "lead", config={"prompt": "LEAD: you review code."})
        kid = await make_agent(
            kernel, "kid", parent=lead["agent"]["id"], config={"prompt": "KID: only Python."}
        )
        assert kid["agent"]["config"]["prompt"] == "KID: only Python."
        assert kid["effective"]["prompt"] == "LEAD: you review code.\n\nKID: only Python."
        system = await system_message(kernel, kid["agent"]["id"])
        node, lead_at, kid_at = (system.index(p) for p in ("NODE:", "LEAD:", "KID:"))
        assert node < lead_at < kid_at
        assert "be terse.\n\nLEAD: you review code.\n\nKID: only Python." in system
        # a child without its own addition still has its ancestors'
        quiet = await make_agent(kernel, "quiet", parent=kid["agent"]["id"])
        assert quiet["effective"]["prompt"] == kid["effective"]["prompt"]
        # an agent without any has the node's alone
        plain = await make_agent(kernel, "plain")
        assert plain["effective"]["prompt"] == ""
        assert "LEAD:" not in await system_message(kernel, plain["agent"]["id"])
        # the size is bounded
        too_long = {"prompt": "x" * (PROMPT_MAX + 1)}
        assert "config.prompt" in await expect(
            "invalid", kernel, ADMIN, "agent.create", {"name": "big", "config": too_long}
        )
        await expect(
            "invalid", kernel, ADMIN, "agent.update",
            {"id": kid["agent"]["id"], "config": too_long},
        )  # fmt: skip


async def test_an_agent_adds_to_prompts_but_its_ancestors_stay(
    model_kernel: Kernel, scripted_llm: ScriptedLLM
) -> None:
    kernel = model_kernel
    lead = await make_agent(kernel, "lead", scopes=WIDE, config={"prompt": "LEAD rules."})
    params = {"parent": lead["agent"]["id"], "config": {"prompt": "mine"}}
    async with agent_with_token(kernel, scripted_llm, "worker", **params) as (worker, _, me):
        worker_id = worker["agent"]["id"]
        # an agent replaces (or clears) its own addition and sets its children's
        info = await kernel.syscall(
            me, "agent.update", {"id": worker_id, "config": {"prompt": "mine, reworded"}}
        )
        assert info["effective"]["prompt"] == "LEAD rules.\n\nmine, reworded"
        child = await kernel.syscall(
            me, "agent.create", {"name": "child", "parent": worker_id, "config": {"prompt": "c"}}
        )
        assert child["effective"]["prompt"] == "LEAD rules.\n\nmine, reworded\n\nc"
        info = await kernel.syscall(me, "agent.update", {"id": worker_id, "config": {}})
        assert info["effective"]["prompt"] == "LEAD rules."  # the ancestor's is not its own
        await expect(
            "denied", kernel, me, "agent.update",
            {"id": lead["agent"]["id"], "config": {}},
        )  # fmt: skip


async def test_moving_an_agent_changes_what_it_inherits(kernel: Kernel) -> None:
    install(kernel, "pdf", "notes")
    a = await make_agent(kernel, "a", config={"skills": ["notes"], "prompt": "A."})
    a_id = a["agent"]["id"]
    a_kid = await make_agent(kernel, "a-kid", parent=a_id)
    b = await make_agent(kernel, "b", config={"skills": ["pdf"], "prompt": "B.", "max_steps": 7})
    b_id = b["agent"]["id"]
    moved = await kernel.syscall(ADMIN, "agent.update", {"id": a_id, "parent": b_id})
    assert moved["agent"]["parent"] == b_id
    assert moved["agent"]["revision"] == a["agent"]["revision"] + 1
    assert moved["effective"]["skills"] == ["pdf", "notes"]
    assert moved["effective"]["prompt"] == "B.\n\nA."
    assert moved["effective"]["max_steps"] == 7
    # its sessions, and its descendants, inherit through the new parent
    session = await kernel.syscall(ADMIN, "session.create", {"agent_id": a_id})
    assert {"pdf", "notes"} <= await kernel.agents.active_skills(a_id, session["id"])
    kid_now = await kernel.syscall(ADMIN, "agent.get", {"id": a_kid["agent"]["id"]})
    assert kid_now["effective"]["prompt"] == "B.\n\nA."
    assert [c["id"] for c in await kernel.syscall(ADMIN, "agent.list", {"parent": b_id})] == [a_id]
    # naming the current parent changes nothing; "" makes it a root agent again
    same = await kernel.syscall(ADMIN, "agent.update", {"id": a_id, "parent": b_id})
    assert same["agent"]["parent"] == b_id
    root = await kernel.syscall(ADMIN, "agent.update", {"id": a_id, "parent": ""})
    assert root["agent"]["parent"] is None
    assert root["effective"]["skills"] == ["notes"]
    assert root["effective"]["prompt"] == "A."
    # a service with agent.write may move agents too
    service = service_principal("aos-frontend", frozenset({"agent.write"}))
    info = await kernel.syscall(service, "agent.update", {"id": a_id, "parent": b_id})
    assert info["agent"]["parent"] == b_id


async def test_a_move_is_refused_where_it_would_break_the_tree(kernel: Kernel) -> None:
    a = await make_agent(kernel, "a", scopes=["session.read", "session.write"])
    a_id = a["agent"]["id"]
    kid = await make_agent(kernel, "kid", parent=a_id)
    grandkid = await make_agent(kernel, "grandkid", parent=kid["agent"]["id"])
    b = await make_agent(kernel, "b", scopes=["session.read"])
    b_id = b["agent"]["id"]
    assert "cannot move under itself: that would make a cycle" in await expect(
        "conflict", kernel, ADMIN, "agent.update", {"id": a_id, "parent": a_id}
    )
    message = await expect(
        "conflict", kernel, ADMIN, "agent.update", {"id": a_id, "parent": grandkid["agent"]["id"]}
    )
    assert f"its descendant {grandkid['agent']['id']}: that would make a cycle" in message
    assert "agent agt_none not found" in await expect(
        "not_found", kernel, ADMIN, "agent.update", {"id": a_id, "parent": "agt_none"}
    )
    # its own scopes must fit under the new parent's
    message = await expect("denied", kernel, ADMIN, "agent.update", {"id": a_id, "parent": b_id})
    assert f"parent agent {b_id} lacks scope(s) session.write" in message
    # unless the same update narrows them
    moved = await kernel.syscall(
        ADMIN, "agent.update", {"id": a_id, "parent": b_id, "scopes": ["session.read"]}
    )
    assert moved["effective"]["scopes"] == ["session.read"]
    # an archived parent takes no children
    gone = await make_agent(kernel, "gone")
    await kernel.syscall(ADMIN, "agent.archive", {"id": gone["agent"]["id"]})
    assert "is archived" in await expect(
        "conflict", kernel, ADMIN, "agent.update", {"id": a_id, "parent": gone["agent"]["id"]}
    )
    # nothing of the refused moves was written
    after = await kernel.syscall(ADMIN, "agent.get", {"id": a_id})
    assert after["agent"]["parent"] == b_id
    assert after["agent"]["revision"] == moved["agent"]["revision"]


async def test_an_agent_may_not_move_agents(
    model_kernel: Kernel, scripted_llm: ScriptedLLM
) -> None:
    kernel = model_kernel
    async with agent_with_token(kernel, scripted_llm, "lead", scopes=WIDE) as (lead, _, me):
        lead_id = lead["agent"]["id"]
        one = await kernel.syscall(me, "agent.create", {"name": "one", "parent": lead_id})
        two = await kernel.syscall(me, "agent.create", {"name": "two", "parent": lead_id})
        one_id = one["agent"]["id"]
        for parent in (two["agent"]["id"], ""):
            assert "re-parenting is an admin decision" in await expect(
                "denied", kernel, me, "agent.update", {"id": one_id, "parent": parent}
            )
        # naming the parent it has is no move
        await kernel.syscall(me, "agent.update", {"id": one_id, "parent": lead_id})
        # moved out of its subtree by the admin, the agent no longer reaches it
        other = await make_agent(kernel, "other")
        await kernel.syscall(ADMIN, "agent.update", {"id": one_id, "parent": other["agent"]["id"]})
        assert "outside its subtree" in await expect(
            "denied", kernel, me, "agent.get", {"id": one_id}
        )


async def test_a_move_that_meets_a_concurrent_one_closing_a_cycle_is_undone(
    kernel: Kernel,
) -> None:
    a = await kernel.agents.get((await make_agent(kernel, "a"))["agent"]["id"])
    b = await kernel.agents.get((await make_agent(kernel, "b"))["agent"]["id"])
    # both checked the tree before either wrote: b goes under a, a under b
    await kernel.agents.update(msgspec.structs.replace(b, parent=a.id))
    moved = await kernel.agents.update(msgspec.structs.replace(a, parent=b.id))
    with pytest.raises(SyscallError) as info:
        await _moved(kernel, moved, None)
    assert info.value.code == "conflict"
    assert "a concurrent move closed a cycle" in info.value.message
    assert (await kernel.agents.get(a.id)).parent is None
    assert [x.id for x in await kernel.agents.lineage(b.id)] == [a.id, b.id]
