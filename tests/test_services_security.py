"""Services that cannot be impersonated, hooks enforced before hello and across
daemon restarts, and liveness by ping: with real daemons, processes and sockets."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import REPO, copy_skill, poll_until, running_daemon
from test_services import bash, my_guard_node, running, service, slow_guard, write_service

from aos.daemon import Daemon, alive
from aos.hooks import HookRejected
from aos.principals import ADMIN
from aos.processes import ids_of
from aos.services import HOOKS_FILE

pytestmark = pytest.mark.anyio

INTRUDER = REPO / "tests" / "intruder.py"


async def intrude(daemon: Daemon, skill: str, mode: str) -> tuple[int, str]:
    """Run the intruder script against ``skill``'s socket: its pid and output."""
    path = daemon.paths.service_dir / f"{skill}.sock"
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(INTRUDER), skill, mode, str(path), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    return process.pid, out.decode()


async def log_messages(daemon: Daemon, kind: str = "service") -> list[str]:
    assert daemon.kernel is not None
    return [e["message"] for e in await daemon.kernel.syscall(ADMIN, "log.read", {"kind": kind})]


async def test_a_process_that_connects_first_is_refused(tmp_path: Path) -> None:
    """A process of the same user that reaches the socket before the service
    gets a protocol error, is logged by pid, and the service still gets in."""
    write_service(tmp_path, "slowguard", slow_guard("v1", 1.5))
    async with running_daemon(tmp_path) as daemon:
        kernel = daemon.kernel
        assert kernel is not None
        assert service(daemon, "slowguard")["state"] == "starting"
        pid, out = await intrude(daemon, "slowguard", "connect")
        assert out.startswith("REFUSED: the socket of service slowguard accepts only the process")
        assert f"pid {pid} is not one of them" in out
        await poll_until(lambda: running(daemon, "slowguard"))
        state = service(daemon, "slowguard")
        assert state["peer_pid"] == state["pid"]
        assert state["restarts"] == 0  # the intruder did not cost the service its run
        with pytest.raises(HookRejected, match="v1 says no"):
            await kernel.hooks.gate("tool.before", {}, bash("ls"))
        assert (
            f"service slowguard: refused a connection from pid {pid}: not the service's process"
            in await log_messages(daemon)
        )


async def test_a_process_that_binds_the_path_gets_no_hook_call(tmp_path: Path) -> None:
    """Replacing the socket path intercepts at most the service's hello: the kernel
    never calls the impostor, the guard stays closed, then comes back."""
    async with my_guard_node(tmp_path) as (daemon, kernel, first):
        _, out = await intrude(daemon, "my-guard", "kill-bind")
        assert f"KILLED pid {first}" in out
        with pytest.raises(HookRejected):
            await kernel.hooks.gate("tool.before", {}, bash("echo 'DROP TABLE users'"))
        await poll_until(
            lambda: running(daemon, "my-guard") and service(daemon, "my-guard")["pid"] != first
        )
        with pytest.raises(HookRejected, match="blocked: DROP TABLE"):
            await kernel.hooks.gate("tool.before", {}, bash("echo 'DROP TABLE users'"))


CHILD_SERVICE = """#!/bin/sh
# not exec: the process that connects is a child of the spawned one
"{python}" -m aos_sdk.run "$(dirname "$0")/guard.py"
status=$?
exit $status
"""


async def test_status_reports_the_pid_really_connected(tmp_path: Path) -> None:
    skill_dir = write_service(tmp_path, "wrapped", slow_guard("wrapped", 0))
    (skill_dir / "service.py").rename(skill_dir / "guard.py")
    (skill_dir / "service.sh").write_text(CHILD_SERVICE.format(python=sys.executable))
    (skill_dir / "service.sh").chmod(0o755)
    md = (skill_dir / "SKILL.md").read_text().replace("./service.py", "./service.sh")
    (skill_dir / "SKILL.md").write_text(md)
    async with running_daemon(tmp_path) as daemon:
        await poll_until(lambda: running(daemon, "wrapped"))
        state = service(daemon, "wrapped")
        assert state["peer_pid"] not in (None, state["pid"])
        parent = ids_of(state["peer_pid"])
        assert parent is not None and parent.ppid == state["pid"]
        assert (
            f"service wrapped: running (pid {state['pid']}, connected from pid {state['peer_pid']})"
            in await log_messages(daemon)
        )


@pytest.mark.parametrize("failure", ["fail-closed", "fail-open"])
async def test_hooks_declared_in_skill_md_hold_before_hello(tmp_path: Path, failure: str) -> None:
    write_service(
        tmp_path,
        "slowguard",
        slow_guard("v1", 2.0),
        f"hooks:\n  tool.before:\n    failure: {failure}\n",
    )
    async with running_daemon(tmp_path) as daemon:
        kernel = daemon.kernel
        assert kernel is not None
        assert service(daemon, "slowguard")["state"] == "starting"
        [impl] = kernel.hooks.impls("tool.before")
        assert (impl.owner, impl.where, impl.failure) == ("slowguard", "service", failure)
        if failure == "fail-closed":
            with pytest.raises(HookRejected) as info:
                await kernel.hooks.gate("tool.before", {}, bash("ls"))
            assert info.value.reason == (
                "slowguard failed on tool.before: RuntimeError: the service of slowguard "
                "is not running (starting): try again shortly"
            )
        else:
            assert await kernel.hooks.gate("tool.before", {}, bash("ls")) == bash("ls")


FIRST_RUN_ONLY = """
import os, sys
from aos_sdk import define_service

MARK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "started-once")
if os.path.exists(MARK):
    sys.exit(1)  # broken from the second start on
open(MARK, "w").close()

@define_service
def service():
    def guard(input_data, output_data):
        return {"verdict": "reject", "reason": "no"}
    return {"hooks": {"tool.before": {"fn": guard, "priority": "first"}}}
"""


async def test_the_last_hello_s_hooks_hold_after_a_daemon_restart(tmp_path: Path) -> None:
    """A guard that declares nothing in SKILL.md and breaks while the daemon is
    down is still enforced by the hooks of its last hello at the next start."""
    write_service(tmp_path, "broken-later", FIRST_RUN_ONLY)
    home = Path(tempfile.mkdtemp(prefix="aos-", dir="/tmp"))
    async with running_daemon(tmp_path, AOS_HOME=str(home)) as daemon:
        await poll_until(lambda: running(daemon, "broken-later"))
    remembered = json.loads((home / "state" / HOOKS_FILE).read_text())
    assert remembered["skills"]["broken-later"] == [{"name": "tool.before", "priority": "first"}]
    async with running_daemon(tmp_path, AOS_HOME=str(home)) as daemon:
        kernel = daemon.kernel
        assert kernel is not None
        [impl] = kernel.hooks.impls("tool.before")  # before the service even started
        assert (impl.owner, impl.tryfirst) == ("broken-later", True)
        await poll_until(lambda: service(daemon, "broken-later")["last_error"] is not None)
        with pytest.raises(HookRejected) as info:
            await kernel.hooks.gate("tool.before", {}, bash("ls"))
        assert re.search(
            r"the service of broken-later is not running \(\w+: exited with code 1",
            info.value.reason,
        )
        # removed for good: no longer expected, at this start or the next
        for path in sorted((tmp_path / "skills" / "broken-later").rglob("*"), reverse=True):
            path.unlink()
        (tmp_path / "skills" / "broken-later").rmdir()
        await poll_until(lambda: service(daemon, "broken-later")["state"] == "absent")
        assert kernel.hooks.impls("tool.before") == ()
    assert "broken-later" not in json.loads((home / "state" / HOOKS_FILE).read_text())["skills"]


async def test_an_unreadable_hooks_file_is_reported_and_replaced(tmp_path: Path) -> None:
    copy_skill("my-guard", tmp_path)
    home = Path(tempfile.mkdtemp(prefix="aos-", dir="/tmp"))
    (home / "state").mkdir()
    (home / "state" / HOOKS_FILE).write_text("{not json")
    async with running_daemon(tmp_path, AOS_HOME=str(home)) as daemon:
        await poll_until(lambda: running(daemon, "my-guard"))
        assert any("is not a valid hooks file" in m for m in await log_messages(daemon))
    remembered = json.loads((home / "state" / HOOKS_FILE).read_text())
    assert remembered["skills"]["my-guard"] == [{"name": "tool.before"}]
    assert (home / "state" / HOOKS_FILE).stat().st_mode & 0o777 == 0o600


async def test_a_stopped_service_is_reported_killed_and_restarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("aos.services.PING_INTERVAL", 0.1)
    monkeypatch.setattr("aos.services.PING_DEADLINE", 0.5)
    async with my_guard_node(tmp_path) as (daemon, kernel, first):
        os.kill(first, signal.SIGSTOP)
        await poll_until(
            lambda: running(daemon, "my-guard") and service(daemon, "my-guard")["pid"] != first
        )
        assert not alive(first)
        state = service(daemon, "my-guard")
        assert state["last_error"] == "did not answer a ping within 0.5s: killed"
        assert state["restarts"] == 1
        assert (
            f"service my-guard: not answering: no pong within 0.5s; killing its process group "
            f"(pid {first}) and restarting it" in await log_messages(daemon)
        )
        with pytest.raises(HookRejected, match="blocked: DROP TABLE"):
            await kernel.hooks.gate("tool.before", {}, bash("echo 'DROP TABLE users'"))


RAW_SERVICE = """
import os, socket
from aos_sdk.protocol import HEADER, Hello, HookDecl, Ping, Pong, decode, encode

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "received")
out = open(OUT, "a", buffering=1)  # a line at a time
sock = socket.socket(socket.AF_UNIX)
sock.connect(os.environ["AOS_SERVICE_SOCKET"])
sock.sendall(encode(Hello(role="service", sdk="raw/0", skill=os.environ["AOS_SKILL"],
                          hooks=[HookDecl(name="tool.before")])))
stream = sock.makefile("rb")
while (header := stream.read(HEADER.size)):
    message = decode(stream.read(HEADER.unpack(header)[0]))
    print(type(message).__name__ + ":" + getattr(message, "reason", ""), file=out)
    if isinstance(message, Ping):
        try:
            sock.sendall(encode(Pong(id=message.id)))
        except OSError:  # a ping just before the bye: the kernel has hung up; read on
            pass
"""


async def test_a_stopped_service_is_told_bye(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the SDK: the wire protocol alone; pinged while it runs, told why it
    is stopped before its connection closes, and given a moment to exit."""
    monkeypatch.setattr("aos.services.PING_INTERVAL", 0.05)
    write_service(tmp_path, "raw", RAW_SERVICE)
    async with running_daemon(tmp_path) as daemon:
        kernel = daemon.kernel
        assert kernel is not None
        await poll_until(lambda: running(daemon, "raw"))
        first = service(daemon, "raw")["pid"]
        await poll_until(lambda: (tmp_path / "received").read_text().count("Ping:") >= 2)
        await kernel.syscall(ADMIN, "skill.reload", {"name": "raw"})
        await poll_until(lambda: running(daemon, "raw") and service(daemon, "raw")["pid"] != first)
        received = (tmp_path / "received").read_text().splitlines()
        assert received[0] == "Welcome:"
        bye = "Bye:the daemon is stopping the service"
        assert bye in received, (received, await log_messages(daemon))
        assert received[received.index(bye) - 1] == "Ping:"
        assert "service raw: crashed" not in " ".join(await log_messages(daemon))


ADMIN_SEEKER = """
import os
from pathlib import Path

import aos_sdk
from aos_sdk import define_service

control = os.path.join(os.path.dirname(os.environ["AOS_SOCKET"]), "aos.sock")
try:
    said = f"ADMIN: {aos_sdk.call('kernel.status', socket=control, token='', connect_timeout=5)}"
except aos_sdk.SyscallFailed as exc:
    said = f"REFUSED: {exc}"
Path("said.txt").write_text(said)


@define_service
def service():
    return {}
"""


async def test_a_service_is_never_admin_on_the_control_socket(tmp_path: Path) -> None:
    """A service (or anything it starts) runs as the daemon's user, but it uses its
    own token: the control socket does not make it admin."""
    skill = write_service(tmp_path, "admin-seeker", ADMIN_SEEKER)
    async with running_daemon(tmp_path) as daemon:
        await poll_until(lambda: (skill / "said.txt").exists())
        said = (skill / "said.txt").read_text()
        assert not said.startswith("ADMIN"), said
        assert "is never admin" in said
        assert daemon.paths.control_socket.name == "aos.sock"
