"""The WebSocket face: remote services attach by token and guard every agent
(with their failure policy while away); clients run as their token; nothing
without a valid token gets in, and a revoked or replaced token stops working."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aos_sdk import Client, SyscallFailed
from aos_sdk.peer import Peer
from aos_sdk.protocol import Error, Hello, decode
from aos_sdk.transport import open_websocket
from conftest import REPO, dispatched_tool_results, poll_until, running_daemon
from test_services import service

from aos.daemon import Daemon, DaemonError
from aos.hooks import HookRejected
from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.testing import Reply, ScriptedLLM

pytestmark = pytest.mark.anyio
GUARD = REPO / "skills" / "my-guard" / "service.py"
LOOPBACK = {"AOS_WS_LISTEN": "127.0.0.1:0"}


def bash(command: str) -> dict[str, Any]:
    return {"tool": "bash", "args": {"command": command}, "cwd": "/tmp", "env": {}}


def remote_env(minted: dict[str, Any], name: str | None = None) -> dict[str, str]:
    """A remote machine's environment: no socket of the node, only its URL and the token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}
    return {
        **env,
        "AOS_URL": minted["url"],
        "AOS_SKILL": name or minted["name"],
        "AOS_TOKEN": minted["token"],
    }


@contextlib.asynccontextmanager
async def remote_guard(env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    """skills/my-guard's service.py run as a remote service (the Python SDK)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aos_sdk.run", str(GUARD), env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def mint(daemon: Daemon, name: str, **params: Any) -> dict[str, Any]:
    assert daemon.kernel is not None
    return await daemon.kernel.syscall(ADMIN, "service.token", {"name": name, **params})


def state(daemon: Daemon, name: str) -> str:
    return service(daemon, name)["state"]


@contextlib.asynccontextmanager
async def guarded_node(project: Path, llm: ScriptedLLM) -> AsyncIterator[tuple[Daemon, Kernel]]:
    """A daemon with a loopback WebSocket face whose model runs `echo 'DROP TABLE x'`,
    then `echo ok`, then is done."""
    llm.add(Reply.tool_call("echo 'DROP TABLE x'"), Reply.tool_call("echo ok"), Reply.text("done"))
    async with running_daemon(
        project, OPENROUTER_BASE_URL=llm.base_url, AOS_MODEL="m", **LOOPBACK
    ) as daemon:
        assert daemon.kernel is not None and daemon.kernel.ws_url is not None
        yield daemon, daemon.kernel


async def test_a_remote_python_guard_guards_every_agent(
    tmp_path: Path, scripted_llm: ScriptedLLM
) -> None:
    async with guarded_node(tmp_path, scripted_llm) as (daemon, kernel):
        minted = await mint(daemon, "far-guard")
        assert minted["url"] == kernel.ws_url
        assert state(daemon, "far-guard") == "disconnected"
        async with remote_guard(remote_env(minted)) as guard:
            await poll_until(lambda: state(daemon, "far-guard") == "running")
            assert service(daemon, "far-guard")["remote"].startswith("127.0.0.1:")
            refused, ran = await dispatched_tool_results(kernel, "clean up")
            assert (refused["status"], refused["rejected_by"]) == ("rejected", "far-guard")
            assert ran["output"] == "ok\n"
            guard.kill()
            await poll_until(lambda: state(daemon, "far-guard") == "disconnected")
        # away: its gate fails closed (the default policy), for every agent
        with pytest.raises(HookRejected, match="far-guard is not running"):
            await kernel.hooks.gate("tool.before", {}, bash("ls"))
        status = await kernel.syscall(ADMIN, "kernel.status")
        [far] = [s for s in status["services"] if s["skill"] == "far-guard"]
        assert (far["state"], far["remote"], far["pid"]) == ("disconnected", "", None)


async def test_a_websocket_hello_without_a_valid_token_is_refused(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, **LOOPBACK) as daemon:
        kernel = daemon.kernel
        assert kernel is not None and kernel.ws_url is not None
        url = kernel.ws_url
        with pytest.raises(SyscallFailed, match="the WebSocket face needs a token") as refused:
            await Client(url, token="").connect()
        assert refused.value.code == "denied"
        with pytest.raises(SyscallFailed, match="malformed token"):
            await Client(url, token="nonsense").connect()
        other = await mint(daemon, "guard-a")
        await mint(daemon, "guard-b")
        # a service hello with another service's token, or with no grant's token
        for name, token in (("guard-b", other["token"]), ("guard-a", "")):
            peer = Peer(await open_websocket(url))
            peer.send(Hello(role="service", sdk="t/1", skill=name, token=token))
            reply = await peer.read_message()
            await peer.close()
            assert isinstance(reply, Error) and reply.code == "denied", reply
        # a plain HTTP request is told what this port is
        async with aiohttp.ClientSession() as http, http.get(url.replace("ws", "http", 1)) as got:
            assert got.status == 426
            assert "AgentOS node's WebSocket face" in await got.text()
        # a Python service started with a bad token says so and exits 1
        env = remote_env({**other, "token": other["token"][:-4] + "AAAA"})
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "aos_sdk.run", str(GUARD)],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 1
        assert "the kernel refused the hello: denied: token signature does not match" in (
            done.stderr
        )
        assert state(daemon, "guard-a") == "disconnected"


async def test_a_client_over_websocket_runs_as_its_token(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, **LOOPBACK) as daemon:
        minted = await mint(daemon, "watcher", scopes=["kernel.read"])
        async with Client(minted["url"], token=minted["token"]) as client:
            assert client.welcome is not None
            assert client.welcome.principal == "service:watcher"
            status = await client.call("kernel.status")
            assert status["websocket"] == minted["url"]
            with pytest.raises(SyscallFailed, match=r"lacks scope 'agent\.write'"):
                await client.call("agent.create", {"name": "nope"})
            with pytest.raises(SyscallFailed, match=r"lacks scope 'kernel\.admin'"):
                await client.call("service.token", {"name": "mine"})  # never admin


async def test_revoking_or_reminting_cuts_the_old_token_off(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, **LOOPBACK) as daemon:
        kernel = daemon.kernel
        assert kernel is not None
        first = await mint(daemon, "far-guard", scopes=["kernel.read"])
        async with remote_guard(remote_env(first)) as guard:
            await poll_until(lambda: state(daemon, "far-guard") == "running")
            watcher = Client(first["url"], token=first["token"])
            await watcher.call("kernel.status")
            second = await mint(daemon, "far-guard", scopes=["kernel.read"])  # replaces the grant
            assert await asyncio.wait_for(guard.wait(), 15) == 0  # the kernel said bye
            with pytest.raises(SyscallFailed, match="revoked or replaced"):
                await watcher.call("kernel.status")  # the live connection, the old token
            await watcher.close()
            with pytest.raises(SyscallFailed, match="revoked or replaced"):
                await Client(first["url"], token=first["token"]).connect()
        async with remote_guard(remote_env(second)):
            await poll_until(lambda: state(daemon, "far-guard") == "running")
            revoked = await kernel.syscall(ADMIN, "service.revoke", {"name": "far-guard"})
            assert revoked == {"name": "far-guard", "revoked": True}
            await poll_until(lambda: service(daemon, "far-guard")["state"] == "absent")
        hooks = {h["hook"]: h for h in await kernel.syscall(ADMIN, "hook.list")}
        owners = [i["owner"] for i in hooks["tool.before"]["implementations"]]
        assert "far-guard" not in owners  # its hooks went with the grant
        bash_ls = bash("ls")
        assert await kernel.hooks.gate("tool.before", {}, bash_ls) == bash_ls


async def test_a_grant_survives_a_daemon_restart_and_guards_from_the_start(
    tmp_path: Path,
) -> None:
    """After a restart, a remote service's hooks (those of its last hello) fail
    closed until it attaches again: an agent is never unguarded meanwhile."""
    home = tmp_path / "home"
    settings = {"AOS_HOME": str(home), **LOOPBACK}
    async with running_daemon(tmp_path, **settings) as daemon:
        minted = await mint(daemon, "far-guard")
        async with remote_guard(remote_env(minted)):
            await poll_until(lambda: state(daemon, "far-guard") == "running")
    async with running_daemon(tmp_path, **settings) as daemon:
        kernel = daemon.kernel
        assert kernel is not None
        assert state(daemon, "far-guard") == "disconnected"
        with pytest.raises(HookRejected, match="far-guard is not running"):
            await kernel.hooks.gate("tool.before", {}, bash("ls"))
        assert kernel.ws_url is not None
        async with remote_guard(remote_env({**minted, "url": kernel.ws_url})):
            await poll_until(lambda: state(daemon, "far-guard") == "running")
            assert await kernel.hooks.gate("tool.before", {}, bash("ls")) == bash("ls")


async def test_a_grant_can_guard_before_the_first_hello(tmp_path: Path) -> None:
    """The hooks a grant names fail by their policy until the service says hello
    (nothing is known of its hooks before): no agent runs unguarded meanwhile."""
    async with running_daemon(tmp_path, **LOOPBACK) as daemon:
        kernel = daemon.kernel
        assert kernel is not None
        minted = await mint(daemon, "far-guard", hooks=["tool.before"])
        assert minted["hooks"] == ["tool.before"]
        with pytest.raises(HookRejected, match="far-guard is not running"):
            await kernel.hooks.gate("tool.before", {}, bash("ls"))
        async with remote_guard(remote_env(minted)):
            await poll_until(lambda: state(daemon, "far-guard") == "running")
            assert await kernel.hooks.gate("tool.before", {}, bash("ls")) == bash("ls")
        with pytest.raises(Exception, match="must be gate or provide hooks"):
            await mint(daemon, "other", hooks=["history.append"])


async def test_a_remote_name_must_not_be_a_local_skill(tmp_path: Path) -> None:
    (tmp_path / "skills").mkdir()
    async with running_daemon(tmp_path, **LOOPBACK) as daemon:
        with pytest.raises(Exception, match="is a skill on this node"):
            await mint(daemon, "aos-context")
        with pytest.raises(Exception, match="invalid service name"):
            await mint(daemon, "Bad Name")
        with pytest.raises(Exception, match=r"a service cannot hold kernel\.admin"):
            await mint(daemon, "fine", scopes=["kernel.admin"])


async def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, **LOOPBACK) as first:
        assert first.kernel is not None and first.kernel.ws_url is not None
        port = first.kernel.ws_url.rsplit(":", 1)[1].rstrip("/")
        with pytest.raises(DaemonError, match=f"cannot listen on 127.0.0.1:{port}"):
            async with running_daemon(tmp_path, AOS_WS_LISTEN=f"127.0.0.1:{port}"):
                pass


def test_the_cli_mints_and_revokes(tmp_path: Path) -> None:
    aos = str(Path(sys.executable).with_name("aos"))
    env = {**os.environ, "AOS_HOME": str(tmp_path / "home")}
    made = subprocess.run(
        [aos, "service", "token", "far-guard", "--scopes", "kernel.read", "--json"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    minted = json.loads(made.stdout)
    assert (minted["name"], minted["scopes"], minted["url"]) == ("far-guard", ["kernel.read"], None)
    assert minted["token"].startswith("aos1.")
    text = subprocess.run(
        [aos, "service", "token", "far-guard"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert "AOS_SKILL=far-guard AOS_TOKEN=aos1." in text.stdout
    assert "set AOS_WS_LISTEN" in text.stdout  # no daemon listens
    gone = subprocess.run(
        [aos, "service", "revoke", "far-guard"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert (gone.returncode, gone.stdout.strip()) == (0, "revoked remote service far-guard")
    again = subprocess.run(
        [aos, "service", "revoke", "far-guard"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert again.returncode == 1
    assert "no remote service named 'far-guard'" in again.stderr


def test_a_bad_listen_address_names_the_setting(tmp_path: Path) -> None:
    aos = str(Path(sys.executable).with_name("aos"))
    env = {**os.environ, "AOS_HOME": str(tmp_path / "home"), "AOS_WS_LISTEN": "localhost"}
    done = subprocess.run(
        [aos, "status"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert done.returncode != 0
    assert "ws_listen" in done.stderr and "AOS_WS_LISTEN" in done.stderr


@pytest.mark.parametrize(
    ("what", "reason"),
    [
        ("text", "text WebSocket message: each frame is one binary message"),
        ("empty", "empty frame"),
        ("garbage", "malformed frame: MessagePack data is malformed"),
    ],
)
async def test_a_malformed_websocket_message_gets_a_protocol_error(
    tmp_path: Path, what: str, reason: str
) -> None:
    async with running_daemon(tmp_path, **LOOPBACK) as daemon:
        assert daemon.kernel is not None and daemon.kernel.ws_url is not None
        async with aiohttp.ClientSession() as http, http.ws_connect(daemon.kernel.ws_url) as ws:
            if what == "text":
                await ws.send_str("hello")
            else:
                await ws.send_bytes(b"" if what == "empty" else b"\xc1\xc1")
            answer = await ws.receive(timeout=10)
            assert answer.type == aiohttp.WSMsgType.BINARY
            error = decode(answer.data)
            assert isinstance(error, Error) and error.code == "protocol"
            assert reason in error.message
            assert (await ws.receive(timeout=10)).type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
            )
