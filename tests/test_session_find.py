"""Finding and reading what people look for, on both backends: ``session.list``'s
search and limit, ``session.update`` (renaming), ``session.history``'s kinds and
newest window, ``session.context`` with ``explain``, and ``log.read``'s level,
skill, search and paging back."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import expect, live_token

from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.runtimelog import LogEntry
from aos.testing import Reply, ScriptedLLM

pytestmark = pytest.mark.anyio


async def new_session(kernel: Kernel, agent: str, title: str = "") -> str:
    created = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent, "title": title})
    return str(created["id"])


async def say(kernel: Kernel, session: str, kind: str, text: str) -> None:
    await kernel.syscall(
        ADMIN, "session.append", {"id": session, "fact": {"kind": kind, "text": text}}
    )


async def titles(kernel: Kernel, **params: Any) -> list[str]:
    return [s["title"] for s in await kernel.syscall(ADMIN, "session.list", params)]


async def test_search_finds_titles_and_messages_in_any_case(kernel: Kernel) -> None:
    agent = (await kernel.syscall(ADMIN, "agent.create", {"name": "finder"}))["agent"]["id"]
    whales = await new_session(kernel, agent, "Ocean notes")
    await say(kernel, whales, "message.user", "Tell me about Blue Whales")
    await say(kernel, whales, "message.assistant", "They are the largest animals.")
    report = await new_session(kernel, agent, "Quarterly REPORT")
    await new_session(kernel, agent, "100% done_now")
    await say(kernel, report, "message.user", "numbers please")

    assert await titles(kernel, search="whales") == ["Ocean notes"]  # a user message
    assert await titles(kernel, search="LARGEST") == ["Ocean notes"]  # an assistant's
    assert await titles(kernel, search="report") == ["Quarterly REPORT"]  # the title
    assert await titles(kernel, search="nothing like it") == []
    # LIKE's wildcards are text: "%" and "_" match themselves only
    assert await titles(kernel, search="100%") == ["100% done_now"]
    assert await titles(kernel, search="e_n") == ["100% done_now"]
    assert await titles(kernel, search="%") == ["100% done_now"]
    assert await titles(kernel, search="") == ["Ocean notes", "Quarterly REPORT", "100% done_now"]


async def test_limit_keeps_the_most_recently_active_in_creation_order(kernel: Kernel) -> None:
    agent = (await kernel.syscall(ADMIN, "agent.create", {"name": "busy"}))["agent"]["id"]
    first = await new_session(kernel, agent, "first")
    await new_session(kernel, agent, "second")
    await new_session(kernel, agent, "third")
    await kernel.syscall(ADMIN, "session.update", {"id": first, "title": "first, renamed"})
    assert await titles(kernel, limit=2) == ["first, renamed", "third"]  # by updated_at
    await expect("invalid", kernel, ADMIN, "session.list", {"limit": 0})


async def test_rename_is_audited_and_bounded(kernel: Kernel) -> None:
    agent = (await kernel.syscall(ADMIN, "agent.create", {"name": "namer"}))["agent"]["id"]
    session = await new_session(kernel, agent)
    renamed = await kernel.syscall(
        ADMIN, "session.update", {"id": session, "title": "  Budget\n review  "}
    )
    assert renamed["title"] == "Budget review"  # one line
    assert (await kernel.syscall(ADMIN, "session.get", {"id": session}))["title"] == (
        "Budget review"
    )
    log = await kernel.syscall(ADMIN, "log.read", {"kind": "syscall", "search": "session.update"})
    assert [e["message"] for e in log] == ["session.update by admin: ok"]
    await expect("invalid", kernel, ADMIN, "session.update", {"id": session, "title": "x" * 201})
    await expect("not_found", kernel, ADMIN, "session.update", {"id": "ses_nope", "title": "x"})
    await kernel.syscall(ADMIN, "session.archive", {"id": session})
    message = await expect(
        "conflict", kernel, ADMIN, "session.update", {"id": session, "title": "later"}
    )
    assert "archived" in message


async def test_an_agent_renames_and_finds_in_its_subtree_only(
    model_kernel: Kernel, scripted_llm: ScriptedLLM
) -> None:
    kernel = model_kernel
    other = (await kernel.syscall(ADMIN, "agent.create", {"name": "other"}))["agent"]["id"]
    theirs = await new_session(kernel, other, "secret plans")
    me = await kernel.syscall(
        ADMIN, "agent.create", {"name": "me", "scopes": ["session.read", "session.write"]}
    )
    mine = await new_session(kernel, me["agent"]["id"], "my plans")
    async with live_token(kernel, scripted_llm, mine) as token:
        principal = kernel.tokens.verify(token)
        found = await kernel.syscall(principal, "session.list", {"search": "plans", "limit": 5})
        assert [s["id"] for s in found] == [mine]
        await kernel.syscall(principal, "session.update", {"id": mine, "title": "renamed"})
        await expect(
            "denied", kernel, principal, "session.update", {"id": theirs, "title": "mine now"}
        )


async def test_history_by_kinds_and_its_newest_window(kernel: Kernel) -> None:
    agent = (await kernel.syscall(ADMIN, "agent.create", {"name": "reader"}))["agent"]["id"]
    session = await new_session(kernel, agent)
    for i in range(10):
        await say(kernel, session, "message.user" if i % 2 else "message.assistant", f"m{i}")

    def texts(entries: list[dict[str, Any]]) -> list[str]:
        return [e["fact"]["text"] for e in entries]

    read = {"id": session}
    newest = await kernel.syscall(ADMIN, "session.history", {**read, "limit": 3, "newest": True})
    assert texts(newest) == ["m7", "m8", "m9"]  # the newest three, oldest first
    before = {**read, "limit": 3, "newest": True, "until": newest[0]["seq"] - 1}
    assert texts(await kernel.syscall(ADMIN, "session.history", before)) == ["m4", "m5", "m6"]
    users = await kernel.syscall(ADMIN, "session.history", {**read, "kinds": ["message.user"]})
    assert texts(users) == ["m1", "m3", "m5", "m7", "m9"]
    assert await kernel.syscall(ADMIN, "session.history", {**read, "kinds": []}) == []
    message = await expect(
        "invalid", kernel, ADMIN, "session.history", {**read, "kinds": ["message.nope"]}
    )
    assert "message.nope" in message


async def test_context_explained_names_the_budget_and_the_skills(
    model_kernel: Kernel, scripted_llm: ScriptedLLM
) -> None:
    kernel = model_kernel
    agent = (await kernel.syscall(ADMIN, "agent.create", {"name": "explained"}))["agent"]["id"]
    session = await new_session(kernel, agent)
    scripted_llm.add(Reply.text("hello"))
    await kernel.syscall(ADMIN, "session.dispatch", {"id": session, "message": "hi"})
    plain = await kernel.syscall(ADMIN, "session.context", {"id": session})
    explained = await kernel.syscall(ADMIN, "session.context", {"id": session, "explain": True})
    assert explained["messages"] == plain
    assert explained["budget"] == kernel.config.aoscb.limits.context_budget
    assert explained["skills"] == sorted(await kernel.agents.active_skills(agent, session))
    assert "aos-context" in explained["skills"]


async def test_log_by_level_skill_search_and_pages_back(kernel: Kernel) -> None:
    for i in range(30):
        kernel.log(
            LogEntry(
                kind="test.entry",
                message=f"entry {i}" + (" 50%_off" if i == 7 else ""),
                level="error" if i == 3 else "warning" if i % 10 == 0 else "info",
                data={"skill": "aos-mcp"} if i % 3 == 0 else {"implementation": "my-guard"},
            )
        )
    kernel.log(
        LogEntry(
            kind="syscall",
            message="x by service:my-guard: ok",
            data={"principal": "service:my-guard"},
        )
    )
    read = {"kind": "test.entry", "newest_first": True}

    async def numbers(**params: Any) -> list[int]:
        entries = await kernel.syscall(ADMIN, "log.read", {**read, **params})
        return [int(e["message"].split()[1]) for e in entries]

    assert await numbers(level="warning") == [20, 10, 3, 0]  # warnings and errors
    assert await numbers(level="error") == [3]
    assert len(await numbers(level="debug")) == 30
    assert await numbers(skill="aos-mcp", limit=3) == [27, 24, 21]
    assert len(await numbers(skill="my-guard")) == 20  # its hooks' records
    guard = await kernel.syscall(ADMIN, "log.read", {"skill": "my-guard", "kind": "syscall"})
    assert [e["message"] for e in guard] == ["x by service:my-guard: ok"]  # its syscalls
    assert await numbers(search="50%_OFF") == [7]
    assert await numbers(search="%") == [7]  # a wildcard is text
    assert await numbers(search="TEST.ENTRY", limit=1) == [29]  # kinds are searched too
    first = await numbers(limit=10)
    assert first == list(range(29, 19, -1))
    entries = await kernel.syscall(ADMIN, "log.read", {**read, "limit": 10})
    older = await numbers(limit=10, before_id=entries[-1]["id"])
    assert older == list(range(19, 9, -1))
    await expect("invalid", kernel, ADMIN, "log.read", {"level": "loud"})


async def test_sessions_by_how_their_last_dispatch_ended(
    model_kernel: Kernel, scripted_llm: ScriptedLLM
) -> None:
    kernel = model_kernel
    agent = (await kernel.syscall(ADMIN, "agent.create", {"name": "mixed"}))["agent"]["id"]
    good = await new_session(kernel, agent, "good")
    bad = await new_session(kernel, agent, "bad")
    await new_session(kernel, agent, "fresh")  # no dispatch: no outcome
    scripted_llm.add(Reply.text("fine"), Reply.error(400, "malformed"))
    for session in (good, bad):
        await kernel.syscall(ADMIN, "session.dispatch", {"id": session, "message": "go"})
    assert await titles(kernel, outcome="completed") == ["good"]
    assert await titles(kernel, outcome="failed") == ["bad"]  # "failed: <its error>"
    assert await titles(kernel, outcome="interrupted") == []
    await expect("invalid", kernel, ADMIN, "session.list", {"outcome": "so-so"})
