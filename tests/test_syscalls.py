"""The syscall table through a real kernel on both backends: errors, principals, scopes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from conftest import WIDE, agent_with_token, expect, install, make_agent

from aos.hooks import HookPolicy
from aos.hookspecs import hookimpl
from aos.kernel import Kernel
from aos.principals import (
    ADMIN,
    service_principal,
)
from aos.syscalls import SYSCALLS
from aos.testing import Reply, ScriptedLLM

pytestmark = pytest.mark.anyio


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


"""Scopes an admin grants a root agent in the tests of what its token may touch."""


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
            ({**config, "placement": "node:elsewhere"}, "may not set placement"),
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
            ({"placement": "label:gpu"}, "may not set placement of new agent 'kid'"),
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
