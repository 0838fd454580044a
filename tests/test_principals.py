"""Principals and tokens (aos/principals.py): who an agent's token makes it, for how long, and what a service may do."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import WIDE, agent_with_token, expect, make_agent

from aos.kernel import Kernel
from aos.principals import (
    ADMIN,
    DEFAULT_AGENT_SCOPES,
    InvalidToken,
    TokenAuthority,
    agent_principal,
    service_principal,
)
from aos.testing import ScriptedLLM

pytestmark = pytest.mark.anyio


async def test_agent_token_boundaries(model_kernel: Kernel, scripted_llm: ScriptedLLM) -> None:
    kernel = model_kernel
    bob = await make_agent(kernel, "bob")
    b_session = await kernel.syscall(ADMIN, "session.create", {"agent_id": bob["agent"]["id"]})
    async with agent_with_token(kernel, scripted_llm, "alice", scopes=WIDE) as (alice, own, me):
        assert "lacks scope 'kernel.admin'" in await expect("denied", kernel, me, "kernel.config")
        await kernel.syscall(me, "kernel.status")  # granted by the admin
        assert "outside its subtree" in await expect(
            "denied", kernel, me, "session.history", {"id": b_session["id"]}
        )
        await expect("denied", kernel, me, "session.get", {"id": b_session["id"]})
        await expect("denied", kernel, me, "agent.get", {"id": bob["agent"]["id"]})
        await expect("denied", kernel, me, "agent.create", {"name": "rootless"})
        await expect(
            "denied", kernel, me, "agent.create",
            {"name": "bobs-child", "parent": bob["agent"]["id"]},
        )  # fmt: skip
        # inside its subtree it works
        mine = await kernel.syscall(
            me, "agent.create", {"name": "helper", "parent": alice["agent"]["id"]}
        )
        helper = await kernel.syscall(me, "session.create", {"agent_id": mine["agent"]["id"]})
        await kernel.syscall(
            me,
            "session.append",
            {"id": helper["id"], "fact": {"kind": "message.user", "text": "hi"}},
        )
        assert [a["name"] for a in await kernel.syscall(me, "agent.list")] == ["alice", "helper"]
        listed = await kernel.syscall(me, "session.list")
        assert {s["id"] for s in listed} == {own, helper["id"]}
    # the dispatch is over: so is its token
    assert "this token's dispatch has ended" in await expect(
        "denied", kernel, me, "session.history", {"id": own}
    )


async def test_the_default_agent_token_holds_what_the_harness_needs(
    model_kernel: Kernel, scripted_llm: ScriptedLLM
) -> None:
    kernel = model_kernel
    async with agent_with_token(kernel, scripted_llm, "plain") as (agent, own, me):
        assert me.scopes == frozenset(DEFAULT_AGENT_SCOPES)
        assert me.dispatch_id == kernel.dispatches[own].dispatch_id
        await kernel.syscall(me, "session.history", {"id": own})
        await kernel.syscall(me, "skill.list")
        for name, params in [
            ("kernel.status", {}),
            ("agent.create", {"name": "kid", "parent": agent["agent"]["id"]}),
            ("session.create", {}),
            ("session.dispatch", {"id": own, "message": "again"}),
        ]:
            assert "lacks scope" in await expect("denied", kernel, me, name, params)


async def test_tokens_cannot_be_forged_or_reused_after_expiry(
    kernel: Kernel, tmp_path: Any
) -> None:
    principal = agent_principal("agt_x", "ses_x", frozenset({"session.read"}))
    token = kernel.tokens.issue(principal)
    assert kernel.tokens.verify(token) == principal
    other_node = TokenAuthority.from_file(tmp_path / "other.key")
    with pytest.raises(InvalidToken, match="signature"):
        other_node.verify(token)
    prefix, payload, signature = token.split(".")
    with pytest.raises(InvalidToken):
        kernel.tokens.verify(f"{prefix}.{payload}x.{signature}")
    with pytest.raises(InvalidToken, match="expired"):
        kernel.tokens.verify(kernel.tokens.issue(principal, ttl=-1))
    with pytest.raises(InvalidToken, match="malformed"):
        kernel.tokens.verify("nonsense")
    assert (kernel.config.paths.state_dir / "token.key").stat().st_mode & 0o777 == 0o600


async def test_service_principal_has_only_granted_scopes(kernel: Kernel) -> None:
    ui = service_principal("aos-frontend", frozenset({"agent.read", "kernel.admin"}))
    await kernel.syscall(ui, "agent.list")
    await expect("denied", kernel, ui, "agent.create", {"name": "x"})
    await expect("denied", kernel, ui, "kernel.config")  # admin-only scopes are never granted
