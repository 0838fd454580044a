"""Escalation attempts at the WebSocket face, each made by a hostile agent's own bash.

The node listens on loopback and has granted a remote service. With the sandbox
off the agent's bash reaches the port (with it, pasta keeps the node's ports
out of reach, and every attempt fails earlier): what stops each attempt is then
the token rule alone. Nothing over WebSocket is admin; a service hello needs
its grant's token; the agent's own token is worth there what it is worth on
agent.sock.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from escalation import attempt, hostile_node, new_agent

from aos.principals import ADMIN

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("sandbox", ["auto", "off"])]

PROBE = """
import asyncio, os, sys
from aos_sdk import Client
from aos_sdk.peer import Peer
from aos_sdk.protocol import Hello
from aos_sdk.transport import open_websocket

URL, TOKEN = sys.argv[1], os.environ.get("AOS_TOKEN", "")

async def client(token, syscall):
    try:
        async with Client(URL, token=token, connect_timeout=2) as c:
            print("OK", syscall, await c.call(syscall, {"name": "evil"} if syscall == "service.token" else {}))
    except Exception as exc:
        print("REFUSED", syscall, type(exc).__name__, exc)

async def service(token, skill):
    try:
        peer = Peer(await open_websocket(URL))
        peer.send(Hello(role="service", sdk="evil/1", skill=skill, token=token, hooks=[]))
        reply = await asyncio.wait_for(peer.read_message(), 5)
        await peer.close()
        print("OK" if type(reply).__name__ == "Welcome" else "REFUSED", "service", skill, reply)
    except Exception as exc:
        print("REFUSED", "service", skill, type(exc).__name__, exc)

async def main():
    await client("", "kernel.status")          # no token: admin on aos.sock, nothing here
    await client(TOKEN, "service.token")       # its own token: mint itself a service
    await service(TOKEN, "far-guard")          # take the granted remote service's place
    await service("", "far-guard")

asyncio.run(main())
"""


async def test_a_hostile_agent_gets_nothing_from_the_websocket_face(
    tmp_path: Path, sandbox: str
) -> None:
    async with hostile_node(tmp_path, AOS_SANDBOX=sandbox, AOS_WS_LISTEN="127.0.0.1:0") as (
        daemon,
        admin,
    ):
        kernel = daemon.kernel
        assert kernel is not None and kernel.ws_url is not None
        await kernel.syscall(ADMIN, "service.token", {"name": "far-guard"})
        mal = await new_agent(admin, "mal", scopes=["skill.call", "session.read"])
        command = f"$AOS_PYTHON -c {shlex.quote(PROBE)} {shlex.quote(kernel.ws_url)}"
        result = await mal.bash(command)
        output = str(result["output"])
        lines = [line for line in output.splitlines() if line.startswith(("OK", "REFUSED"))]
        assert len(lines) == 4, output
        for line in lines:
            attempt(f"websocket: {line[:80]}", result, succeeded=line.startswith("OK"))
        if sandbox == "off":  # it reached the port: the token rules said no, and why
            assert "the WebSocket face needs a token" in output
            assert "lacks scope 'kernel.admin'" in output
            assert "this is not the token of remote service 'far-guard'" in output
        status = {s["skill"]: s for s in kernel.services.status()} if kernel.services else {}
        assert status["far-guard"]["state"] == "disconnected"  # nobody took its place
