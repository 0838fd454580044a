"""Service faces with real processes: the seed example, supervision, hot reload."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aos_sdk.peer import Peer
from aos_sdk.protocol import Welcome
from aos_sdk.transport import StreamTransport
from conftest import REPO, copy_skill, poll_until, running_daemon

from aos.daemon import Daemon, alive
from aos.hooks import HookRejected
from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.testing import Reply, ScriptedLLM

pytestmark = pytest.mark.anyio


def bash(command: str) -> dict[str, Any]:
    return {"tool": "bash", "args": {"command": command, "timeout": 5.0}, "cwd": "/tmp", "env": {}}


def service(daemon: Daemon, name: str) -> dict[str, Any]:
    assert daemon.kernel is not None
    assert daemon.kernel.services is not None
    found = [s for s in daemon.kernel.services.status() if s["skill"] == name]
    return (
        found[0] if found else {"state": "absent", "pid": None, "restarts": 0, "last_error": None}
    )


def running(daemon: Daemon, name: str) -> bool:
    return service(daemon, name)["state"] == "running"


@contextlib.asynccontextmanager
async def my_guard_node(project: Path) -> AsyncIterator[tuple[Daemon, Kernel, int]]:
    """A daemon for ``project`` with the repository's my-guard copied in and its
    service running: ``(daemon, kernel, the service's pid)``."""
    copy_skill("my-guard", project)
    async with running_daemon(project) as daemon:
        kernel = daemon.kernel
        assert kernel is not None
        await poll_until(lambda: running(daemon, "my-guard"))
        yield daemon, kernel, service(daemon, "my-guard")["pid"]


def write_service(project: Path, name: str, code: str, extra: str = "") -> Path:
    skill_dir = project / "skills" / name
    skill_dir.mkdir(parents=True, exist_ok=True)
    (skill_dir / "service.py").write_text(code)
    (skill_dir / "SKILL.md").write_text(
        f"---\nname: {name}\ndescription: Test service {name}.\nservice: ./service.py\n{extra}---\nBody.\n"
    )
    return skill_dir


async def test_seed_example_guards_tool_before(tmp_path: Path) -> None:
    copy_skill("my-guard", tmp_path)
    async with running_daemon(tmp_path) as daemon:
        kernel = daemon.kernel
        assert kernel is not None
        await poll_until(lambda: running(daemon, "my-guard"))
        with pytest.raises(HookRejected) as info:
            await kernel.hooks.gate(
                "tool.before", {"session_id": "s"}, bash("rm -rf / --no-preserve-root")
            )
        assert (info.value.owner, info.value.reason) == ("my-guard", "blocked: rm -rf /")
        assert await kernel.hooks.gate("tool.before", {}, bash("ls")) == bash("ls")
        hooks = {h["hook"]: h for h in await kernel.syscall(ADMIN, "hook.list")}
        [impl] = hooks["tool.before"]["implementations"]
        assert (impl["owner"], impl["where"]) == ("my-guard", "service")


async def test_killed_service_restarts_and_its_hooks_come_back(tmp_path: Path) -> None:
    async with my_guard_node(tmp_path) as (daemon, kernel, first):
        os.kill(first, signal.SIGKILL)
        await poll_until(lambda: service(daemon, "my-guard")["state"] != "running")
        # the kernel keeps serving meanwhile
        assert (await kernel.syscall(ADMIN, "kernel.status"))["pid"] == os.getpid()
        await poll_until(
            lambda: running(daemon, "my-guard") and service(daemon, "my-guard")["pid"] != first
        )
        state = service(daemon, "my-guard")
        assert state["restarts"] == 1
        assert state["last_error"].startswith("exited with code -9")
        with pytest.raises(HookRejected):
            await kernel.hooks.gate("tool.before", {}, bash("rm -rf /"))
        crashes = await kernel.syscall(ADMIN, "log.read", {"kind": "service"})
        assert any("crashed: exited with code -9" in c["message"] for c in crashes)


ONCE = """
import os, sys
from aos_sdk import define_service

# beside the project's skills/ (a file in the skill itself would be a change to reload)
MARK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "once-started")
if os.path.exists(MARK):
    sys.exit(3)  # every start after the first fails: the service stays down
open(MARK, "w").close()

@define_service
def service():
    def allow(input_data, output_data):
        return output_data
    return {"hooks": {"tool.before": allow}}
"""


async def test_a_guard_that_is_down_keeps_guarding(tmp_path: Path) -> None:
    """While a service is down its hooks stay, failing as their policy says: a gate
    fails closed, so a policy skill never lapses while it restarts."""
    write_service(tmp_path, "once", ONCE)
    async with running_daemon(tmp_path) as daemon:
        kernel = daemon.kernel
        assert kernel is not None
        await poll_until(lambda: running(daemon, "once"))
        assert await kernel.hooks.gate("tool.before", {}, bash("ls")) == bash("ls")
        os.kill(service(daemon, "once")["pid"], signal.SIGKILL)
        await poll_until(lambda: service(daemon, "once")["restarts"] >= 2)
        with pytest.raises(HookRejected) as info:
            await kernel.hooks.gate("tool.before", {}, bash("ls"))
        assert info.value.owner == "once"
        assert "the service of once is not running" in info.value.reason
        assert "try again shortly" in info.value.reason


SLOW_GUARD = """
import time
from aos_sdk import define_service

time.sleep(SLEEP)  # a slow start: imports, a model to load...

@define_service
def service():
    def guard(input_data, output_data):
        return {"verdict": "reject", "reason": "VERSION says no"}
    return {"hooks": {"tool.before": guard}}
"""


def slow_guard(version: str, sleep: float) -> str:
    return SLOW_GUARD.replace("VERSION", version).replace("SLEEP", str(sleep))


async def test_a_dispatch_waits_for_a_guard_that_is_starting(tmp_path: Path) -> None:
    """A dispatch right after the daemon starts runs nothing before the active
    skills' services said hello."""
    write_service(tmp_path, "slowguard", slow_guard("v1", 2.0))
    with ScriptedLLM(Reply.tool_call("echo ran"), Reply.text("done")) as llm:
        async with running_daemon(
            tmp_path, OPENROUTER_BASE_URL=llm.base_url, AOS_MODEL="m"
        ) as daemon:
            kernel = daemon.kernel
            assert kernel is not None
            assert service(daemon, "slowguard")["state"] == "starting"
            agent = await kernel.syscall(
                ADMIN, "agent.create", {"name": "a", "config": {"skills": ["slowguard"]}}
            )
            made = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]})
            await kernel.syscall(ADMIN, "session.dispatch", {"id": made["id"], "message": "go"})
            history = await kernel.syscall(ADMIN, "session.history", {"id": made["id"]})
            [result] = [h["fact"] for h in history if h["fact"]["kind"] == "tool.result"]
            assert result["output"] == "rejected by slowguard: v1 says no"


async def test_a_changed_guard_keeps_its_gate_closed_until_the_new_one_is_up(
    tmp_path: Path,
) -> None:
    skill_dir = write_service(tmp_path, "slowguard", slow_guard("v1", 0))
    async with running_daemon(tmp_path) as daemon:
        kernel = daemon.kernel
        assert kernel is not None
        await poll_until(lambda: running(daemon, "slowguard"))
        first = service(daemon, "slowguard")["pid"]
        staged = skill_dir / ".service.py.new"
        staged.write_text(slow_guard("v2", 2.0))
        staged.replace(skill_dir / "service.py")  # hot reload: a new version starts slowly
        await poll_until(lambda: service(daemon, "slowguard")["pid"] not in (first, None))
        with pytest.raises(HookRejected) as info:  # v1 gone, v2 not up: closed, not open
            await kernel.hooks.gate("tool.before", {}, bash("ls"))
        assert "the service of slowguard is not running" in info.value.reason
        await poll_until(lambda: running(daemon, "slowguard"))
        with pytest.raises(HookRejected) as info:
            await kernel.hooks.gate("tool.before", {}, bash("ls"))
        assert info.value.reason == "v2 says no"


SLOW = """
import time
from aos_sdk import define_service

@define_service
def service():
    def slow(input_data, output_data):
        time.sleep(30)
        return output_data
    return {"hooks": {"tool.before": slow}}
"""


@pytest.mark.parametrize(("failure", "rejects"), [("fail-closed", True), ("fail-open", False)])
async def test_hook_past_its_timeout_gets_the_policy(
    tmp_path: Path, failure: str, rejects: bool
) -> None:
    write_service(
        tmp_path,
        "slow",
        SLOW,
        f"hooks:\n  tool.before:\n    timeout: 0.3\n    failure: {failure}\n",
    )
    async with running_daemon(tmp_path) as daemon:
        kernel = daemon.kernel
        assert kernel is not None
        await poll_until(lambda: running(daemon, "slow"))
        if rejects:
            with pytest.raises(HookRejected, match=r"slow timed out after 0\.3s"):
                await kernel.hooks.gate("tool.before", {}, bash("ls"))
        else:
            assert await kernel.hooks.gate("tool.before", {}, bash("ls")) == bash("ls")
        # the daemon stays responsive while the service is still busy
        assert (await kernel.syscall(ADMIN, "kernel.status"))["pid"] == os.getpid()


SILENT = """
import time
time.sleep(60)
"""


async def test_service_that_never_says_hello_is_killed_and_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("aos.services.HELLO_TIMEOUT", 0.5)
    skill_dir = write_service(tmp_path, "mute", SILENT)
    (skill_dir / "service.py").rename(skill_dir / "service.sh")
    (skill_dir / "service.sh").write_text("#!/bin/sh\nsleep 60\n")
    (skill_dir / "service.sh").chmod(0o755)
    (skill_dir / "SKILL.md").write_text(
        "---\nname: mute\ndescription: Never says hello.\nservice: ./service.sh\n---\n"
    )
    async with running_daemon(tmp_path) as daemon:
        await poll_until(lambda: service(daemon, "mute")["last_error"] is not None)
        state = service(daemon, "mute")
        assert state["state"] in ("failed", "backoff")
        assert state["last_error"] == "did not say hello within 0.5s: killed"


CRASHING = """
import sys
print("boom: missing configuration", file=sys.stderr)
sys.exit(3)
"""


async def test_crash_is_logged_with_exit_code_and_stderr(tmp_path: Path) -> None:
    write_service(tmp_path, "crashy", CRASHING)
    async with running_daemon(tmp_path) as daemon:
        await poll_until(
            lambda: (service(daemon, "crashy")["last_error"] or "").startswith("exited")
        )
        assert service(daemon, "crashy")["last_error"] == (
            "exited with code 3 before saying hello; stderr: boom: missing configuration"
        )


async def test_hot_reload_restarts_changed_and_stops_removed_services(tmp_path: Path) -> None:
    guard = tmp_path / "skills" / "my-guard"
    async with my_guard_node(tmp_path) as (daemon, kernel, first):
        code = (
            (guard / "service.py")
            .read_text()
            .replace("'DROP TABLE'", "'DROP TABLE', 'shutdown -h'")
        )
        staged = guard / ".service.py.new"
        staged.write_text(code)
        staged.replace(guard / "service.py")  # one atomic change, as an editor saves
        await poll_until(
            lambda: running(daemon, "my-guard") and service(daemon, "my-guard")["pid"] != first
        )

        async def guarded() -> bool:
            try:
                await kernel.hooks.gate("tool.before", {}, bash("shutdown -h now"))
            except HookRejected as exc:
                return exc.reason == "blocked: shutdown -h"
            return False  # (the watcher may report the change in two batches: settling)

        for _ in range(100):
            if await guarded():
                break
            await asyncio.sleep(0.1)
        assert await guarded()
        second = service(daemon, "my-guard")["pid"]
        for path in sorted(guard.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        guard.rmdir()
        await poll_until(lambda: service(daemon, "my-guard")["state"] == "absent")
        # (its entry goes first; its hooks leave once the stop it awaits is done)
        await poll_until(lambda: kernel.hooks.impls("tool.before") == ())
        await poll_until(lambda: not alive(second))  # the process is gone too


async def test_skill_reload_restarts_on_demand(tmp_path: Path) -> None:
    async with my_guard_node(tmp_path) as (daemon, kernel, first):
        await kernel.syscall(ADMIN, "skill.reload", {"name": "my-guard"})
        await poll_until(
            lambda: running(daemon, "my-guard") and service(daemon, "my-guard")["pid"] != first
        )


SYSCALLER = """
from aos_sdk import define_service, syscall

@define_service
def service():
    async def on_create(event):
        await syscall("session.append", {"id": event["session"]["id"],
                      "fact": {"kind": "message.user", "text": "hello from a service"}})
    return {"hooks": {"session.create": on_create}}
"""


async def test_service_calls_syscalls_with_its_scopes(tmp_path: Path) -> None:
    write_service(tmp_path, "greeter", SYSCALLER, "scopes: [session.write]\n")
    async with running_daemon(tmp_path, AOS_DEFAULT_SKILLS="greeter") as daemon:
        kernel = daemon.kernel
        assert kernel is not None
        await poll_until(lambda: running(daemon, "greeter"))
        agent = await kernel.syscall(ADMIN, "agent.create", {"name": "a"})
        session = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]})

        async def greeted() -> bool:
            history = await kernel.syscall(ADMIN, "session.history", {"id": session["id"]})
            return any(h["fact"].get("text") == "hello from a service" for h in history)

        for _ in range(200):
            if await greeted():
                break
            await asyncio.sleep(0.05)
        assert await greeted()


LEAVER = """
import sys
from aos_sdk import define_service, leave

@define_service
def service():
    def allow(input_data, output_data):
        return output_data

    async def start():
        print("leaving: nothing left to guard", file=sys.stderr, flush=True)
        await leave("nothing left to guard")

    return {"hooks": {"tool.before": allow}, "start": start}
"""


async def test_a_service_that_says_bye_and_exits_0_is_stopped_not_crashed(tmp_path: Path) -> None:
    """A clean leave: no crash, no restart, `stopped` with its reason; its gate
    fails closed (its policy) until a reload, saying so."""
    write_service(tmp_path, "leaver", LEAVER)
    async with running_daemon(tmp_path) as daemon:
        kernel = daemon.kernel
        assert kernel is not None
        await poll_until(lambda: service(daemon, "leaver")["state"] == "stopped")
        state = service(daemon, "leaver")
        assert (state["restarts"], state["last_error"]) == (0, None)
        assert state["left"] == "nothing left to guard"
        with pytest.raises(HookRejected) as info:
            await kernel.hooks.gate("tool.before", {}, bash("ls"))
        assert info.value.reason.endswith(
            "the service of leaver left (nothing left to guard): "
            "`aos skill reload leaver` starts it again"
        )
        await kernel.flush_logs()
        said = [e["message"] for e in await kernel.syscall(ADMIN, "log.read", {"kind": "service"})]
        assert any("service leaver: stopped: it left (nothing left to guard)" in m for m in said)
        assert not any("crashed" in m for m in said)


DEADLINE = """
import json, os, socket, sys
sys.path.insert(0, os.environ["SDK_PATH"])
from aos_sdk.protocol import HEADER, Hello, HookCall, HookDecl, HookResult, Ping, Pong, encode, decode

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deadlines")
sock = socket.socket(socket.AF_UNIX)
sock.connect(os.environ["AOS_SERVICE_SOCKET"])
sock.sendall(encode(Hello(role="service", sdk="raw/0", skill=os.environ["AOS_SKILL"],
                          hooks=[HookDecl(name="tool.before", timeout=2.5)])))
stream = sock.makefile("rb")
while (header := stream.read(HEADER.size)):
    message = decode(stream.read(HEADER.unpack(header)[0]))
    if isinstance(message, HookCall):
        with open(OUT, "a") as out:
            print(json.dumps([message.hook, message.timeout]), file=out)
        sock.sendall(encode(HookResult(id=message.id, result=message.args["output"])))
    elif isinstance(message, Ping):
        sock.sendall(encode(Pong(id=message.id)))
"""


async def test_a_hook_call_carries_its_deadline_and_hook_list_its_latency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service learns how long it has (its declared timeout); hook.list
    counts each implementation's calls and reports their p50 and p99."""
    monkeypatch.setenv("SDK_PATH", str(REPO / "sdk" / "python"))
    write_service(tmp_path, "timed", DEADLINE)
    async with running_daemon(tmp_path) as daemon:
        kernel = daemon.kernel
        assert kernel is not None
        await poll_until(lambda: running(daemon, "timed"))
        for _ in range(3):
            assert await kernel.hooks.gate("tool.before", {}, bash("ls")) == bash("ls")
        calls = (tmp_path / "deadlines").read_text().splitlines()
        assert [json.loads(c) for c in calls] == [["tool.before", 2.5]] * 3
        hooks = {h["hook"]: h for h in await kernel.syscall(ADMIN, "hook.list")}
        [impl] = hooks["tool.before"]["implementations"]
        assert impl["calls"] == 3
        assert 0 < impl["p50_ms"] <= impl["p99_ms"]
        [idle] = hooks["session.assemble"]["implementations"]
        assert (idle["calls"], idle["p50_ms"], idle["p99_ms"]) == (0, None, None)


async def test_a_python_service_leaves_cleanly_on_sigterm(tmp_path: Path) -> None:
    """SIGTERM ends the connection and the process exits 0 after its cleanup ran
    (a `finally` in a task), as the TypeScript SDK does: a service's children
    (aos-mcp's MCP servers) are stopped, not orphaned."""
    program = tmp_path / "service.py"
    marker = tmp_path / "cleaned"
    program.write_text(
        "import asyncio\n"
        "from aos_sdk import define_service\n"
        "async def hold():\n"
        "    try:\n"
        "        await asyncio.Event().wait()\n"
        "    finally:\n"
        f"        open({str(marker)!r}, 'w').close()\n"
        "tasks = set()\n"
        "@define_service\n"
        "def service():\n"
        "    return {'hooks': {}, 'start': lambda: tasks.add(asyncio.get_running_loop().create_task(hold()))}\n"
    )
    socket_path = tmp_path / "s.sock"
    hello: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def kernel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(StreamTransport(reader, writer))
        await peer.read_message()
        peer.send(Welcome(node="n", version="v", principal="service:s"))
        hello.set_result(None)
        await peer.serve()

    server = await asyncio.start_unix_server(kernel, path=str(socket_path))
    env = {**os.environ, "AOS_SERVICE_SOCKET": str(socket_path), "AOS_SKILL": "s"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aos_sdk.run", str(program), env=env
    )
    try:
        await asyncio.wait_for(hello, 30)
        await asyncio.sleep(0.2)  # start ran
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
        assert marker.exists()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        server.close()
