"""Agent inheritance (aos/agent.py): lineage, effective configuration, skills that add up, scopes that narrow."""

from __future__ import annotations

import pytest
from conftest import WIDE, expect, install, live_token, make_agent

from aos.kernel import Kernel
from aos.principals import (
    ADMIN,
    agent_principal,
)
from aos.testing import ScriptedLLM

pytestmark = pytest.mark.anyio


async def test_agent_tree_and_inheritance(kernel: Kernel) -> None:
    install(kernel, "pdf")
    lead = await make_agent(kernel, "lead", config={"model": "big-model", "skills": ["pdf"]})
    worker = await make_agent(kernel, "worker", parent=lead["agent"]["id"])
    assert worker["effective"]["model"] == "big-model"
    assert worker["effective"]["skills"] == ["pdf"]
    assert worker["effective"]["scopes"] == lead["effective"]["scopes"]
    special = await make_agent(
        kernel, "special", parent=lead["agent"]["id"], config={"model": "small-model"}
    )
    assert special["effective"]["model"] == "small-model"
    assert special["effective"]["skills"] == ["pdf"]
    children = await kernel.syscall(ADMIN, "agent.list", {"parent": lead["agent"]["id"]})
    assert [c["name"] for c in children] == ["worker", "special"]
    # changing the parent changes what children inherit
    await kernel.syscall(
        ADMIN, "agent.update", {"id": lead["agent"]["id"], "config": {"model": "m2"}}
    )
    worker_now = await kernel.syscall(ADMIN, "agent.get", {"id": worker["agent"]["id"]})
    assert worker_now["effective"]["model"] == "m2"
    assert worker_now["effective"]["skills"] == []


async def test_child_never_widens_scopes(kernel: Kernel) -> None:
    narrow = ["agent.read", "agent.write", "session.read"]
    parent = await make_agent(kernel, "narrow", scopes=narrow)
    parent_id = parent["agent"]["id"]
    message = await expect(
        "denied", kernel, ADMIN, "agent.create",
        {"name": "wide", "parent": parent_id, "scopes": [*narrow, "session.write"]},
    )  # fmt: skip
    assert "lacks scope(s) session.write" in message
    child = await make_agent(kernel, "child", parent=parent_id)
    assert child["effective"]["scopes"] == sorted(narrow)
    child_id = child["agent"]["id"]
    await expect(
        "denied", kernel, ADMIN, "agent.update", {"id": child_id, "scopes": ["session.dispatch"]}
    )
    await expect(
        "denied", kernel, ADMIN, "agent.create", {"name": "root", "scopes": ["kernel.admin"]}
    )
    await expect(
        "invalid", kernel, ADMIN, "agent.create", {"name": "typo", "scopes": ["sesion.read"]}
    )


async def test_children_cannot_drop_inherited_skills(kernel: Kernel) -> None:
    install(kernel, "policy-skill", "pdf")
    lead = await make_agent(kernel, "lead", config={"skills": ["policy-skill"]})
    child = await make_agent(kernel, "kid", parent=lead["agent"]["id"], config={"skills": ["pdf"]})
    assert child["effective"]["skills"] == ["policy-skill", "pdf"]
    updated = await kernel.syscall(
        ADMIN, "agent.update", {"id": child["agent"]["id"], "config": {"skills": []}}
    )
    assert updated["effective"]["skills"] == ["policy-skill"]
    assert "policy-skill" in await kernel.agents.active_skills(child["agent"]["id"])


async def test_a_narrow_token_cannot_create_a_wider_child(
    model_kernel: Kernel, scripted_llm: ScriptedLLM
) -> None:
    kernel = model_kernel
    lead = await make_agent(kernel, "lead", scopes=WIDE)
    session = await kernel.syscall(ADMIN, "session.create", {"agent_id": lead["agent"]["id"]})
    async with live_token(kernel, scripted_llm, session["id"]) as token:
        issued = kernel.tokens.verify(token)
        narrow = agent_principal(
            issued.agent_id or "", issued.session_id, frozenset({"agent.read", "agent.write"}),
            issued.dispatch_id,
        )  # fmt: skip
        me = kernel.tokens.verify(kernel.tokens.issue(narrow))  # as if the lead were narrowed
        await expect(
            "denied", kernel, me, "agent.create",
            {"name": "wide", "parent": lead["agent"]["id"], "scopes": ["session.write"]},
        )  # fmt: skip
        child = await kernel.syscall(
            me, "agent.create", {"name": "kid", "parent": lead["agent"]["id"]}
        )
        assert child["effective"]["scopes"] == ["agent.read", "agent.write"]


async def test_admin_may_grant_a_root_agent_non_default_scopes(kernel: Kernel) -> None:
    ops = await make_agent(kernel, "ops", scopes=["log.read", "hook.read", "session.read"])
    assert ops["effective"]["scopes"] == ["hook.read", "log.read", "session.read"]
