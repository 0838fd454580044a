"""SessionHistory (aos/history.py): the kernel's view of a session, appends, write-ahead.
read; another writer's facts (another node, another connection) are read in."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aos.facts import AssistantMessage, UserMessage
from aos.hookspecs import hookimpl
from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.session import SCB
from aos.store import StoreUnavailable, open_store
from aos_stdskills import aos_context

pytestmark = pytest.mark.anyio


async def new_session(kernel: Kernel) -> SCB:
    agent = await kernel.syscall(ADMIN, "agent.create", {"name": "viewer"})
    made = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]})
    return await kernel.store.get_session(made["id"])


class AssembleSpy:
    """A session.assemble provider that records whether it was asked to rebuild."""

    def __init__(self) -> None:
        self.rebuilds: list[bool] = []

    @hookimpl
    def session_assemble(self, input: dict[str, Any]) -> list[dict[str, Any]]:
        self.rebuilds.append(bool(input["rebuild"]))
        return []


async def append_elsewhere(db_url: str, session_id: str, text: str) -> None:
    """A fact appended on another connection, as another node would."""
    other = await open_store(db_url)
    try:
        await other.append(session_id, UserMessage(text=text))
    finally:
        await other.close()


async def viewed_session(kernel: Kernel) -> SCB:
    """A session with one fact ("one"), its history view read."""
    scb = await new_session(kernel)
    await kernel.history.append(scb, UserMessage(text="one"))
    await kernel.history.view(scb.id)
    return scb


def texts(view: list[dict[str, object]]) -> list[object]:
    return [item["fact"]["text"] for item in view]  # type: ignore[index]


async def test_own_appends_join_the_view_without_a_read(kernel: Kernel) -> None:
    scb = await new_session(kernel)
    assert await kernel.history.view(scb.id) == []
    reads = 0
    read_history = kernel.store.read_history

    async def counted(*args: object, **kwargs: object) -> object:
        nonlocal reads
        reads += 1
        return await read_history(*args, **kwargs)  # type: ignore[arg-type]

    kernel.store.read_history = counted  # type: ignore[method-assign]
    await kernel.history.append(scb, UserMessage(text="one"))
    await kernel.history.append_all(scb, [AssistantMessage(text="two"), UserMessage(text="three")])
    view = await kernel.history.view(scb.id)
    assert texts(view) == ["one", "two", "three"]
    assert [item["seq"] for item in view] == [1, 2, 3]
    assert reads == 0


async def test_another_writers_facts_are_read_in(kernel: Kernel, db_url: str) -> None:
    scb = await new_session(kernel)
    await kernel.history.append(scb, UserMessage(text="mine 1"))
    assert texts(await kernel.history.view(scb.id)) == ["mine 1"]
    await append_elsewhere(db_url, scb.id, "theirs")
    # The next own append lands past the other writer's fact: the gap is read in.
    await kernel.history.append(scb, UserMessage(text="mine 2"))
    view = await kernel.history.view(scb.id)
    assert texts(view) == ["mine 1", "theirs", "mine 2"]
    assert [item["seq"] for item in view] == [1, 2, 3]


async def test_refresh_reads_what_others_wrote_since(kernel: Kernel, db_url: str) -> None:
    scb = await new_session(kernel)
    await kernel.history.append(scb, UserMessage(text="mine"))
    await kernel.history.view(scb.id)
    await append_elsewhere(db_url, scb.id, "theirs")
    assert texts(await kernel.history.view(scb.id, refresh=True)) == ["mine", "theirs"]


async def test_session_context_shows_what_others_wrote(kernel: Kernel, db_url: str) -> None:
    kernel.pm.register(aos_context, name="aos-context")
    scb = await new_session(kernel)
    await kernel.history.append(scb, UserMessage(text="mine"))
    await kernel.syscall(ADMIN, "session.context", {"id": scb.id})
    await append_elsewhere(db_url, scb.id, "theirs")
    context = await kernel.syscall(ADMIN, "session.context", {"id": scb.id})
    assert [m["content"] for m in context if m["role"] == "user"] == ["mine", "theirs"]


async def test_a_gap_seen_while_a_read_is_under_way_is_not_lost(
    kernel: Kernel, db_url: str
) -> None:
    """A read that started before another writer's fact landed must not mark the
    view complete over the gap an own append revealed meanwhile."""
    scb = await viewed_session(kernel)
    read_history = kernel.store.read_history
    read, release = asyncio.Event(), asyncio.Event()

    async def slow(*args: Any, **kwargs: Any) -> Any:
        result = await read_history(*args, **kwargs)  # read now, answer later
        read.set()
        await release.wait()
        return result

    kernel.store.read_history = slow  # type: ignore[method-assign]
    reading = asyncio.get_running_loop().create_task(kernel.history.view(scb.id, refresh=True))
    await read.wait()
    await append_elsewhere(db_url, scb.id, "two")
    await kernel.history.append(scb, UserMessage(text="three"))  # lands past "two": a gap
    release.set()
    await reading
    kernel.store.read_history = read_history  # type: ignore[method-assign]
    assert texts(await kernel.history.view(scb.id)) == ["one", "two", "three"]


async def test_facts_appended_ahead_are_in_the_view_before_they_commit(kernel: Kernel) -> None:
    scb = await new_session(kernel)
    await kernel.history.append(scb, UserMessage(text="one"))
    assert kernel.history.append_ahead(scb, [UserMessage(text="x")]) is None  # view not read yet
    await kernel.history.view(scb.id)
    committing = kernel.history.append_ahead(scb, [AssistantMessage(text="two")])
    assert committing is not None
    view = await kernel.history.view(scb.id)  # at once, before the commit
    assert texts(view) == ["one", "two"] and [e["seq"] for e in view] == [1, 2]
    assert await committing == [2]
    assert [e.fact for e in await kernel.store.read_history(scb.id, after=1)] == [
        AssistantMessage(text="two")
    ]


async def test_a_fact_ahead_overtaken_by_another_writer_is_read_anew(
    kernel: Kernel, db_url: str
) -> None:
    """Another writer's fact takes the seq the fact ahead was shown under: the view
    is read again and the next assembly starts from scratch."""
    scb = await viewed_session(kernel)
    await append_elsewhere(db_url, scb.id, "theirs")
    committing = kernel.history.append_ahead(scb, [AssistantMessage(text="mine")])
    assert committing is not None
    assert await committing == [3]
    view = await kernel.history.view(scb.id)
    assert texts(view) == ["one", "theirs", "mine"] and [e["seq"] for e in view] == [1, 2, 3]
    spy = AssembleSpy()
    kernel.pm.register(spy, name="spy")
    await kernel.context.assemble(scb, active=frozenset({"spy"}))
    await kernel.context.assemble(scb, active=frozenset({"spy"}))
    assert spy.rebuilds == [True, False]


async def test_a_fact_ahead_that_fails_to_commit_leaves_the_view(kernel: Kernel) -> None:
    scb = await viewed_session(kernel)
    append_all = kernel.store.append_all

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("database is down")

    kernel.store.append_all = broken  # type: ignore[method-assign]
    committing = kernel.history.append_ahead(scb, [AssistantMessage(text="lost")])
    assert committing is not None
    assert texts(await kernel.history.view(scb.id)) == ["one", "lost"]
    with pytest.raises(StoreUnavailable):
        await committing
    kernel.store.append_all = append_all  # type: ignore[method-assign]
    assert texts(await kernel.history.view(scb.id)) == ["one"]


async def test_readers_wait_for_the_read_under_way(kernel: Kernel) -> None:
    """A second reader does not take the view while the first one's read is out."""
    scb = await new_session(kernel)
    await kernel.history.append(scb, UserMessage(text="one"))
    read_history = kernel.store.read_history
    reading, release = asyncio.Event(), asyncio.Event()

    async def slow(*args: Any, **kwargs: Any) -> Any:
        reading.set()
        await release.wait()
        return await read_history(*args, **kwargs)

    kernel.store.read_history = slow  # type: ignore[method-assign]
    try:
        first = asyncio.get_running_loop().create_task(kernel.history.view(scb.id))
        await reading.wait()
        second = asyncio.get_running_loop().create_task(kernel.history.view(scb.id))
        for _ in range(10):  # let the second reader run as far as it can
            await asyncio.sleep(0)
        assert not second.done()
        release.set()
        assert texts(await first) == texts(await second) == ["one"]
    finally:
        kernel.store.read_history = read_history  # type: ignore[method-assign]
