"""The TypeScript SDK (sdk/typescript, npm aos-skill-sdk): its generated tables
are the kernel's, the spec's byte dumps are fixtures both SDKs read, its own
tests pass (node --test), and a guard written with it guards a real daemon."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import msgspec
import pytest
from aos_sdk.protocol import HEADER, decode, encode
from conftest import IN_CI, REPO, dispatched_tool_results, poll_until, running_daemon
from test_services import running, service
from test_websocket import guarded_node, mint, remote_env

from aos.hooks import HookRejected
from aos.principals import ADMIN
from aos.testing import Reply, ScriptedLLM

TS = REPO / "sdk" / "typescript"
FIXTURES = REPO / "sdk" / "fixtures"


def _script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_tables_are_the_kernels() -> None:
    """src/generated.ts holds the kernel's hooks, syscalls and vocabularies: CI
    fails when a hook or syscall changed and the file was not generated again."""
    script = _script(TS / "scripts" / "generate_tables.py")
    assert script.TARGET.read_text() == script.render(), (
        "sdk/typescript/src/generated.ts is stale: python sdk/typescript/scripts/generate_tables.py"
    )


def test_the_wire_fixtures_are_the_specs_byte_dumps() -> None:
    script = _script(FIXTURES / "extract.py")
    assert script.TARGET.read_text() == script.render(), (
        "sdk/fixtures/wire-examples.json differs from the spec: python sdk/fixtures/extract.py"
    )


@pytest.mark.parametrize(
    "example",
    json.loads((FIXTURES / "wire-examples.json").read_text()),
    ids=lambda e: e["name"],
)
def test_the_python_sdk_reads_and_writes_the_fixtures(example: dict[str, object]) -> None:
    frame = bytes.fromhex(str(example["hex"]).replace(" ", ""))
    (length,) = HEADER.unpack(frame[: HEADER.size])
    assert length == len(frame) - HEADER.size
    message = decode(frame[HEADER.size :])
    assert msgspec.to_builtins(message) == example["message"]
    assert encode(message) == frame


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        if IN_CI:
            pytest.fail("CI must test the TypeScript SDK: install Node >= 20")
        pytest.skip("needs node (>= 20) and npm")
    return node


@pytest.fixture(scope="module")
def built_sdk() -> Path:
    """sdk/typescript installed (npm ci, once) and built (tsc: ESM, CommonJS, .d.ts)."""
    _node()
    npm = shutil.which("npm") or "npm"
    if not (TS / "node_modules" / "typescript").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=TS, check=True, timeout=300)
    subprocess.run([npm, "run", "--silent", "build"], cwd=TS, check=True, timeout=300)
    return TS


def test_the_typescript_sdk_passes_its_own_tests(built_sdk: Path) -> None:
    """node --test: framing (split, joined, empty, oversized), the byte dumps, the
    service pieces."""
    done = subprocess.run(
        [_node(), "--test", "test/"], cwd=built_sdk, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout


def test_the_sdk_loads_as_commonjs_too(built_sdk: Path) -> None:
    script = (
        "const sdk = require('aos-skill-sdk');"
        "console.log(typeof sdk.defineService, sdk.HOOKS['tool.before'])"
    )
    done = subprocess.run(
        [_node(), "-e", script], cwd=built_sdk, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "function gate", done.stderr


def install_ts_guard(project: Path, sdk: Path) -> Path:
    """The example guard in ``project``'s skill root, the SDK linked into its
    node_modules as `npm install` would put it."""
    skill = project / "skills" / "ts-guard"
    shutil.copytree(sdk / "examples" / "ts-guard", skill)
    (skill / "node_modules").mkdir()
    (skill / "node_modules" / "aos-skill-sdk").symlink_to(sdk, target_is_directory=True)
    return skill


@pytest.mark.anyio
async def test_a_typescript_guard_guards_a_real_daemon(
    built_sdk: Path, tmp_path: Path, scripted_llm: ScriptedLLM
) -> None:
    install_ts_guard(tmp_path, built_sdk)
    scripted_llm.add(
        Reply.tool_call("echo 'DROP TABLE x'"), Reply.tool_call("echo ok"), Reply.text("done")
    )
    async with running_daemon(
        tmp_path, OPENROUTER_BASE_URL=scripted_llm.base_url, AOS_MODEL="m"
    ) as daemon:
        kernel = daemon.kernel
        assert kernel is not None
        await poll_until(lambda: running(daemon, "ts-guard"))
        refused, ran = await dispatched_tool_results(kernel, "clean up")
        assert (refused["status"], refused["rejected_by"]) == ("rejected", "ts-guard")
        assert refused["output"] == "rejected by ts-guard: blocked: DROP TABLE"
        assert (ran.get("status", "ok"), ran["output"]) == ("ok", "ok\n")  # ok: the default
        hooks = {h["hook"]: h for h in await kernel.syscall(ADMIN, "hook.list")}
        [impl] = hooks["tool.before"]["implementations"]
        assert (impl["owner"], impl["where"], impl["calls"]) == ("ts-guard", "service", 2)


@pytest.mark.anyio
async def test_a_typescript_guard_guards_over_websocket(
    built_sdk: Path, tmp_path: Path, scripted_llm: ScriptedLLM
) -> None:
    """The same guard as a remote service: no skill on the node, only its URL and
    the token of its grant in its environment (the ws package underneath)."""
    guard = install_ts_guard(tmp_path / "elsewhere", built_sdk)
    async with guarded_node(tmp_path, scripted_llm) as (daemon, kernel):
        minted = await mint(daemon, "ts-guard")
        node = await asyncio.create_subprocess_exec(
            _node(), "service.mjs", cwd=guard, env=remote_env(minted)
        )
        try:
            await poll_until(lambda: running(daemon, "ts-guard"))
            assert service(daemon, "ts-guard")["remote"].startswith("127.0.0.1:")
            refused, ran = await dispatched_tool_results(kernel, "clean up")
            assert (refused["status"], refused["rejected_by"]) == ("rejected", "ts-guard")
            assert ran["output"] == "ok\n"
            await kernel.syscall(ADMIN, "service.revoke", {"name": "ts-guard"})
            assert await asyncio.wait_for(node.wait(), 15) == 0  # bye: a clean exit
        finally:
            if node.returncode is None:
                node.kill()
            await node.wait()
        # a bad token: refused with the kernel's reason, exit 1
        bad = await asyncio.to_thread(
            subprocess.run,
            [_node(), "service.mjs"], cwd=guard, capture_output=True, text=True, timeout=60,
            env=remote_env({**minted, "token": minted["token"][:-4] + "AAAA"}),
        )  # fmt: skip
        assert bad.returncode == 1
        assert (
            "refused the hello: the kernel reported denied: token signature does not" in bad.stderr
        )


def test_a_node_service_outside_the_kernel_says_how_it_is_started(built_sdk: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}
    done = subprocess.run(
        [_node(), str(built_sdk / "examples" / "ts-guard" / "service.mjs")],
        cwd=built_sdk, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "AOS_SKILL and AOS_SERVICE_SOCKET are not set" in done.stderr
    assert "AOS_URL=ws://" in done.stderr  # how to run it as a remote service


@pytest.fixture
def scaffolded(built_sdk: Path, tmp_path: Path) -> Path:
    """`aos skill new gatekeeper --service --lang ts` in tmp_path's skills/, valid,
    its SDK installed (linked as `npm install` would)."""
    aos = str(Path(sys.executable).with_name("aos"))
    root = tmp_path / "skills"
    made = subprocess.run(
        [aos, "skill", "new", "gatekeeper", "--service", "--lang", "ts", "--dir", str(root), "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["lang"] == "ts"
    skill = root / "gatekeeper"
    assert json.loads((skill / "package.json").read_text())["dependencies"] == {
        "aos-skill-sdk": "^0.1.0"
    }
    valid = subprocess.run([aos, "skill", "validate", str(skill)], capture_output=True, text=True)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    (skill / "node_modules").mkdir()
    (skill / "node_modules" / "aos-skill-sdk").symlink_to(built_sdk, target_is_directory=True)
    return skill


@pytest.mark.anyio
async def test_a_scaffolded_typescript_service_runs(scaffolded: Path) -> None:
    """The scaffold's service.mjs says hello and gates: it refuses `rm -rf /`."""
    async with running_daemon(scaffolded.parent.parent) as daemon:
        kernel = daemon.kernel
        assert kernel is not None
        await poll_until(lambda: running(daemon, "gatekeeper"))
        bash = {"tool": "bash", "args": {"command": "ls"}, "cwd": "/tmp", "env": {}}
        assert await kernel.hooks.gate("tool.before", {}, bash) == bash
        with pytest.raises(HookRejected, match="blocked: rm -rf /"):
            await kernel.hooks.gate("tool.before", {}, {**bash, "args": {"command": "rm -rf /"}})


SUBSCRIBER = """
import { Client } from "aos-skill-sdk";

const client = await Client.connect({ socket: process.argv[2], token: "" });
console.log(JSON.stringify({ principal: client.principal }));
const agents = await client.call("agent.list", {});
console.log(JSON.stringify({ agents: agents.length }));
for await (const event of client.subscribe(["history.append"], process.argv[3])) {
  console.log(JSON.stringify(event));
  if (event.data.fact.text === "two") break;
}
try {
  await client.call("no.such", {});
} catch (error) {
  console.log(JSON.stringify({ code: error.code }));
}
client.close();
"""


@pytest.mark.anyio
async def test_the_typescript_client_calls_and_subscribes(built_sdk: Path, tmp_path: Path) -> None:
    """Client on aos.sock (the node's user: admin): a syscall, a refused one with
    its code, and history.append events as facts are appended."""
    script = tmp_path / "tool" / "subscriber.mjs"
    (tmp_path / "tool" / "node_modules").mkdir(parents=True)
    (tmp_path / "tool" / "node_modules" / "aos-skill-sdk").symlink_to(built_sdk)
    script.write_text(SUBSCRIBER)
    async with running_daemon(tmp_path) as daemon:
        kernel = daemon.kernel
        assert kernel is not None
        agent = await kernel.syscall(ADMIN, "agent.create", {"name": "a"})
        session = await kernel.syscall(ADMIN, "session.create", {"agent_id": agent["agent"]["id"]})
        node = await asyncio.create_subprocess_exec(
            _node(), str(script), str(daemon.paths.control_socket), session["id"],
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert node.stdout is not None
        lines = [json.loads(await node.stdout.readline()) for _ in range(2)]
        agents = await kernel.syscall(ADMIN, "agent.list")
        assert lines == [{"principal": "admin"}, {"agents": len(agents)}]
        await asyncio.sleep(0.3)  # its subscription is made
        for text in ("one", "two"):
            fact = {"kind": "message.user", "text": text}
            await kernel.syscall(ADMIN, "session.append", {"id": session["id"], "fact": fact})
        out, err = await asyncio.wait_for(node.communicate(), 30)
        events = [json.loads(line) for line in out.decode().splitlines()]
        assert [(e["topic"], e["data"]["fact"]["text"]) for e in events[:2]] == [
            ("history.append", "one"),
            ("history.append", "two"),
        ]
        assert events[2] == {"code": "unknown"}, err.decode()
        assert node.returncode == 0, err.decode()
