"""Frames are bounded on both sides: the SDKs refuse to send one over 16 MiB
(a clear error, the connection kept), and a frame that begins must arrive whole."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest
from aos_sdk import Client, FrameTooLarge, blocking
from aos_sdk import transport as transport_module
from aos_sdk.protocol import Error, Hello, decode, encode
from conftest import running_daemon

pytestmark = pytest.mark.anyio

TOO_BIG = "x" * (16 * 1024 * 1024 + 1)


async def test_a_frame_over_the_limit_is_refused_before_it_is_sent(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon:
        socket = daemon.paths.control_socket
        async with Client(socket, token="") as client:
            with pytest.raises(FrameTooLarge, match=r"over the limit of 16,777,216 bytes"):
                await client.call("agent.create", {"name": "big", "config": {"model": TOO_BIG}})
            assert (await client.call("kernel.status"))["pid"]  # the connection goes on
        with pytest.raises(FrameTooLarge, match="a syscall frame of"):
            await asyncio.to_thread(
                blocking.call, "agent.get", {"id": TOO_BIG}, socket=socket, token=""
            )


async def test_a_frame_that_never_ends_is_closed_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A truncated frame after welcome held a connection open indefinitely."""
    monkeypatch.setattr(transport_module, "FRAME_TIMEOUT", 0.5)
    async with running_daemon(tmp_path) as daemon:
        reader, writer = await asyncio.open_unix_connection(str(daemon.paths.control_socket))
        writer.write(encode(Hello(role="client", sdk="t/1")))
        header = await reader.readexactly(4)
        await reader.readexactly(struct.unpack(">I", header)[0])  # welcome
        writer.write(struct.pack(">I", 100) + b"\x81")  # 1 byte of 100, then silence
        await writer.drain()
        async with asyncio.timeout(10):
            rest = await reader.read()
        writer.close()
        assert decode(rest[4:]) == Error(
            code="protocol", message="a frame did not arrive whole within 0.5 s"
        )
