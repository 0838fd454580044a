"""The kernel's history view on both backends: its own appends join it without a
read; another writer's facts (another node, another connection) are read in."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aos.history import AssistantMessage, UserMessage
from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.session import SCB
from aos.store import open_store
from aos_stdskills import aos_context

pytestmark = pytest.mark.anyio


async def new_session(kernel: Kernel) -> SCB:
    agent = await kernel.syscall(ADMIN, "agent.create", {"name": "viewer"})
    made = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]})
    return await kernel.store.get_session(made["id"])


def texts(view: list[dict[str, object]]) -> list[object]:
    return [item["fact"]["text"] for item in view]  # type: ignore[index]


async def test_own_appends_join_the_view_without_a_read(kernel: Kernel) -> None:
    scb = await new_session(kernel)
    assert await kernel.history_view(scb.id) == []
    reads = 0
    read_history = kernel.store.read_history

    async def counted(*args: object, **kwargs: object) -> object:
        nonlocal reads
        reads += 1
        return await read_history(*args, **kwargs)  # type: ignore[arg-type]

    kernel.store.read_history = counted  # type: ignore[method-assign]
    await kernel.append(scb, UserMessage(text="one"))
    await kernel.append_all(scb, [AssistantMessage(text="two"), UserMessage(text="three")])
    view = await kernel.history_view(scb.id)
    assert texts(view) == ["one", "two", "three"]
    assert [item["seq"] for item in view] == [1, 2, 3]
    assert reads == 0


async def test_another_writers_facts_are_read_in(kernel: Kernel, db_url: str) -> None:
    scb = await new_session(kernel)
    await kernel.append(scb, UserMessage(text="mine 1"))
    assert texts(await kernel.history_view(scb.id)) == ["mine 1"]
    other = await open_store(db_url)  # as another node would write
    try:
        await other.append(scb.id, UserMessage(text="theirs"))
    finally:
        await other.close()
    # The next own append lands past the other writer's fact: the gap is read in.
    await kernel.append(scb, UserMessage(text="mine 2"))
    view = await kernel.history_view(scb.id)
    assert texts(view) == ["mine 1", "theirs", "mine 2"]
    assert [item["seq"] for item in view] == [1, 2, 3]


async def test_refresh_reads_what_others_wrote_since(kernel: Kernel, db_url: str) -> None:
    scb = await new_session(kernel)
    await kernel.append(scb, UserMessage(text="mine"))
    await kernel.history_view(scb.id)
    other = await open_store(db_url)
    try:
        await other.append(scb.id, UserMessage(text="theirs"))
    finally:
        await other.close()
    assert texts(await kernel.history_view(scb.id, refresh=True)) == ["mine", "theirs"]


async def test_session_context_shows_what_others_wrote(kernel: Kernel, db_url: str) -> None:
    kernel.pm.register(aos_context, name="aos-context")
    scb = await new_session(kernel)
    await kernel.append(scb, UserMessage(text="mine"))
    await kernel.syscall(ADMIN, "session.context", {"id": scb.id})
    other = await open_store(db_url)
    try:
        await other.append(scb.id, UserMessage(text="theirs"))
    finally:
        await other.close()
    context = await kernel.syscall(ADMIN, "session.context", {"id": scb.id})
    assert [m["content"] for m in context if m["role"] == "user"] == ["mine", "theirs"]


async def test_a_gap_seen_while_a_read_is_under_way_is_not_lost(
    kernel: Kernel, db_url: str
) -> None:
    """A read that started before another writer's fact landed must not mark the
    view complete over the gap an own append revealed meanwhile."""
    scb = await new_session(kernel)
    await kernel.append(scb, UserMessage(text="one"))
    await kernel.history_view(scb.id)
    read_history = kernel.store.read_history
    release = asyncio.Event()

    async def slow(*args: Any, **kwargs: Any) -> Any:
        result = await read_history(*args, **kwargs)  # read now, answer later
        await release.wait()
        return result

    kernel.store.read_history = slow  # type: ignore[method-assign]
    reading = asyncio.get_running_loop().create_task(kernel.history_view(scb.id, refresh=True))
    await asyncio.sleep(0.05)
    other = await open_store(db_url)
    try:
        await other.append(scb.id, UserMessage(text="two"))
    finally:
        await other.close()
    await kernel.append(scb, UserMessage(text="three"))  # lands past "two": a gap
    release.set()
    await reading
    kernel.store.read_history = read_history  # type: ignore[method-assign]
    assert texts(await kernel.history_view(scb.id)) == ["one", "two", "three"]
