"""``mcp list | grep | info | call`` for agents (see SKILL.md).

Agents run this as a process per command (``scripts/mcp`` runs this file), so
its start-up is on the path of every call: arguments are read by hand, the
syscall goes through :func:`aos_sdk.call` (a blocking socket, no asyncio), and
the process leaves without the interpreter's teardown.
"""

from __future__ import annotations

import sys

from aos_sdk.blocking import exit_now, run_skill_command

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs milliseconds per command
    from typing import Any

SKILL = "aos-mcp"
USAGE = """usage: mcp list
       mcp grep WORD
       mcp info SERVER TOOL
       mcp call SERVER TOOL [JSON] [--timeout SECONDS]
       mcp resources SERVER | mcp read SERVER URI
       mcp prompts SERVER | mcp prompt SERVER NAME [JSON]

The project's MCP servers as commands.
  list       servers, their status, one line per tool
  grep       tools whose name or description mentions WORD
  info       a tool's description and arguments (JSON schema)
  call       run a tool with a JSON object of arguments (or JSON on stdin)
  resources  a server's resources; read prints one
  prompts    a server's prompts; prompt prints one, its arguments given as JSON"""
PARAMS = {
    "list": ["list"],
    "grep": ["grep", "word"],
    "info": ["info", "server", "tool"],
    "resources": ["resources", "server"],
    "read": ["read", "server", "uri"],
    "prompts": ["prompts", "server"],
}
"""Actions whose arguments are only positional: the action and its params' names."""


class UsageError(ValueError):
    pass


def parse(argv: list[str], stdin: Any = None) -> tuple[str, dict[str, Any]]:
    """The method and its params (JSON arguments may come on ``stdin``)."""
    stdin = stdin if stdin is not None else sys.stdin
    if not argv:
        raise UsageError("an action is required: list, grep, info, call, read or prompt")
    action, rest = argv[0], argv[1:]
    if action in PARAMS:
        names = PARAMS[action][1:]
        if len(rest) != len(names):
            wanted = " ".join(n.upper() for n in names) or "no arguments"
            raise UsageError(f"{action} takes {wanted}")
        return action, dict(zip(names, rest, strict=True))
    if action == "prompt":
        if len(rest) not in (2, 3):
            raise UsageError("prompt takes SERVER NAME and one JSON object of arguments")
        text = rest[2] if len(rest) == 3 else ""
        return "prompt", {"server": rest[0], "name": rest[1], "json": text}
    if action != "call":
        raise UsageError(f"unknown action {action!r} (see mcp --help)")
    params: dict[str, Any] = {}
    positional: list[str] = []
    args = iter(rest)
    for arg in args:
        if arg == "--timeout" or arg.startswith("--timeout="):
            value = arg.split("=", 1)[1] if "=" in arg else next(args, "")
            try:
                params["timeout"] = float(value)
            except ValueError:
                raise UsageError(f"--timeout needs seconds, not {value!r}") from None
        else:
            positional.append(arg)
    if len(positional) not in (2, 3):
        raise UsageError("call takes SERVER TOOL and one JSON object of arguments")
    text = positional[2] if len(positional) == 3 else ("" if stdin.isatty() else stdin.read())
    # the service parses the JSON: importing json here would cost every call milliseconds
    return "call", {"server": positional[0], "tool": positional[1], "json": text, **params}


def show(action: str, result: Any) -> int:
    if action == "list":
        for server in result["servers"]:
            state = server["status"] + (f": {server['error']}" if server["error"] else "")
            print(f"{server['name']} ({server['transport']}, {state})")
            for tool in server["tools"]:
                print(
                    f"  {tool['name']} - {tool['summary']}"
                    if tool["summary"]
                    else f"  {tool['name']}"
                )
        for problem in result["problems"]:
            print(f"problem: {problem}")
        if not result["servers"] and not result["problems"]:
            print("no MCP servers: the project has no .mcp.json")
    elif action == "grep":
        for found in result:
            print(f"{found['server']} {found['tool']} - {found['summary']}")
    elif action == "resources":
        for found in result:
            print(f"{found['uri']}  {found['name']}  {found['mime_type']}".rstrip())
    elif action == "read":
        for content in result:
            print(content["text"])
    elif action == "prompts":
        for found in result:
            wanted = ", ".join(
                a["name"] + ("" if a["required"] else "?") for a in found["arguments"]
            )
            print(f"{found['name']}({wanted}) - {found['description']}")
    elif action == "prompt":
        for message in result:
            print(f"[{message['role']}] {message['text']}")
    elif action == "info":
        print(f"{result['server']} {result['name']}\n{result['description'].strip()}")
        schema = result["input_schema"]
        required = set(schema.get("required", ()))
        for name, prop in (schema.get("properties") or {}).items():
            kind = prop.get("type", "any")
            need = "required" if name in required else "optional"
            about = f": {prop['description']}" if prop.get("description") else ""
            print(f"  {name} ({kind}, {need}){about}")
        import json  # only here: every `mcp` command would pay for its import

        print("schema: " + json.dumps(schema, separators=(",", ":")))
    else:
        return _show_call(result)
    return 0


def _show_call(result: dict[str, Any]) -> int:
    if result["is_error"]:
        first = (result["text"] or "the tool reported an error").strip().splitlines()[0]
        print(f"mcp: the tool failed: {first}", file=sys.stderr)
        return 1
    if result["text"]:
        print(result["text"])
    elif result["structured"] is not None:
        import json  # only here: every `mcp` command would pay for its import

        print(json.dumps(result["structured"], indent=2))
    for other in result["other"]:
        print(other)
    return 0


def main(argv: list[str]) -> int:
    return run_skill_command("mcp", SKILL, argv, parse, show, USAGE)


if __name__ == "__main__":
    exit_now(main(sys.argv[1:]))
