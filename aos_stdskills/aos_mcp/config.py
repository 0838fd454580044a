"""Which MCP servers there are: ``.mcp.json`` in the project directory, and
``mcp_servers`` in the node's ``aoscb.json`` (``.mcp.json`` wins for a name
both have).

The shape is the one Claude Code, OpenCode and Letta users already have::

    {"mcpServers": {
        "files": {"command": "npx", "args": ["-y", "@scope/server"], "env": {"KEY": "${KEY}"}},
        "search": {"type": "http", "url": "https://mcp.example.com/mcp",
                   "headers": {"Authorization": "Bearer ${SEARCH_TOKEN}"}},
    }}

A stdio server has ``command`` (and ``args``, ``env``, ``cwd``); a Streamable
HTTP server has ``url`` (and ``headers``; ``type`` ``http`` or
``streamable-http``, or none). ``${VAR}`` and ``${VAR:-default}`` expand from
the service's environment (the daemon's, with the project's ``.env``).
``allowed_tools`` (only these) and ``disabled_tools`` (never these) filter what
the agent may see and call. A bad entry is reported with its reason and left
out; the others work.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

CONFIG_FILE = ".mcp.json"
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigProblem(ValueError):
    """An entry that cannot be used (the message says why)."""


@dataclass(frozen=True)
class ServerConfig:
    name: str
    transport: Literal["stdio", "http"]
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    """A stdio server's working directory: the project's, or ``cwd`` taken from it."""
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    allowed_tools: frozenset[str] | None = None
    disabled_tools: frozenset[str] = frozenset()
    shown: str = ""
    """The command line or URL as the file writes it, ``${VAR}`` unexpanded: what
    messages show (an agent reads them; the values may be secrets)."""

    def offers(self, tool: str) -> bool:
        """Whether the agent may see and call ``tool`` of this server."""
        allowed = self.allowed_tools is None or tool in self.allowed_tools
        return allowed and tool not in self.disabled_tools

    def describe(self) -> str:
        """What it runs or reaches, for messages: as written, no expanded variable
        and no header (they hold secrets)."""
        return self.shown


@dataclass
class Servers:
    configs: dict[str, ServerConfig] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """One line per entry (or file) that could not be used."""


def expand(text: str, environ: Mapping[str, str]) -> str:
    """``${VAR}`` and ``${VAR:-default}`` from ``environ``; ConfigProblem for an
    unset variable without a default."""

    def value(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigProblem(f"${{{name}}} is not set (give it in the environment or .env)")

    return _VARIABLE.sub(value, text)


def load(project: Path, environ: Mapping[str, str], aoscb: Path | None = None) -> Servers:
    """The servers of ``aoscb``'s ``mcp_servers`` and of ``project``'s
    ``.mcp.json``, which wins for a name both have (none when neither has any)."""
    found = Servers()
    sources = [(aoscb, "mcp_servers")] if aoscb is not None else []
    for path, key in [*sources, (project / CONFIG_FILE, "mcpServers")]:
        servers = _servers_in(path, key, found.problems)
        for name, entry in servers.items():
            found.configs.pop(name, None)
            try:
                found.configs[name] = parse(name, entry, environ, project)
            except ConfigProblem as exc:
                found.problems.append(f"{path}: server {name!r}: {exc}")
    return found


def _servers_in(path: Path, key: str, problems: list[str]) -> dict[str, Any]:
    """The ``key`` object of the JSON file at ``path`` ({} without the file or the key)."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        problems.append(f"{path}: cannot be read as JSON: {exc}")
        return {}
    servers = document.get(key, {}) if isinstance(document, dict) else None
    if not isinstance(servers, dict):
        problems.append(f'{path}: expected {{"{key}": {{NAME: {{...}}}}}}')
        return {}
    return servers


def parse(name: str, entry: Any, environ: Mapping[str, str], project: Path) -> ServerConfig:
    """One entry; a stdio server runs in ``cwd`` taken from ``project`` (the
    directory of ``.mcp.json``), so relative commands and paths are the project's."""
    if not isinstance(entry, dict):
        raise ConfigProblem("an entry is an object with command (stdio) or url (http)")
    kind = entry.get("type", "http" if "url" in entry else "stdio")
    filters = {
        "allowed_tools": _names(entry, "allowed_tools"),
        "disabled_tools": frozenset(_names(entry, "disabled_tools") or ()),
    }
    if kind == "stdio":
        command = _text(entry, "command", environ)
        if not command:
            raise ConfigProblem("a stdio server needs a command")
        args = [str(a) for a in _list(entry, "args")]
        return ServerConfig(
            name=name,
            transport="stdio",
            command=command,
            args=tuple(expand(a, environ) for a in args),
            shown=" ".join((str(entry["command"]), *args)),
            env={k: expand(str(v), environ) for k, v in _map(entry, "env").items()},
            cwd=str(project / _text(entry, "cwd", environ)),
            **filters,
        )
    if kind in ("http", "streamable-http"):
        url = _text(entry, "url", environ)
        if not url.startswith(("http://", "https://")):
            raise ConfigProblem(f"url must be http:// or https://, not {entry['url']!r}")
        return ServerConfig(
            name=name,
            transport="http",
            url=url,
            shown=str(entry["url"]),
            headers={k: expand(str(v), environ) for k, v in _map(entry, "headers").items()},
            **filters,
        )
    if kind == "sse":
        raise ConfigProblem("the SSE transport is deprecated by MCP: use its Streamable HTTP url")
    raise ConfigProblem(f"unknown type {kind!r} (stdio or http)")


def _text(entry: dict[str, Any], key: str, environ: Mapping[str, str]) -> str:
    value = entry.get(key, "")
    if not isinstance(value, str):
        raise ConfigProblem(f"{key} must be a string")
    return expand(value, environ)


def _list(entry: dict[str, Any], key: str) -> list[Any]:
    value = entry.get(key, [])
    if not isinstance(value, list):
        raise ConfigProblem(f"{key} must be a list")
    return value


def _map(entry: dict[str, Any], key: str) -> dict[str, Any]:
    value = entry.get(key, {})
    if not isinstance(value, dict):
        raise ConfigProblem(f"{key} must be an object")
    return value


def _names(entry: dict[str, Any], key: str) -> frozenset[str] | None:
    if key not in entry:
        return None
    return frozenset(str(n) for n in _list(entry, key))
