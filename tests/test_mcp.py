"""aos-mcp: the project's MCP servers as the agent's `mcp` command.

The servers are real: tests/fixtures/mcp/demo_server.py, built with the
official `mcp` package, run over stdio by the skill's service under a real
daemon; the agent's command runs in its real (sandboxed) bash."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, dispatched_tool_results, poll_until, running_daemon
from test_services import running

from aos.daemon import Daemon
from aos.kernel import Kernel
from aos.principals import ADMIN
from aos.syscalls import SyscallError
from aos.testing import Reply, ScriptedLLM
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


async def method(kernel: Kernel, name: str, **params: Any) -> Any:
    return await kernel.syscall(
        ADMIN, "skill.call", {"skill": "aos-mcp", "method": name, "params": params}
    )


# -- configuration ---------------------------------------------------------------------


def test_variables_expand_with_defaults_and_an_unset_one_is_named() -> None:
    assert expand("${HOME_DIR}/x ${MODE:-fast}", {"HOME_DIR": "/h"}) == "/h/x fast"
    with pytest.raises(ConfigProblem, match=r"\$\{TOKEN\} is not set"):
        expand("Bearer ${TOKEN}", {})


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
        with pytest.raises(SyscallError, match=r"did not start .*/nonexistent/mcp-server"):
            await method(kernel, "call", server="broken", tool="x")


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
