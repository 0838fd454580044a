"""aos-mcp's service face: the MCP servers of the project, behind methods.

Agents reach it through their ``mcp`` command, which calls these methods with
``skill.call`` (the kernel tells the service who calls): ``list``, ``info``,
``grep`` and ``call``. Every ``call`` made for an agent's session is recorded
there as an ``mcp.call`` fact (server, tool, size of the arguments, status,
duration) before the answer goes back. The servers run as this service does,
outside the agents' sandboxes, without the kernel's token (docs/skills/aos-mcp.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from aos_sdk import MethodError, SyscallFailed, define_service, syscall
from mcp import MCPError
from mcp_types import CONNECTION_CLOSED

from aos_stdskills.aos_mcp.config import Servers, load
from aos_stdskills.aos_mcp.servers import Server, ServerDown, ToolInfo, all_pages, describe

SKILL = "aos-mcp"
T = TypeVar("T")
logger = logging.getLogger(SKILL)
CALL_TIMEOUT = float(os.environ.get("AOS_MCP_CALL_TIMEOUT", "25"))
"""Seconds a tool call may take unless the caller asks for less (under the kernel's
30 s for a skill method)."""
IDLE = float(os.environ.get("AOS_MCP_IDLE", "600"))
"""Seconds a server stays open without a call."""


class State:
    def __init__(self) -> None:
        self.servers: dict[str, Server] = {}
        self.problems: list[str] = []
        self.ready = asyncio.Event()

    def configure(self, found: Servers) -> None:
        self.servers = {name: Server(config, IDLE) for name, config in found.configs.items()}
        self.problems = found.problems
        for problem in found.problems:
            logger.warning("%s", problem)

    def server(self, name: str) -> Server:
        found = self.servers.get(name)
        if found is None:
            known = ", ".join(sorted(self.servers)) or "none configured (.mcp.json)"
            raise MethodError("not_found", f"no MCP server named {name!r} (servers: {known})")
        return found


STATE = State()


async def start() -> None:
    """Read the servers: the project's ``.mcp.json`` and the node's ``aoscb.json``
    (both as the daemon found them)."""
    try:
        status = await syscall("kernel.status")
    except SyscallFailed as exc:
        STATE.problems = [f"cannot learn the project directory: {exc}"]
        STATE.ready.set()
        return
    aoscb = Path(status["config_file"]) if status.get("config_file") else None
    STATE.configure(load(Path(status["project"]), os.environ, aoscb))
    STATE.ready.set()


async def _started(server: Server) -> None:
    try:
        await server.client()
    except ServerDown as exc:
        raise MethodError("unavailable", str(exc)) from None


async def list_servers(caller: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Every server with its status and its tools (one line each); starts them."""
    await STATE.ready.wait()
    servers = list(STATE.servers.values())
    await asyncio.gather(*(server.client() for server in servers), return_exceptions=True)
    return {
        "servers": [
            {
                "name": s.name,
                "transport": s.config.transport,
                "status": s.status,
                "error": s.error,
                "tools": [{"name": t.name, "summary": t.summary} for t in s.offered()],
            }
            for s in servers
        ],
        "problems": STATE.problems,
    }


async def info(caller: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """One tool: its whole description and input schema."""
    await STATE.ready.wait()
    server = STATE.server(str(params.get("server", "")))
    await _started(server)
    tool = _tool(server, str(params.get("tool", "")))
    return {
        "server": server.name,
        "name": tool.name,
        "description": tool.description,
        "input_schema": tool.input_schema,
    }


async def grep(caller: dict[str, Any], params: dict[str, Any]) -> list[dict[str, str]]:
    """Tools whose name or description holds ``word`` (case-insensitive)."""
    word = str(params.get("word", "")).lower()
    if not word:
        raise MethodError("invalid", "grep needs a word")
    listed = await list_servers(caller, {})
    found = []
    for server in listed["servers"]:
        for tool in STATE.servers[server["name"]].offered():
            if word in tool.name.lower() or word in tool.description.lower():
                found.append({"server": server["name"], "tool": tool.name, "summary": tool.summary})
    return found


async def call(caller: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Call a tool; its text and structured content, or MethodError (refused,
    unknown, the server down or too slow). Recorded in the caller's session."""
    await STATE.ready.wait()
    server = STATE.server(str(params.get("server", "")))
    arguments = _arguments(params)
    timeout = min(float(params.get("timeout") or CALL_TIMEOUT), CALL_TIMEOUT)
    await _started(server)
    tool = _tool(server, str(params.get("tool", "")))
    started = time.monotonic()
    status, answer, failure = "ok", None, None
    try:
        client = await server.client()
        result = await asyncio.wait_for(client.call_tool(tool.name, arguments), timeout)
        answer = _answer(result)
        status = "error" if answer["is_error"] else "ok"
    except TimeoutError:
        status = "timeout"
        failure = MethodError(
            "unavailable", f"{server.name} {tool.name} did not answer within {timeout:g} s"
        )
    except MCPError as exc:
        if exc.code == CONNECTION_CLOSED:
            status, failure = "failed", _gone(server, "its connection closed")
        else:
            status = "error"
            failure = MethodError("invalid", f"{server.name} {tool.name}: {exc.message}")
    except Exception as exc:  # the session broke under the call
        status, failure = "failed", _gone(server, describe(exc))
    await _record(caller, server.name, tool.name, arguments, status, time.monotonic() - started)
    if failure is not None:
        raise failure
    assert answer is not None
    return answer


async def doctor(caller: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """What is wrong with the configuration: one line per bad entry, and per
    server that failed to start (``aos doctor``, ``aos skill show aos-mcp``)."""
    await STATE.ready.wait()
    failed = [f"server {s.name}: {s.error}" for s in STATE.servers.values() if s.status == "failed"]
    return [*STATE.problems, *failed]


async def resources(caller: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    """The resources a server offers (``mcp read`` reads one)."""
    client = await _session(str(params.get("server", "")))
    listed = await _asked(
        all_pages(lambda cursor: client.list_resources(cursor=cursor), "resources")
    )
    return [{"uri": str(r.uri), "name": r.name, "mime_type": r.mime_type or ""} for r in listed]


async def read(caller: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    """One resource's contents: text as text, binary as its size."""
    client = await _session(str(params.get("server", "")))
    result = await _asked(client.read_resource(str(params.get("uri", ""))))
    return [
        {
            "uri": str(c.uri),
            "mime_type": c.mime_type or "",
            "text": c.text if hasattr(c, "text") else f"[binary, {len(c.blob) * 3 // 4} bytes]",
        }
        for c in result.contents
    ]


async def prompts(caller: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    """The prompts a server offers, with their arguments."""
    client = await _session(str(params.get("server", "")))
    listed = await _asked(all_pages(lambda cursor: client.list_prompts(cursor=cursor), "prompts"))
    return [
        {
            "name": p.name,
            "description": p.description or "",
            "arguments": [
                {"name": a.name, "required": bool(a.required)} for a in p.arguments or ()
            ],
        }
        for p in listed
    ]


async def prompt(caller: dict[str, Any], params: dict[str, Any]) -> list[dict[str, str]]:
    """A prompt's messages, its arguments filled in."""
    client = await _session(str(params.get("server", "")))
    arguments = {k: str(v) for k, v in _arguments(params).items()}
    result = await _asked(client.get_prompt(str(params.get("name", "")), arguments))
    return [
        {"role": m.role, "text": getattr(m.content, "text", None) or _placeholder(m.content)}
        for m in result.messages
    ]


async def _session(name: str) -> Any:
    await STATE.ready.wait()
    server = STATE.server(name)
    await _started(server)
    return await server.client()


async def _asked(request: Awaitable[T]) -> T:
    """A listing or read: the server's refusal or absence is the caller's error."""
    try:
        return await asyncio.wait_for(request, CALL_TIMEOUT)
    except TimeoutError:
        raise MethodError("unavailable", f"no answer within {CALL_TIMEOUT:g} s") from None
    except MCPError as exc:
        raise MethodError("invalid", exc.message) from None


def _arguments(params: dict[str, Any]) -> dict[str, Any]:
    """The tool's arguments: ``arguments`` (an object), or ``json`` (its text, as
    the agent's command sends it: parsing is done here, not in every command)."""
    arguments: Any = params.get("arguments")
    text = params.get("json")
    if arguments is None and isinstance(text, str) and text.strip():
        try:
            arguments = json.loads(text)
        except ValueError as exc:
            raise MethodError("invalid", f"the arguments are not JSON: {exc}") from None
    arguments = {} if arguments is None else arguments
    if not isinstance(arguments, dict):
        raise MethodError("invalid", 'the arguments must be one JSON object: {"name": "value"}')
    return arguments


def _gone(server: Server, why: str) -> MethodError:
    server.broken(why)
    return MethodError(
        "unavailable",
        f"MCP server {server.name} went away during the call ({why}); "
        "the next call starts it again",
    )


def _tool(server: Server, name: str) -> ToolInfo:
    for tool in server.tools:
        if tool.name == name:
            if not server.config.offers(name):
                raise MethodError("denied", f"{server.name} {name} is disabled in .mcp.json")
            return tool
    names = ", ".join(t.name for t in server.offered())
    raise MethodError("not_found", f"{server.name} has no tool {name!r} (tools: {names})")


def _answer(result: Any) -> dict[str, Any]:
    texts, other = [], []
    for block in result.content:
        if getattr(block, "type", None) == "text":
            texts.append(block.text)
        else:
            other.append(_placeholder(block))
    return {
        "text": "\n".join(texts),
        "structured": result.structured_content,
        "other": other,
        "is_error": bool(result.is_error),
    }


def _placeholder(block: Any) -> str:
    kind = getattr(block, "type", "content")
    mime = getattr(block, "mime_type", None) or ""
    uri = getattr(getattr(block, "resource", None), "uri", None) or getattr(block, "uri", "")
    return f"[{kind}{' ' + mime if mime else ''}{' ' + str(uri) if uri else ''}]"


async def _record(
    caller: dict[str, Any],
    server: str,
    tool: str,
    arguments: dict[str, Any],
    status: str,
    seconds: float,
) -> None:
    """The ``mcp.call`` fact in the caller's session (when it has one)."""
    session = caller.get("session_id")
    if not session:
        return
    fact = {
        "kind": "mcp.call",
        "server": server,
        "tool": tool,
        "arguments_bytes": len(json.dumps(arguments)),
        "status": status,
        "duration_ms": round(seconds * 1000, 1),
    }
    try:
        await syscall("session.append", {"id": session, "fact": fact})
    except SyscallFailed as exc:
        logger.warning("mcp.call not recorded in %s: %s", session, exc)


@define_service
def service() -> dict[str, Any]:
    return {
        "methods": {
            "list": list_servers,
            "info": info,
            "grep": grep,
            "call": call,
            "resources": resources,
            "read": read,
            "prompts": prompts,
            "prompt": prompt,
            "doctor": doctor,
        },
        "start": start,
    }
