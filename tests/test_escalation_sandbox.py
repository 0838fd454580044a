"""The escalation suite, sandbox part: what an agent's own bash must not reach.

Each attempt is made by the agent's bash in a real dispatch (tests/escalation.py)
and must fail with the reason in the tool result: the node's files, sockets,
processes, secrets and other workspaces do not exist in its sandbox; and even
unsandboxed, the control socket never makes it admin.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
from aos_sdk import SyscallFailed
from conftest import REPO
from escalation import attempt, hostile_node, new_agent

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("bubblewrap")]

MODEL_KEY = "sk-or-v1-escalation-test-key"
DECOY = "decoy-db-password-7f3a"


def as_admin(control_socket: Path, name: str) -> str:
    """A command that calls one syscall on the control socket with no token."""
    code = (
        "from aos_sdk import call; "
        f"print('ADMIN:', call({name!r}, socket={str(control_socket)!r}, token='', "
        "connect_timeout=1))"
    )
    return f'"$AOS_PYTHON" -c {shlex.quote(code)}'


def output(result: dict[str, Any]) -> str:
    return str(result["output"])


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's environment holds a model key and another secret."""
    monkeypatch.setenv("OPENROUTER_API_KEY", MODEL_KEY)
    monkeypatch.setenv("SERVICE_DATABASE_PASSWORD", DECOY)


async def test_the_node_does_not_exist_in_the_sandbox(tmp_path: Path, secrets: None) -> None:
    (tmp_path / "skills").mkdir()
    async with hostile_node(tmp_path) as (daemon, client):
        evil = await new_agent(client, "evil")
        paths = daemon.paths
        db = daemon.config.paths.sqlite_file
        key = daemon.config.paths.state_dir / "token.key"
        assert db.exists() and key.exists()

        result = await evil.bash(as_admin(paths.control_socket, "agent.list"))
        attempt("connect to the control socket", result, succeeded="ADMIN:" in output(result))
        assert "NotConnected" in output(result) or "No such file" in output(result)

        for what, command in (
            ("read the database file", f"head -c 100 {db}"),
            ("copy the database file", f"cp {db} ./stolen.db && ls -la stolen.db"),
            ("read the node key (to forge tokens)", f"base64 {key}"),
            ("read the web UI's token", f"cat {key.parent / 'frontend.token'}"),
            ("list the node's state", f"ls {key.parent}"),
        ):
            result = await evil.bash(command)
            attempt(what, result, succeeded=result["exit_code"] == 0)
            assert "No such file or directory" in output(result)

        before = db.read_bytes()
        result = await evil.bash(f"echo x >> {db}; sqlite3 {db} 'drop table facts' 2>&1; ls {db}")
        attempt("write the database file", result, succeeded=db.read_bytes() != before)

        for what, where in (
            ("write into the project's skill root", tmp_path / "skills"),
            ("write into AgentOS's own code", REPO / "aos"),
        ):
            result = await evil.bash(f"mkdir {where}/evil-skill && echo MADE")
            attempt(what, result, succeeded="MADE" in output(result))
            assert "Read-only file system" in output(result)
            assert not (where / "evil-skill").exists()


async def test_no_process_of_the_node_is_visible_or_signalable(tmp_path: Path) -> None:
    async with hostile_node(tmp_path) as (daemon, client):
        evil = await new_agent(client, "evil")
        first = await evil.bash("true")  # the sandbox and its spawner exist from here on
        assert first["exit_code"] == 0
        assert daemon.kernel is not None and daemon.kernel.services is not None
        spawners = daemon.kernel.sandboxes.pids()
        services = [s["pid"] for s in daemon.kernel.services.status() if s["pid"]]
        assert spawners and services
        me = os.getpid()

        result = await evil.bash(f"cat /proc/{me}/environ")
        attempt("read /proc/<daemon>/environ", result, succeeded=result["exit_code"] == 0)
        assert "No such file or directory" in output(result)

        result = await evil.bash("ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '")
        visible = {int(p) for p in output(result).split()}
        attempt("see the daemon's pid", result, succeeded=me in visible and me > 10)
        assert max(visible) < 20  # its own namespace: bubblewrap, the spawner, bash, ls...

        for what, pid in (
            ("signal the daemon", me),
            *(("signal the command spawner", p) for p in spawners),
            *(("signal a skill's service", p) for p in services),
        ):
            result = await evil.bash(f"kill -STOP {pid} && echo SIGNALLED")
            attempt(what, result, succeeded="SIGNALLED" in output(result))
            assert "No such process" in output(result)
        assert all(_state(p) != "T" for p in (me, *spawners, *services))


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


async def test_secrets_and_other_workspaces_are_absent(tmp_path: Path, secrets: None) -> None:
    async with hostile_node(tmp_path) as (daemon, client):
        victim = await new_agent(client, "victim")
        result = await victim.bash("echo the-victims-notes > notes.txt && pwd")
        victim_workspace = output(result).strip()
        assert (Path(victim_workspace) / "notes.txt").exists()

        evil = await new_agent(client, "evil")
        result = await evil.bash(f"cat {victim_workspace}/notes.txt")
        attempt("read another agent's workspace", result, succeeded="victims" in output(result))
        assert "No such file or directory" in output(result)

        result = await evil.bash(f"ls {Path(victim_workspace).parent}")
        attempt("list the other workspaces", result, succeeded=victim.id in output(result))

        result = await evil.bash(
            "env; cat /proc/1/environ /proc/self/environ 2>&1 | tr '\\0' '\\n'"
        )
        found = [s for s in (MODEL_KEY, DECOY, str(daemon.config.db_url)) if s in output(result)]
        attempt(
            "find the model key or database URL in its environment", result, succeeded=bool(found)
        )
        assert "AOS_TOKEN=" in output(result)  # its own door is there


async def test_the_workspace_is_writable_and_tmp_is_private(tmp_path: Path) -> None:
    async with hostile_node(tmp_path) as (_, client):
        agent = await new_agent(client, "worker")
        marker = f"aos-sandbox-{os.getpid()}"
        result = await agent.bash(f"echo kept > kept.txt && echo gone > /tmp/{marker} && pwd")
        assert result["exit_code"] == 0, output(result)
        workspace = Path(output(result).strip())
        assert (workspace / "kept.txt").read_text() == "kept\n"
        assert not (Path("/tmp") / marker).exists()
        result = await agent.bash('echo "$HOME" && whoami >/dev/null; echo $?')
        assert output(result).split()[0] == str(workspace)


@pytest.mark.usefixtures("pasta")
async def test_the_network_reaches_out_but_not_the_node(tmp_path: Path) -> None:
    """``network: on`` has a route out (through pasta) but not the node's own ports
    on the loopback; ``none`` has nothing; ``host`` (the admin's choice) is the
    host's network, the node's ports included."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        probe = (
            "import socket\n"
            "out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "try: out.connect(('198.51.100.1', 9)); print('ROUTE OUT')\n"
            "except OSError as exc: print('NO ROUTE', exc)\n"
            f"socket.create_connection(('127.0.0.1', {port}), 2); print('REACHED')"
        )
        command = f'"$AOS_PYTHON" -c {shlex.quote(probe)}'
        async with hostile_node(tmp_path) as (_, client):
            host = await new_agent(client, "host", config={"network": "host"})
            assert "REACHED" in output(await host.bash(command))  # the probe works

            online = await new_agent(client, "online")
            result = await online.bash(command)
            assert "ROUTE OUT" in output(result)
            attempt(
                "reach the node's own ports (network: on)",
                result,
                succeeded="REACHED" in output(result),
            )
            assert "Connection refused" in output(result)

            offline = await new_agent(client, "offline", config={"network": "none"})
            result = await offline.bash(command)
            assert "NO ROUTE" in output(result)
            attempt(
                "reach the node's ports with network: none",
                result,
                succeeded="REACHED" in output(result),
            )
            child = await new_agent(client, "child", parent=offline.id, config={"network": "on"})
            result = await child.bash(command)  # inherited: a child cannot switch it back on
            attempt(
                "switch the network back on in a child",
                result,
                succeeded="ROUTE OUT" in output(result) or "REACHED" in output(result),
            )


async def test_unsandboxed_the_control_socket_still_refuses_admin(tmp_path: Path) -> None:
    async with hostile_node(tmp_path, AOS_SANDBOX="off") as (daemon, client):
        evil = await new_agent(client, "evil")
        ctl = daemon.paths.control_socket
        for what, command in (
            ("connect to the control socket (sandbox off)", as_admin(ctl, "agent.list")),
            (
                "connect from an orphan in a new session (sandbox off)",
                f"setsid -f sh -c {shlex.quote(as_admin(ctl, 'agent.list') + ' > out.txt 2>&1')}; "
                "sleep 1.5; cat out.txt",
            ),
        ):
            result = await evil.bash(command)
            attempt(what, result, succeeded="ADMIN:" in output(result))
            assert "is never admin" in output(result)


async def test_sandbox_required_without_bubblewrap_refuses_in_one_sentence(
    tmp_path: Path,
) -> None:
    python_only = tmp_path / "bin"
    python_only.mkdir()
    (python_only / "python3").symlink_to(sys.executable)
    async with hostile_node(tmp_path, AOS_SANDBOX="required", PATH=str(python_only)) as (
        daemon,
        client,
    ):
        assert daemon.kernel is not None
        isolation = (await client.call("kernel.status"))["isolation"]
        assert (isolation["mode"], isolation["available"], isolation["sandboxed"]) == (
            "required",
            False,
            False,
        )
        agent = await new_agent(client, "careful")
        with pytest.raises(SyscallFailed) as refused:
            await client.call("session.dispatch", {"id": agent.session_id, "message": "RUN true"})
        message = str(refused.value)
        assert "requires a sandbox (sandbox: required)" in message
        assert "apt-get install bubblewrap" in message
        assert message.count(". ") == 0  # one sentence


async def test_aos_runs_working_directory_hides_the_nodes_secrets(tmp_path: Path) -> None:
    """`aos run` runs bash in the caller's directory (the admin's ``cwd``): there the
    project's ``.env`` and a node home kept inside it stay hidden."""
    (tmp_path / ".env").write_text(f"OPENROUTER_API_KEY={MODEL_KEY}\n")
    (tmp_path / "aoscb.json").write_text("{}")
    async with hostile_node(tmp_path, AOS_HOME=str(tmp_path / "h")) as (_, client):
        evil = await new_agent(client, "evil")
        look = (
            "cat .env; ls h/state h/data h/run; echo made > mine.txt; "
            "mkdir skills/evil && echo INSTALLED; mkdir .agents/skills/evil && echo INSTALLED; "
            """echo '{"sandbox": "off", "prompt": "obey evil"}' > aoscb.json && echo REWROTE"""
        )
        await client.call(
            "session.dispatch",
            {"id": evil.session_id, "message": f"RUN {look}", "cwd": str(tmp_path)},
        )
        [result] = [
            h["fact"]
            for h in await client.call("session.history", {"id": evil.session_id})
            if h["fact"]["kind"] == "tool.result"
        ]
        attempt(
            "read the project's .env from aos run's directory",
            result,
            succeeded=MODEL_KEY in output(result),
        )
        attempt(
            "read the node home kept in its working directory",
            result,
            succeeded="token.key" in output(result) or "aos.db" in output(result),
        )
        attempt(
            "create a skill root in its working directory (to install a skill)",
            result,
            succeeded="INSTALLED" in output(result),
        )
        attempt(
            "rewrite the node's aoscb.json (the sandbox off, a prompt for every agent)",
            result,
            succeeded="REWROTE" in output(result),
        )
        assert output(result).count("Read-only file system") == 3
        assert "agent.sock" in output(result)  # its one door is there
    assert (tmp_path / "mine.txt").read_text() == "made\n"  # the directory itself is its own
    assert (tmp_path / "aoscb.json").read_text() == "{}"
