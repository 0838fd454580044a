"""aos-mcp: the project's MCP servers as the agent's `mcp` command.

The servers are real: tests/fixtures/mcp/demo_server.py, built with the
official `mcp` package, run over stdio by the skill's service under a real
daemon; the agent's command runs in its real (sandboxed) bash."""

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

import pytest
from conftest import IN_CI, REPO, dispatched_tool_results, poll_until, running_daemon
from test_services import running

from aos.daemon import Daemon
from aos.hookspecs import hookimpl
from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.syscalls import SyscallError
from aos.testing import Reply, ScriptedLLM, first_system_prompt, free_port, wait_for_http
from aos_stdskills.aos_mcp.config import ConfigProblem, expand, load

DEMO = REPO / "tests" / "fixtures" / "mcp" / "demo_server.py"
SKILLS = "aos-context,aos-skill,aos-mcp"
pytestmark = pytest.mark.anyio


def demo_entry(**extra: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(DEMO)], **extra}


def write_config(project: Path, servers: dict[str, Any]) -> None:
    (project / ".mcp.json").write_text(json.dumps({"mcpServers": servers}))


@contextlib.asynccontextmanager
async def mcp_node(
    project: Path, servers: dict[str, Any], **environ: str
) -> AsyncIterator[tuple[Daemon, Kernel]]:
    write_config(project, servers)
    async with running_daemon(project, AOS_DEFAULT_SKILLS=SKILLS, **environ) as daemon:
        assert daemon.kernel is not None
        await poll_until(lambda: running(daemon, "aos-mcp"))
        yield daemon, daemon.kernel


async def method(kernel: Kernel, which: str, **params: Any) -> Any:
    return await kernel.syscall(
        ADMIN, "skill.call", {"skill": "aos-mcp", "method": which, "params": params}
    )


# -- configuration ---------------------------------------------------------------------


def test_variables_expand_with_defaults_and_an_unset_one_is_named() -> None:
    assert expand("${HOME_DIR}/x ${MODE:-fast}", {"HOME_DIR": "/h"}) == "/h/x fast"
    with pytest.raises(ConfigProblem, match=r"\$\{TOKEN\} is not set"):
        expand("Bearer ${TOKEN}", {})


def test_messages_show_the_entry_as_written_never_a_secret(tmp_path: Path) -> None:
    """What fails a call reaches the agent: a variable's value (a key, a token)
    must not ride along in the command line or URL it names."""
    write_config(
        tmp_path,
        {
            "cli": {"command": "/nonexistent/server", "args": ["--key=${KEY}"]},
            "web": {"url": "https://x.example/mcp?token=${KEY}"},
            "bad": {"url": "ftp://x/${KEY}"},
        },
    )
    found = load(tmp_path, {"KEY": "hunter2"})
    assert found.configs["cli"].args == ("--key=hunter2",)  # what runs is expanded
    assert found.configs["cli"].describe() == "/nonexistent/server --key=${KEY}"
    assert found.configs["web"].describe() == "https://x.example/mcp?token=${KEY}"
    assert "hunter2" not in " ".join(found.problems)


def test_each_bad_entry_is_one_line_and_the_others_load(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        {
            "good": demo_entry(env={"KEY": "${KEY}"}),
            "web": {"type": "http", "url": "https://x.example/mcp", "headers": {"A": "${A:-b}"}},
            "nocommand": {"args": ["x"]},
            "old": {"type": "sse", "url": "https://x.example/sse"},
            "badurl": {"url": "ftp://x"},
            "unset": demo_entry(env={"KEY": "${MISSING}"}),
        },
    )
    found = load(tmp_path, {"KEY": "k"})
    assert sorted(found.configs) == ["good", "web"]
    assert found.configs["good"].env == {"KEY": "k"}
    assert found.configs["web"].headers == {"A": "b"}
    assert [p.split(": ", 1)[1] for p in found.problems] == [
        "server 'nocommand': a stdio server needs a command",
        "server 'old': the SSE transport is deprecated by MCP: use its Streamable HTTP url",
        "server 'badurl': url must be http:// or https://, not 'ftp://x'",
        "server 'unset': ${MISSING} is not set (give it in the environment or .env)",
    ]
    (tmp_path / ".mcp.json").write_text("{not json")
    assert "cannot be read as JSON" in load(tmp_path, {}).problems[0]


# -- the service, against a real server ------------------------------------------------


async def test_list_info_call_error_and_structured_results(tmp_path: Path) -> None:
    servers = {
        "demo": demo_entry(disabled_tools=["crash"]),
        "broken": {"command": "/nonexistent/mcp-server", "args": ["--x"]},
    }
    async with mcp_node(tmp_path, servers) as (_, kernel):
        listed = await method(kernel, "list")
        demo, broken = sorted(listed["servers"], key=lambda s: s["name"] != "demo")
        assert demo["status"] == "ready"
        tools = {t["name"]: t["summary"] for t in demo["tools"]}
        assert tools["add"] == "Add two integers." and "crash" not in tools  # disabled
        assert broken["status"] == "failed"
        assert "/nonexistent/mcp-server --x" in broken["error"]  # the command is named

        info = await method(kernel, "info", server="demo", tool="add")
        assert info["input_schema"]["required"] == ["a", "b"]
        added = await method(kernel, "call", server="demo", tool="add", arguments={"a": 2, "b": 3})
        assert (added["text"], added["is_error"]) == ("5", False)
        weather = await method(
            kernel, "call", server="demo", tool="weather", arguments={"city": "Oslo"}
        )
        assert weather["structured"] == {"city": "Oslo", "temp_c": 21}
        failed = await method(kernel, "call", server="demo", tool="boom", arguments={})
        assert (failed["is_error"], failed["text"]) == (True, "Error executing tool boom")
        assert [f["tool"] for f in await method(kernel, "grep", word="STRUCTURED")] == ["weather"]

        with pytest.raises(SyscallError, match=r"is disabled in \.mcp\.json") as refused:
            await method(kernel, "call", server="demo", tool="crash", arguments={})
        assert refused.value.code == "denied"
        with pytest.raises(
            SyscallError, match=r"no MCP server named 'nope' \(servers: broken, demo\)"
        ):
            await method(kernel, "call", server="nope", tool="x")
        broken_call = {"server": "broken", "tool": "x"}
        with pytest.raises(SyscallError, match=r"did not start .*/nonexistent/mcp-server"):
            await method(kernel, "call", **broken_call)  # maybe the retry after the backoff
        with pytest.raises(SyscallError, match=r"did not start .*/nonexistent/mcp-server") as down:
            await method(kernel, "call", **broken_call)  # right after: within the backoff
        assert "the next try is in" in down.value.message  # not spawned again per call


async def test_timeouts_crashes_and_concurrent_calls(tmp_path: Path) -> None:
    async with mcp_node(tmp_path, {"demo": demo_entry()}) as (_, kernel):
        with pytest.raises(SyscallError, match=r"demo slow did not answer within 0\.5 s"):
            await method(
                kernel, "call", server="demo", tool="slow", arguments={"seconds": 5}, timeout=0.5
            )
        slept = await method(kernel, "call", server="demo", tool="slow", arguments={"seconds": 0})
        assert slept["text"] == "slept 0.0"  # the session survived the timeout
        with pytest.raises(SyscallError, match="went away during the call") as gone:
            await method(kernel, "call", server="demo", tool="crash", arguments={})
        assert gone.value.code == "unavailable"
        again = await method(kernel, "call", server="demo", tool="add", arguments={"a": 1, "b": 1})
        assert again["text"] == "2"  # started again by the next call
        results = await asyncio.gather(
            *(
                method(kernel, "call", server="demo", tool="add", arguments={"a": i, "b": 1})
                for i in range(20)
            )
        )
        assert [r["text"] for r in results] == [str(i + 1) for i in range(20)]
        leaked = await method(
            kernel, "call", server="demo", tool="environment", arguments={"name": "AOS_TOKEN"}
        )
        assert leaked["text"] == ""  # the server never holds the service's kernel token


async def test_an_agent_discovers_and_calls_a_tool_and_the_call_is_recorded(
    tmp_path: Path, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.add(
        Reply.tool_call("mcp list"),
        Reply.tool_call("mcp info demo add"),
        Reply.tool_call("""mcp call demo add '{"a": 20, "b": 22}'"""),
        Reply.tool_call("mcp call demo boom '{}'"),
        Reply.text("42"),
    )
    async with mcp_node(
        tmp_path, {"demo": demo_entry()}, OPENROUTER_BASE_URL=scripted_llm.base_url, AOS_MODEL="m"
    ) as (_, kernel):
        listed, info, called, failed = await dispatched_tool_results(kernel, "what is 20 + 22?")
        assert "demo (stdio, ready)" in listed["output"]
        assert "  add - Add two integers." in listed["output"]
        assert "  a (integer, required)" in info["output"]
        assert (called["output"], called.get("status", "ok")) == ("42\n", "ok")
        assert failed["status"] == "error"
        assert "mcp: the tool failed: Error executing tool boom" in failed["output"]
        sessions = await kernel.syscall(ADMIN, "session.list")
        history = await kernel.syscall(ADMIN, "session.history", {"id": sessions[0]["id"]})
        calls = [h["fact"] for h in history if h["fact"]["kind"] == "mcp.call"]
        assert [(c["server"], c["tool"], c["status"]) for c in calls] == [
            ("demo", "add", "ok"),
            ("demo", "boom", "error"),
        ]
        assert calls[0]["arguments_bytes"] == len('{"a": 20, "b": 22}')
        # the context stays small: no tool schema reaches the system prompt
        context = await kernel.syscall(ADMIN, "session.context", {"id": sessions[0]["id"]})
        system = context[0]["content"]
        assert "input_schema" not in system and '"properties"' not in system


# -- servers no one here wrote, and Streamable HTTP --------------------------------------

EVERYTHING = REPO / "tests" / "fixtures" / "mcp" / "node_modules" / ".bin" / "mcp-server-everything"


def everything() -> str:
    """The reference server from npm (tests/fixtures/mcp: npm ci), or skip (fail in CI)."""
    if not EVERYTHING.exists():
        if IN_CI:
            pytest.fail("CI must run the reference MCP server: cd tests/fixtures/mcp && npm ci")
        pytest.skip("needs the reference MCP server: cd tests/fixtures/mcp && npm ci")
    return str(EVERYTHING)


@contextlib.asynccontextmanager
async def http_server(*command: str, **env: str) -> AsyncIterator[None]:
    process = await asyncio.create_subprocess_exec(
        *command, env={**os.environ, **env}, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        yield
    finally:
        process.kill()
        await process.wait()


async def test_the_reference_server_over_stdio_and_streamable_http(tmp_path: Path) -> None:
    server = everything()
    port = free_port()
    servers = {
        "everything": {"command": server, "args": ["stdio"]},
        "remote": {"type": "http", "url": f"http://127.0.0.1:{port}/mcp"},
    }
    async with (
        http_server(server, "streamableHttp", PORT=str(port)),
        mcp_node(tmp_path, servers) as (_, kernel),
    ):
        await wait_for_http(f"http://127.0.0.1:{port}/mcp")
        listed = {s["name"]: s for s in (await method(kernel, "list"))["servers"]}
        for name in ("everything", "remote"):
            assert listed[name]["status"] == "ready", listed[name]
            tools = {t["name"] for t in listed[name]["tools"]}
            assert {"echo", "get-sum", "get-structured-content"} <= tools
            summed = await method(
                kernel, "call", server=name, tool="get-sum", arguments={"a": 20, "b": 22}
            )
            assert summed["text"] == "The sum of 20 and 22 is 42."
        weather = await method(
            kernel, "call", server="remote", tool="get-structured-content",
            arguments={"location": "New York"},
        )  # fmt: skip
        assert set(weather["structured"]) == {"temperature", "conditions", "humidity"}
        image = await method(kernel, "call", server="everything", tool="get-tiny-image")
        assert "[image image/png]" in image["other"]
        found = {r["uri"]: r for r in await method(kernel, "resources", server="everything")}
        uri = "demo://resource/static/document/architecture.md"
        assert found[uri]["mime_type"] == "text/markdown"
        [content] = await method(kernel, "read", server="everything", uri=uri)
        assert content["text"].startswith("# Everything Server")
        prompts = {p["name"]: p for p in await method(kernel, "prompts", server="remote")}
        assert prompts["args-prompt"]["arguments"] == [
            {"name": "city", "required": True},
            {"name": "state", "required": False},
        ]
        messages = await method(
            kernel, "prompt", server="remote", name="args-prompt", json='{"city": "Oslo"}'
        )
        assert messages[0]["role"] == "user" and "Oslo" in messages[0]["text"]
        with pytest.raises(SyscallError, match="demo://nothing/here not found") as missing:
            await method(kernel, "read", server="everything", uri="demo://nothing/here")
        assert missing.value.code == "invalid"


async def test_the_context_grows_by_the_skill_line_only(tmp_path: Path) -> None:
    """With the reference server's tools configured, the system prompt grows by
    aos-mcp's own listing, never by tool schemas (the issue's bound: 1,500 characters)."""
    write_config(tmp_path, {"everything": {"command": everything(), "args": ["stdio"]}})
    sizes = {
        skills: len(await first_system_prompt(tmp_path, AOS_DEFAULT_SKILLS=skills))
        for skills in ("aos-context,aos-skill", SKILLS)
    }
    growth = sizes[SKILLS] - sizes["aos-context,aos-skill"]
    assert 0 < growth < 1500, growth


# -- policy ----------------------------------------------------------------------------------


class DenyCrash:
    """A policy skill's syscall.before gate: no agent may call demo's crash tool,
    whatever bash ran the call."""

    @hookimpl
    def syscall_before(self, input: Any, output: Any) -> Any:
        params = output["params"]
        if input["syscall"] == "skill.call" and params.get("skill") == "aos-mcp":
            asked = params.get("params") or {}
            if (asked.get("server"), asked.get("tool")) == ("demo", "crash"):
                return {"verdict": "reject", "reason": "demo crash is not for agents"}
        return output


async def test_a_policy_skill_denies_one_mcp_tool(
    tmp_path: Path, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.add(
        Reply.tool_call("echo '{}' | mcp call demo crash"),
        Reply.tool_call('mcp call demo add \'{"a": 1, "b": 1}\''),
        Reply.text("done"),
    )
    async with mcp_node(
        tmp_path, {"demo": demo_entry()}, OPENROUTER_BASE_URL=scripted_llm.base_url, AOS_MODEL="m"
    ) as (_, kernel):
        kernel.pm.register(DenyCrash(), name="deny-crash")
        kernel.hooks.system = kernel.hooks.system | {"deny-crash"}  # installed on the node
        denied, allowed = await dispatched_tool_results(kernel, "try both")
        assert denied["status"] == "error"
        assert (
            denied["output"]
            == "mcp: denied: skill.call rejected by deny-crash: demo crash is not for agents\n"
        )
        assert allowed["output"] == "2\n"
        assert (await method(kernel, "list"))["servers"][0]["status"] == "ready"  # never crashed


def test_the_command_reads_its_arguments() -> None:
    from aos_stdskills.aos_mcp.__main__ import parse

    assert parse(["read", "s", "demo://x"]) == ("read", {"server": "s", "uri": "demo://x"})
    assert parse(["prompt", "s", "p", '{"a": 1}']) == (
        "prompt",
        {"server": "s", "name": "p", "json": '{"a": 1}'},
    )
    assert parse(["call", "s", "t", "{}", "--timeout", "2"]) == (
        "call",
        {"server": "s", "tool": "t", "json": "{}", "timeout": 2.0},
    )
    for wrong, why in (
        ([], "an action is required"),
        (["info", "s"], "info takes SERVER TOOL"),
        (["call", "s"], "call takes SERVER TOOL"),
        (["call", "s", "t", "--timeout", "soon"], "--timeout needs seconds"),
        (["fetch"], "unknown action 'fetch'"),
    ):
        with pytest.raises(ValueError, match=why):
            parse(wrong)


def test_aoscb_servers_join_and_mcp_json_wins(tmp_path: Path) -> None:
    aoscb = tmp_path / "aoscb.json"
    aoscb.write_text(
        json.dumps(
            {
                "mcp_servers": {
                    "shared": demo_entry(args=["from-aoscb"]),
                    "only-aoscb": demo_entry(),
                }
            }
        )
    )
    write_config(tmp_path, {"shared": demo_entry(args=["from-mcp-json"])})
    found = load(tmp_path, {}, aoscb)
    assert sorted(found.configs) == ["only-aoscb", "shared"]
    assert found.configs["shared"].args == ("from-mcp-json",)
    assert found.problems == []


async def test_doctor_skill_show_and_the_operators_commands(tmp_path: Path) -> None:
    servers = {"demo": demo_entry(), "unset": demo_entry(env={"KEY": "${NOT_SET_ANYWHERE}"})}
    async with mcp_node(tmp_path, servers) as (daemon, kernel):
        home = str(daemon.config.paths.config_dir)  # AOS_HOME: everything under it
        env = {**os.environ, "AOS_HOME": home, "AOS_DEFAULT_SKILLS": SKILLS}
        aos = str(Path(sys.executable).with_name("aos"))

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [aos, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
            )

        report = json.loads((await asyncio.to_thread(run, "doctor", "--json")).stdout)
        [problem] = report["daemon"]["services"]["aos-mcp"]["problems"]
        assert problem.endswith(
            "server 'unset': ${NOT_SET_ANYWHERE} is not set (give it in the environment or .env)"
        )
        shown = await asyncio.to_thread(run, "skill", "show", "aos-mcp")
        assert f"problem: {problem}" in shown.stdout
        assert (await method(kernel, "list"))["servers"][0]["status"] == "ready"  # the others work
        # the operator's commands
        tools = json.loads((await asyncio.to_thread(run, "mcp", "tools", "demo", "--json")).stdout)
        assert {"server": "demo", "tool": "add", "summary": "Add two integers."} in tools
        added = await asyncio.to_thread(run, "mcp", "call", "demo", "add", '{"a": 1, "b": 2}')
        assert (added.returncode, added.stdout) == (0, "3\n")
        failed = await asyncio.to_thread(run, "mcp", "call", "demo", "boom")
        assert failed.returncode == 1
        assert "the tool failed: Error executing tool boom" in failed.stderr
