"""The daemon from the command line, as a user runs it: aos start / status / stop / logs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO

from aos.daemon import alive
from aos.testing import free_port

AOS = str(Path(sys.executable).with_name("aos"))


class Node:
    """A project directory with the seed skill and a short AOS_HOME."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.home = Path(tempfile.mkdtemp(prefix="aos-", dir="/tmp"))
        self.ui = {"AOS_FRONTEND_PORT": str(free_port())}  # `aos start` fails when it is taken

    def aos(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}
        return subprocess.run(
            [AOS, *args], cwd=self.project, env={**env, "AOS_HOME": str(self.home), **self.ui},
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    shutil.copytree(REPO / "skills" / "my-guard", tmp_path / "skills" / "my-guard")
    n = Node(tmp_path)
    yield n
    n.aos("stop")
    shutil.rmtree(n.home, ignore_errors=True)


def test_start_status_hooks_stop(node: Node) -> None:
    started = node.aos("start")
    assert started.returncode == 0, started.stderr
    lines = started.stdout.splitlines()
    assert lines[0].startswith("started: pid ")
    assert lines[1] == f"socket:  {node.home / 'run' / 'aos.sock'}"
    assert lines[2] == f"log:     {node.home / 'state' / 'aos.log'}"
    pid = int(lines[0].split()[-1])

    again = node.aos("start")
    assert again.returncode == 1
    assert f"a daemon is already running (pid {pid}" in again.stderr

    status = node.aos("status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["running"] is True
    assert report["pid"] == pid
    assert report["database"]["backend"] == "sqlite"
    assert "my-guard" in [s["name"] for s in report["skills"]]
    [guard] = [s for s in report["services"] if s["skill"] == "my-guard"]
    assert guard["state"] in ("starting", "running")

    hooks = json.loads(node.aos("hooks", "--json").stdout)["hooks"]
    [tool_before] = [h for h in hooks if h["hook"] == "tool.before"]
    assert [(i["owner"], i["where"]) for i in tool_before["implementations"]] == [
        ("my-guard", "service")
    ]

    result = node.aos("syscall", "agent.create", '{"name": "cli"}')
    assert json.loads(result.stdout)["agent"]["name"] == "cli"
    granted = node.aos(
        "agent", "create", "lead", "--scope", "agent.read", "--scope", "agent.write", "--json"
    )
    assert json.loads(granted.stdout)["effective"]["scopes"] == ["agent.read", "agent.write"]
    denied = node.aos("syscall", "agent.get", '{"id": "nope"}')
    assert denied.returncode == 3  # not found
    assert denied.stderr.strip() == "Error: agent.get failed: not_found: agent nope not found"

    stopped = node.aos("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == f"stopped (pid {pid})"
    assert not alive(pid)
    assert not (node.home / "run" / "aos.sock").exists()

    logs = node.aos("logs")
    assert "ready: node" in logs.stdout
    assert "shutting down: aos stop (by admin)" in logs.stdout


def test_commands_need_a_daemon_and_say_how_to_start_one(node: Node) -> None:
    for args in (
        ("status",),
        ("stop",),
        ("syscall", "kernel.status"),
        ("skill", "reload", "my-guard"),
    ):
        result = node.aos(*args)
        assert result.returncode == 5, args  # unavailable
        assert "no AgentOS daemon is running" in result.stderr
        assert "`aos start`" in result.stderr
    status = node.aos("status", "--json")
    assert status.returncode == 5
    report = json.loads(status.stdout)
    assert report["running"] is False
    assert report["socket"] == str(node.home / "run" / "aos.sock")
    assert report["error"]["code"] == "unavailable"
    assert "no AgentOS daemon is running" in report["error"]["message"]


def test_stale_pidfile_and_socket_are_removed(node: Node) -> None:
    (node.home / "state").mkdir(parents=True)
    (node.home / "run").mkdir(parents=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (node.home / "state" / "aos.pid").write_text(dead.stdout)
    (node.home / "run" / "aos.sock").write_text("stale")
    started = node.aos("start")
    assert started.returncode == 0, started.stderr
    assert "removed" in node.aos("logs").stdout


def test_a_sigterm_stops_it_cleanly(node: Node) -> None:
    started = node.aos("start")
    pid = int(started.stdout.split()[2])
    os.kill(pid, 15)
    for _ in range(300):
        if not alive(pid):
            break
        subprocess.run(["sleep", "0.05"], check=True)
    assert "shutting down: signal SIGTERM" in node.aos("logs").stdout
    assert not (node.home / "state" / "aos.pid").exists()


CHATTY = """
import sys, threading, time
from aos_sdk import define_service

def tick():
    for n in range(1000):
        print(f"tick {n}", file=sys.stderr, flush=True)
        time.sleep(0.1)

@define_service
def service():
    threading.Thread(target=tick, daemon=True).start()
    return {"hooks": {"history.append": lambda event: None}}
"""


def test_a_services_stderr_is_in_the_log_while_it_runs(node: Node) -> None:
    skill = node.project / "skills" / "chatty"
    skill.mkdir(parents=True)
    (skill / "service.py").write_text(CHATTY)
    (skill / "SKILL.md").write_text(
        "---\nname: chatty\ndescription: Talks on stderr.\nservice: ./service.py\n---\nBody.\n"
    )
    assert node.aos("start").returncode == 0
    shown: list[str] = []
    for _ in range(100):
        shown = node.aos("logs", "--service", "chatty", "-n", "1000").stdout.splitlines()
        if any(line.endswith("INFO service chatty: stderr: tick 3") for line in shown):
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"no stderr of chatty in `aos logs --service chatty`: {shown}")
    assert all(" service chatty: " in line for line in shown)
    assert any(" service chatty: running (pid " in line for line in shown)
    guard = node.aos("logs", "--service", "my-guard", "-n", "1000").stdout
    assert "chatty" not in guard and " service my-guard: running (pid " in guard


ROTATING = """
import logging, sys
from pathlib import Path
from aos.daemon import setup_logging
log = Path(sys.argv[1])
setup_logging(log, foreground=False, max_bytes=2000)
for i in range(200):
    logging.getLogger("aos").info("line %d of the node's log", i)
print("a traceback after the rotations", file=sys.stderr, flush=True)
"""


def test_the_log_rotates_and_the_daemons_stderr_follows_it(tmp_path: Path) -> None:
    """The node's log is rotated at its size (5 old files kept); the background
    daemon's stderr, which `aos start` points at the same file, moves with it."""
    log = tmp_path / "aos.log"
    with log.open("ab") as out:  # as `aos start` gives the daemon its stdout and stderr
        subprocess.run(
            [sys.executable, "-c", ROTATING, str(log)], stdout=out, stderr=out, check=True
        )
    rotated = sorted(p.name for p in tmp_path.glob("aos.log.*"))
    assert rotated == [f"aos.log.{i}" for i in range(1, 6)]
    assert all(p.stat().st_size <= 2100 for p in tmp_path.glob("aos.log*"))
    current = log.read_text()
    assert "line 199 of the node's log" in current
    assert "a traceback after the rotations" in current  # not in a rotated file
