"""Kernel events (aos/events.py): subscriptions over the wire, in process, and their end."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aos_sdk import Client
from conftest import agent_with_token, running_daemon
from test_wire import paths

from aos.events import Stream, current_stream
from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.syscalls import SyscallError
from aos.testing import ScriptedLLM

pytestmark = pytest.mark.anyio


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


async def test_events_stream_facts_as_they_are_appended(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon:
        socket_path = paths(daemon).control_socket
        client, writer = Client(socket_path, token=""), Client(socket_path, token="")
        try:
            agent = await client.call("agent.create", {"name": "a"})
            session = await client.call("session.create", {"agent_id": agent["agent"]["id"]})
            events = client.subscribe(topics=["history.append"], session_id=session["id"])
            first = asyncio.ensure_future(anext(events))
            await asyncio.sleep(0.1)  # the subscription is in place before the append
            await writer.call(
                "session.append",
                {"id": session["id"], "fact": {"kind": "message.user", "text": "streamed"}},
            )
            async with asyncio.timeout(10):
                event = await first
            assert event.topic == "history.append"
            assert event.data["fact"] == {"kind": "message.user", "text": "streamed"}
            assert event.data["session_id"] == session["id"]
            await events.aclose()
        finally:
            await client.close()
            await writer.close()


async def test_in_process_subscribe_is_a_clear_error(kernel: object) -> None:
    from aos.kernel import Kernel

    assert isinstance(kernel, Kernel)
    with pytest.raises(SyscallError, match=r"events\.subscribe streams over a connection"):
        await kernel.syscall(ADMIN, "events.subscribe", {})
