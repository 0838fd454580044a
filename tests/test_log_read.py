"""``log.read``'s first page on both backends: the newest records are read by
walking an index backwards (no sort of the whole log), warnings and errors by
their own partial index; the levels and the empty filters. And the title a
dispatch gives an untitled session, in the write that starts it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.runtimelog import LogEntry, LogQuery
from aos.session import TITLE_LENGTH, title_of
from aos.store import Store
from aos.testing import Reply, ScriptedLLM

pytestmark = pytest.mark.anyio


async def plan_of(store: Store, query: LogQuery) -> str:
    """The query plan of the SQL ``read_log(query)`` runs, as one text."""
    ran: list[tuple[str, Sequence[Any]]] = []
    fetch = store._fetch  # type: ignore[attr-defined]

    async def spy(sql: str, *args: Any) -> list[Mapping[str, Any]]:
        ran.append((sql, args))
        return await fetch(sql, *args)

    store._fetch = spy  # type: ignore[attr-defined]
    try:
        await store.read_log(query)
    finally:
        del store._fetch  # type: ignore[attr-defined]
    ((sql, args),) = ran
    if store.backend == "sqlite":
        rows = await fetch(f"EXPLAIN QUERY PLAN {sql}", *args)
        return "\n".join(r["detail"] for r in rows)
    # Whether an index can give the order at all, not what this tiny table's
    # statistics make cheapest: a sort or a full scan is a last resort here.
    async with store._pool.acquire() as conn, conn.transaction():  # type: ignore[attr-defined]
        await conn.execute("SET LOCAL enable_sort = off")
        await conn.execute("SET LOCAL enable_seqscan = off")
        rows = await conn.fetch(f"EXPLAIN (COSTS OFF) {sql}", *args)
    return "\n".join(r["QUERY PLAN"] for r in rows)


async def fill(store: Store, count: int) -> None:
    """``count`` records, written together (the store batches lazy log writes)."""
    await asyncio.gather(
        *(
            store.log(
                LogEntry(
                    kind=("syscall", "hook.verdict", "tool.raw")[i % 3],
                    level="error" if i % 97 == 0 else "warning" if i % 13 == 0 else "info",
                    session_id=f"ses_{i % 7}",
                    message=f"record {i}",
                )
            )
            for i in range(count)
        )
    )


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (LogQuery(newest_first=True, limit=100), None),
        (LogQuery(newest_first=True, limit=100, before_id=150), None),
        (LogQuery(kind="syscall", newest_first=True, limit=100), None),
        (LogQuery(session_id="ses_3", newest_first=True, limit=100), None),
        (LogQuery(level="warning", newest_first=True, limit=100), "runtime_log_problems"),
        (LogQuery(level="error", newest_first=True, limit=100), "runtime_log_problems"),
        (LogQuery(level="info", newest_first=True, limit=100), None),
    ],
    ids=["plain", "before_id", "kind", "session", "warning", "error", "info"],
)
async def test_the_newest_page_walks_an_index_without_sorting(
    store: Store, query: LogQuery, index: str | None
) -> None:
    await fill(store, 300)
    plan = await plan_of(store, query)
    assert "TEMP B-TREE" not in plan  # SQLite: no sort of the matches
    assert "Sort" not in plan and "Seq Scan" not in plan  # PostgreSQL: likewise
    if index is not None:
        assert index in plan


async def test_levels_and_empty_filters(kernel: Kernel) -> None:
    for level in ("debug", "info", "warning", "error"):
        kernel.log(LogEntry(kind="test.level", level=level, message=level))

    async def messages(**params: Any) -> list[str]:
        entries = await kernel.syscall(ADMIN, "log.read", {"kind": "test.level", **params})
        return [e["message"] for e in entries]

    assert await messages(level="debug") == ["debug", "info", "warning", "error"]
    assert await messages(level="info") == ["info", "warning", "error"]
    assert await messages(level="warning") == ["warning", "error"]
    assert await messages(level="error", newest_first=True) == ["error"]
    assert await messages(level=None, skill="", search="") == ["debug", "info", "warning", "error"]
    assert await messages(search="\\") == []  # the escape character is text too
    kernel.log(LogEntry(kind="test.level", message="a \\ backslash"))
    assert await messages(search="\\") == ["a \\ backslash"]


def test_a_title_from_a_message() -> None:
    assert title_of("\n  \n  Plan   the\tlaunch  \nsecond line") == "Plan the launch"
    long = "word " * 40
    title = title_of(long)
    assert len(title) == TITLE_LENGTH == 80
    assert title.endswith("…") and title.startswith("word word")
    assert title_of("x" * 80) == "x" * 80  # not cut: no ellipsis
    assert title_of(" \n\t") == ""


async def test_a_dispatch_titles_an_untitled_session_in_the_write_that_starts_it(
    model_kernel: Kernel, scripted_llm: ScriptedLLM
) -> None:
    kernel = model_kernel
    agent = (await kernel.syscall(ADMIN, "agent.create", {"name": "titled"}))["agent"]["id"]
    untitled = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent})
    titled = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent, "title": "Mine"})
    scripted_llm.add(Reply.text("one"), Reply.text("two"))
    message = "\n\n   Summarise   the\tlog  \nand more"
    for session in (untitled, titled):
        await kernel.syscall(ADMIN, "session.dispatch", {"id": session["id"], "message": message})
    now_untitled = await kernel.syscall(ADMIN, "session.get", {"id": untitled["id"]})
    now_titled = await kernel.syscall(ADMIN, "session.get", {"id": titled["id"]})
    assert now_untitled["title"] == "Summarise the log"
    assert now_titled["title"] == "Mine"  # a title is kept
    # the same writes for both: the title took no commit of its own
    assert now_untitled["revision"] == now_titled["revision"]

    # a title cleared by a rename is given again by the next dispatch
    await kernel.syscall(ADMIN, "session.update", {"id": titled["id"], "title": ""})
    scripted_llm.add(Reply.text("three"))
    await kernel.syscall(ADMIN, "session.dispatch", {"id": titled["id"], "message": "Next one"})
    assert (await kernel.syscall(ADMIN, "session.get", {"id": titled["id"]}))["title"] == (
        "Next one"
    )


async def test_searches_ignore_case_beyond_ascii(kernel: Kernel) -> None:
    kernel.log(LogEntry(kind="test.search", message="Une ÉCOLE d'été"))
    kernel.log(LogEntry(kind="test.search", message="plain ascii"))
    read = {"kind": "test.search"}
    for text in ("école", "ÉCOLE", "D'ÉTÉ"):
        found = await kernel.syscall(ADMIN, "log.read", {**read, "search": text})
        assert [e["message"] for e in found] == ["Une ÉCOLE d'été"], text
    found = await kernel.syscall(ADMIN, "log.read", {**read, "search": "ASCII"})
    assert [e["message"] for e in found] == ["plain ascii"]

    agent = (await kernel.syscall(ADMIN, "agent.create", {"name": "accents"}))["agent"]["id"]
    titled = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent, "title": "Été"})
    said = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent})
    await kernel.syscall(
        ADMIN,
        "session.append",
        {"id": said["id"], "fact": {"kind": "message.user", "text": "Straße und ÜBER"}},
    )
    for text, session in (("ÉTÉ", titled), ("über", said), ("STRASSE", None)):
        found = await kernel.syscall(ADMIN, "session.list", {"search": text})
        assert [s["id"] for s in found] == ([session["id"]] if session else []), text
