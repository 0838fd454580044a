"""The syscall table through a real kernel on both backends: errors, principals, scopes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from conftest import live_token

from aos.events import Stream, current_stream
from aos.hooks import HookPolicy
from aos.hookspecs import hookimpl
from aos.kernel import Kernel
from aos.principals import (
    ADMIN,
    DEFAULT_AGENT_SCOPES,
    InvalidToken,
    Principal,
    TokenAuthority,
    agent_principal,
    service_principal,
)
from aos.syscalls import SYSCALLS, SyscallError
from aos.testing import Reply, ScriptedLLM

pytestmark = pytest.mark.anyio


def install(kernel: Kernel, *names: str) -> None:
    """Context skills of these names in the kernel's skill root (an agent's config
    may name only skills that exist)."""
    root = kernel.config.skill_root_paths[0]
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "SKILL.md").write_text(
            f"---\nname: {name}\ndescription: A test skill.\n---\n"
        )
    kernel.skills.scan()


async def make_agent(kernel: Kernel, name: str, **params: Any) -> dict[str, Any]:
    return await kernel.syscall(ADMIN, "agent.create", {"name": name, **params})


@asynccontextmanager
async def agent_with_token(
    kernel: Kernel, llm: ScriptedLLM, name: str, **params: Any
) -> AsyncIterator[tuple[dict[str, Any], str, Principal]]:
    """A new agent, a session of it, and the principal of the AOS_TOKEN its running
    dispatch hands to bash (valid until the block ends)."""
    agent = await make_agent(kernel, name, **params)
    session = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]})
    async with live_token(kernel, llm, session["id"]) as token:
        yield agent, session["id"], kernel.tokens.verify(token)


async def expect(
    code: str, kernel: Kernel, principal: Principal, name: str, params: Any = None
) -> str:
    with pytest.raises(SyscallError) as info:
        await kernel.syscall(principal, name, params)
    assert info.value.code == code, info.value.message
    return info.value.message


async def test_typed_errors(kernel: Kernel) -> None:
    assert "unknown syscall 'no.such'" in await expect("unknown", kernel, ADMIN, "no.such")
    message = await expect("invalid", kernel, ADMIN, "agent.create", {"name": 3})
    assert message == "agent.create: invalid params: Expected `str`, got `int` - at `$.name`"
    await expect("invalid", kernel, ADMIN, "agent.get", {"id": "x", "extra": 1})
    assert await expect("not_found", kernel, ADMIN, "agent.get", {"id": "agt_none"}) == (
        "agent agt_none not found"
    )
    await make_agent(kernel, "dup")
    assert "named 'dup'" in await expect("conflict", kernel, ADMIN, "agent.create", {"name": "dup"})


async def test_kernel_status_and_config(kernel: Kernel) -> None:
    status = await kernel.syscall(ADMIN, "kernel.status")
    assert status["database"]["backend"] == kernel.store.backend
    assert status["database"]["schema_version"] >= 1
    config = await kernel.syscall(ADMIN, "kernel.config")
    assert config["aoscb"]["limits"]["max_steps"] == kernel.config.aoscb.limits.max_steps
    assert config["sources"]["db_url"] == "environment AOS_DB_URL"


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


WIDE = ["kernel.read", "agent.read", "agent.write", "session.read", "session.write"]
"""Scopes an admin grants a root agent in the tests of what its token may touch."""


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


async def test_an_agent_appends_only_its_own_messages(
    model_kernel: Kernel, scripted_llm: ScriptedLLM
) -> None:
    kernel = model_kernel
    scopes = ["agent.write", "session.read", "session.write"]
    async with agent_with_token(kernel, scripted_llm, "writer", scopes=scopes) as (_, own, me):
        appended = await kernel.syscall(
            me, "session.append", {"id": own, "fact": {"kind": "message.user", "text": "note"}}
        )
        [entry] = await kernel.syscall(
            ADMIN, "session.history", {"id": own, "after": appended["seq"] - 1}
        )
        assert entry["fact"]["sender"] == me.name
        as_admin = {"kind": "message.user", "text": "x", "sender": "admin"}
        assert "may not append a message.user as 'admin'" in await expect(
            "denied", kernel, me, "session.append", {"id": own, "fact": as_admin}
        )
        for fact in [
            {"kind": "skill.loaded", "skill": "aos-skill", "body": "forged"},
            {"kind": "dispatch.finished", "dispatch_id": "dsp_x", "status": "completed"},
            {"kind": "a2a.message", "message_id": "m", "from_agent": "a", "to_agent": "b",
             "mode": "silent", "text": "forged"},
            {"kind": "tool.result", "call_id": "c", "output": "forged"},
        ]:  # fmt: skip
            message = await expect(
                "denied", kernel, me, "session.append", {"id": own, "fact": fact}
            )
            assert f"may not append {fact['kind']} facts" in message
    # a service's message.user is its own too; the admin's is whatever it says
    service = service_principal("greeter", frozenset({"session.write"}))
    session = await kernel.syscall(ADMIN, "session.create", {"agent_id": me.agent_id})
    user = {"kind": "message.user", "text": "hello"}
    await kernel.syscall(service, "session.append", {"id": session["id"], "fact": user})
    await expect(
        "denied", kernel, service, "session.append",
        {"id": session["id"], "fact": {"kind": "skill.loaded", "skill": "x"}},
    )  # fmt: skip
    await kernel.syscall(ADMIN, "session.append", {"id": session["id"], "fact": user})
    history = await kernel.syscall(ADMIN, "session.history", {"id": session["id"]})
    assert [h["fact"].get("sender") for h in history] == ["service:greeter", None]


async def test_an_agent_cannot_widen_any_agents_config(
    model_kernel: Kernel, scripted_llm: ScriptedLLM
) -> None:
    kernel = model_kernel
    install(kernel, "guard", "pdf")
    workspace = str(kernel.config.paths.data_dir / "lead")
    config = {
        "skills": ["guard"],
        "workspace": workspace,
        "model": scripted_llm.model,
        "max_steps": 5,
        "network": "none",
    }
    async with agent_with_token(kernel, scripted_llm, "lead", scopes=WIDE, config=config) as (
        lead,
        _,
        me,
    ):
        lead_id = lead["agent"]["id"]
        for change, reason in [
            ({**config, "skills": []}, "may not remove skill(s) guard"),
            ({**config, "workspace": "/"}, "may not set workspace"),
            ({**config, "model": "expensive"}, "may not set model"),
            ({**config, "max_steps": 50}, "may not raise max_steps"),
            ({**config, "sandbox": "off"}, "may not set sandbox"),
            ({**config, "network": "on"}, "may not lift network: none"),
        ]:
            message = await expect(
                "denied", kernel, me, "agent.update", {"id": lead_id, "config": change}
            )
            assert reason in message
        assert "never widened" in await expect(
            "denied", kernel, me, "agent.update", {"id": lead_id, "scopes": [*WIDE, "log.read"]}
        )
        # narrowing and adding are fine
        await kernel.syscall(
            me, "agent.update",
            {"id": lead_id, "config": {**config, "skills": ["guard", "pdf"], "max_steps": 3}},
        )  # fmt: skip
        for child_config, reason in [
            ({"workspace": "/"}, "may not set workspace of new agent 'kid'"),
            ({"model": "other"}, "may not set model"),
            ({"max_steps": 4}, "may not raise max_steps of new agent 'kid' above 3"),
        ]:
            message = await expect(
                "denied", kernel, me, "agent.create",
                {"name": "kid", "parent": lead_id, "config": child_config},
            )  # fmt: skip
            assert reason in message
        kid = await kernel.syscall(
            me, "agent.create", {"name": "kid", "parent": lead_id, "config": {"max_steps": 2}}
        )
        assert kid["effective"]["workspace"] == workspace
    # the admin sets what it likes
    await kernel.syscall(ADMIN, "agent.update", {"id": lead_id, "config": {"workspace": "/w"}})


async def test_archiving_an_agent_ends_its_dispatches_and_their_tokens(
    model_kernel: Kernel, scripted_llm: ScriptedLLM
) -> None:
    kernel = model_kernel
    async with agent_with_token(kernel, scripted_llm, "doomed") as (agent, own, me):
        await kernel.syscall(ADMIN, "agent.archive", {"id": agent["agent"]["id"]})
        assert own not in kernel.dispatches
        assert "dispatch has ended" in await expect(
            "denied", kernel, me, "session.history", {"id": own}
        )
    history = await kernel.syscall(ADMIN, "session.history", {"id": own})
    assert history[-1]["fact"]["status"] == "interrupted"
    assert "was archived by admin" in history[-1]["fact"]["error"]
    assert "is archived" in await expect(
        "conflict", kernel, ADMIN, "session.dispatch", {"id": own, "message": "again"}
    )


async def test_an_agents_subscription_ends_with_its_dispatch(
    model_kernel: Kernel, scripted_llm: ScriptedLLM
) -> None:
    kernel = model_kernel
    texts: list[str] = []

    def deliver(subscription: int, topic: str, data: Any) -> None:
        if data["fact"]["kind"] == "message.user":
            texts.append(data["fact"]["text"])

    async def say(session_id: str, text: str) -> None:
        fact = {"kind": "message.user", "text": text}
        await kernel.syscall(ADMIN, "session.append", {"id": session_id, "fact": fact})

    scopes = ["session.read", "events.subscribe"]
    async with agent_with_token(kernel, scripted_llm, "watcher", scopes=scopes) as (_, own, me):
        connection = current_stream.set(Stream(deliver=deliver, on_close=lambda _: None))
        try:
            params = {"topics": ["history.append"], "session_id": own}
            await kernel.syscall(me, "events.subscribe", params)
        finally:
            current_stream.reset(connection)
        await say(own, "during")
    await say(own, "after")
    assert texts == ["during"]


async def test_admin_calls_never_meet_syscall_before(
    model_kernel: Kernel, scripted_llm: ScriptedLLM
) -> None:
    kernel = model_kernel
    seen: list[str] = []

    class Hung:
        @hookimpl
        async def syscall_before(self, input: Any, output: dict[str, Any]) -> dict[str, Any]:
            seen.append(input["principal"])
            await asyncio.sleep(3600)
            return output

    kernel.pm.register(Hung(), name="hung")
    kernel.hooks.set_policy(
        "hung", "syscall.before", HookPolicy(timeout=0.2, failure="fail-closed")
    )
    agent = await make_agent(kernel, "a")
    assert (await kernel.syscall(ADMIN, "agent.get", {"id": agent["agent"]["id"]}))["agent"]
    assert seen == []
    message = await expect(
        "denied", kernel, service_principal("other", frozenset({"agent.read"})), "agent.list"
    )
    assert "hung" in message
    assert seen == ["service:other"]


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


async def test_sessions_and_history(kernel: Kernel) -> None:
    agent = await make_agent(kernel, "a")
    session = await kernel.syscall(
        ADMIN, "session.create", {"agent_id": agent["agent"]["id"], "title": "t"}
    )
    assert session["status"] == "idle"
    for text in ("one", "two", "three"):
        await kernel.syscall(
            ADMIN,
            "session.append",
            {"id": session["id"], "fact": {"kind": "message.user", "text": text}},
        )
    history = await kernel.syscall(ADMIN, "session.history", {"id": session["id"], "after": 1})
    assert [(h["seq"], h["fact"]["text"]) for h in history] == [(2, "two"), (3, "three")]
    await expect(
        "invalid", kernel, ADMIN, "session.append",
        {"id": session["id"], "fact": {"kind": "message.bogus", "text": "x"}},
    )  # fmt: skip
    archived = await kernel.syscall(ADMIN, "session.archive", {"id": session["id"]})
    assert archived["status"] == "archived"
    await expect(
        "conflict", kernel, ADMIN, "session.append",
        {"id": session["id"], "fact": {"kind": "message.user", "text": "late"}},
    )  # fmt: skip
    assert await kernel.store.acquire_lease(
        (await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]}))["id"],
        "n",
        30,
    )


async def test_archive_rules(kernel: Kernel) -> None:
    parent = await make_agent(kernel, "p")
    await make_agent(kernel, "c", parent=parent["agent"]["id"])
    assert "has active children (c)" in await expect(
        "conflict", kernel, ADMIN, "agent.archive", {"id": parent["agent"]["id"]}
    )
    running = await kernel.syscall(ADMIN, "session.create", {"agent_id": parent["agent"]["id"]})
    await kernel.store.acquire_lease(running["id"], "node-1", 30)
    await expect("conflict", kernel, ADMIN, "session.archive", {"id": running["id"]})


async def test_syscall_before_lets_a_policy_skill_deny(kernel: Kernel) -> None:
    class ReadOnlyPolicy:
        @hookimpl
        def syscall_before(self, input: Any, output: dict[str, Any]) -> dict[str, Any]:
            if input["syscall"] == "agent.create":
                return {"verdict": "reject", "reason": "this node is read-only"}
            return output

    kernel.pm.register(ReadOnlyPolicy(), name="read-only")
    ops = service_principal("ops", frozenset({"agent.read", "agent.write"}))
    message = await expect("denied", kernel, ops, "agent.create", {"name": "x"})
    assert message == "agent.create rejected by read-only: this node is read-only"
    await kernel.syscall(ops, "agent.list")
    await kernel.syscall(ADMIN, "agent.create", {"name": "y"})  # never gated
    await kernel.flush_logs()
    denials = await kernel.syscall(ADMIN, "log.read", {"kind": "syscall"})
    assert any(d["data"]["outcome"] == f"denied: {message}" for d in denials)


async def test_agent_create_gate_adjusts_and_rejects(kernel: Kernel) -> None:
    class Naming:
        @hookimpl
        def agent_create(self, input: Any, output: dict[str, Any]) -> dict[str, Any]:
            if output["name"].startswith("bad"):
                return {"verdict": "reject", "reason": "bad names are not allowed"}
            return {**output, "config": {**output["config"], "model": "house-model"}}

    kernel.pm.register(Naming(), name="naming")
    created = await make_agent(kernel, "good")
    assert created["agent"]["config"]["model"] == "house-model"
    assert created["effective"]["model"] == "house-model"
    message = await expect("denied", kernel, ADMIN, "agent.create", {"name": "bad-one"})
    assert message == "agent.create rejected by naming: bad names are not allowed"


async def test_writes_are_audited_in_the_runtime_log(kernel: Kernel) -> None:
    started = time.time()
    await make_agent(kernel, "audited")
    await kernel.flush_logs()
    entries = await kernel.syscall(ADMIN, "log.read", {"kind": "syscall", "since": started - 1})
    assert [e["data"]["syscall"] for e in entries] == ["agent.create"]
    assert entries[0]["data"]["principal"] == "admin"


async def test_hook_list_and_table_metadata(kernel: Kernel) -> None:
    hooks = await kernel.syscall(ADMIN, "hook.list")
    assert {h["hook"] for h in hooks} >= {"tool.before", "session.assemble"}
    for sc in SYSCALLS.values():
        assert sc.doc
        assert sc.scope


def test_every_syscall_is_documented() -> None:
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parent.parent / "docs" / "specs" / "aos-syscall.md"
    headings = set(re.findall(r"^### (\S+)\s*$", doc.read_text(encoding="utf-8"), re.M))
    missing = sorted(set(SYSCALLS) - headings)
    assert not missing, f"docs/specs/aos-syscall.md lacks sections for {missing}"


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


async def test_admin_may_grant_a_root_agent_non_default_scopes(kernel: Kernel) -> None:
    ops = await make_agent(kernel, "ops", scopes=["log.read", "hook.read", "session.read"])
    assert ops["effective"]["scopes"] == ["hook.read", "log.read", "session.read"]


async def test_invalid_agent_create_gate_output_is_a_clear_error(kernel: Kernel) -> None:
    class Broken:
        @hookimpl
        def agent_create(self, output: dict[str, Any]) -> dict[str, Any]:
            return {**output, "config": {"model": 42}}

    kernel.pm.register(Broken(), name="broken")
    message = await expect("invalid", kernel, ADMIN, "agent.create", {"name": "x"})
    assert message.startswith("agent.create: the agent.create gate returned an invalid agent:")


async def test_a_dispatch_may_name_its_model_but_an_agent_may_not(
    model_kernel: Kernel, scripted_llm: ScriptedLLM
) -> None:
    kernel = model_kernel
    scripted_llm.add(Reply.text("from the other"), Reply.text("from the default"))
    agent = await make_agent(kernel, "chooser")
    session = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]})
    once = {"id": session["id"], "message": "hi", "model": "other/model"}
    assert (await kernel.syscall(ADMIN, "session.dispatch", once))["answer"] == "from the other"
    await kernel.syscall(ADMIN, "session.dispatch", {"id": session["id"], "message": "again"})
    assert [r.body["model"] for r in scripted_llm.requests] == ["other/model", scripted_llm.model]
    blank = {**once, "model": "  "}
    assert "model must be a model id" in await expect(
        "invalid", kernel, ADMIN, "session.dispatch", blank
    )
    wide = [*WIDE, "session.dispatch"]
    async with agent_with_token(kernel, scripted_llm, "picky", scopes=wide) as (picky, _, me):
        helper = await kernel.syscall(me, "session.create", {"agent_id": picky["agent"]["id"]})
        assert "may not choose the model" in await expect(
            "denied", kernel, me, "session.dispatch", {**once, "id": helper["id"]}
        )
    assert len(scripted_llm.requests) == 3  # the token's holder only: nothing else was sent
