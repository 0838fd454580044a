"""aos-skill-guard: reject dangerous bash commands before they run.

An in-process AgentOS skill implementing the ``tool.before`` gate. A command
matching one of :data:`PATTERNS` is rejected with ``"blocked: <description>"``
and never runs; any other command passes unchanged.

Configuration (read once, at import):

``AOS_SKILL_GUARD_PATTERNS``
    JSON list of regex strings that *replaces* the default patterns.
``AOS_SKILL_GUARD_EXTRA``
    JSON list of regex strings *added* to the patterns above.

Invalid JSON or an invalid regex raises :class:`ValueError` at import, so the
kernel reports the plugin as failed to load instead of running unguarded.

This is a guard against accidents, not a sandbox: a determined command
(``base64 -d | sh``, a script file) gets past any list of patterns.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

from aos import hookimpl, policy

__all__ = ["DEFAULTS", "PATTERNS", "check", "tool_before"]

PATTERNS_VAR = "AOS_SKILL_GUARD_PATTERNS"
EXTRA_VAR = "AOS_SKILL_GUARD_EXTRA"

# Where a command word starts: the beginning, after a shell operator or an
# opening bracket, or inside ``bash -c '...'`` / ``eval '...'``. Text inside
# other quotes is not a command, so ``echo "rm -rf /"`` passes.
_START = r"(?:^|[;&|({`\n]|(?:^|\s)(?:-c|eval)\s+['\"]?)\s*"
# Assignments, then a wrapper that runs a later word as a command (``sudo -u
# root``, ``xargs -0``, ``then``), then an optional directory (``/bin/rm``).
# Words are matched atomically (``(?>...)``) and at most 8 of each, so a long
# command cannot make the regex backtrack for long.
_WRAPPER = r"sudo|doas|env|nohup|exec|command|builtin|time|nice|ionice|xargs|then|do|else|!"
_PREFIX = (
    r"(?:(?>\w+=\S*)\s+){0,8}"
    rf"(?:(?:{_WRAPPER})\s+(?:(?>-\S+|\w+=\S*|\w+|!)\s+){{0,8}})?"
    r"(?:[^\s;&|()'\"]*/)?"
)
_END = r"(?=\s|$|[;&|)'\"])"
# The rest of the same simple command (up to the next operator).
_ARGS = r"[^;&|\n]*"
_ROOT = r"['\"]?/\*?['\"]?" + _END
_ROOT_OR_HOME = r"['\"]?(?:/|~|\$HOME|\$\{HOME\})/?\*?['\"]?" + _END
_DISK = r"/dev/(?:sd|hd|vd|xvd|nvme|mmcblk|disk)"


def _command(names: str) -> str:
    """A regex for one of ``names`` in command position."""
    return f"{_START}{_PREFIX}(?:{names}){_END}"


def _recursive(flag_letters: str) -> str:
    """Lookahead: the same command has a recursive flag (``-rf``, ``-R``, ``--recursive``)."""
    return rf"(?={_ARGS}\s(?:-[a-zA-Z]*[{flag_letters}][a-zA-Z]*|--recursive)\b)"


DEFAULTS: tuple[tuple[str, str], ...] = (
    (
        "recursive rm of /, /* or the home directory",
        _command("rm") + _recursive("rR") + rf"{_ARGS}\s{_ROOT_OR_HOME}",
    ),
    ("fork bomb", r"(?<![\w:])([\w:]++)\s*\(\s*\)\s*\{\s*\1\s*\|\s*\1\s*&\s*\}\s*;\s*\1"),
    ("mkfs (formats a filesystem)", _command(r"mkfs(?:\.\w+)?|mke2fs")),
    ("dd writing to a disk device", _command("dd") + rf"{_ARGS}\bof=['\"]?{_DISK}"),
    ("redirect onto a disk device", rf">[&|]?\s*['\"]?{_DISK}"),
    (
        "recursive chmod/chown of /",
        _command("chmod|chown|chgrp") + _recursive("R") + rf"{_ARGS}\s{_ROOT}",
    ),
    ("SQL DROP TABLE/DATABASE/SCHEMA", r"(?i)\bdrop\s+(?:table|database|schema)\b"),
    (
        "shutdown/reboot/halt",
        _command(r"shutdown|reboot|halt|poweroff|systemctl\s+(?:reboot|poweroff|halt)"),
    ),
)
"""The default patterns: ``(description, regex)``."""


def _from_env(var: str) -> list[tuple[str, str]] | None:
    """The patterns a variable lists (each is its own description), or None if unset."""
    raw = os.environ.get(var, "").strip()
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{var} must be a JSON list of regex strings: {exc}") from None
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise ValueError(f"{var} must be a JSON list of regex strings, got {raw!r}")
    return [(p, p) for p in value]


def _compile(var: str | None, pairs: list[tuple[str, str]]) -> list[tuple[str, re.Pattern[str]]]:
    compiled: list[tuple[str, re.Pattern[str]]] = []
    for description, pattern in pairs:
        try:
            compiled.append((description, re.compile(pattern)))
        except re.error as exc:
            where = var or "the default patterns"
            raise ValueError(f"{where}: invalid regex {pattern!r}: {exc}") from None
    return compiled


def _load() -> tuple[tuple[str, re.Pattern[str]], ...]:
    base = _from_env(PATTERNS_VAR)
    patterns = _compile(None, list(DEFAULTS)) if base is None else _compile(PATTERNS_VAR, base)
    patterns += _compile(EXTRA_VAR, _from_env(EXTRA_VAR) or [])
    return tuple(patterns)


PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = _load()
"""The active patterns, compiled once at import: ``(description, compiled regex)``."""


def check(command: str) -> str | None:
    """The description of the first pattern ``command`` matches, or None."""
    for description, pattern in PATTERNS:
        if pattern.search(command):
            return description
    return None


@hookimpl
@policy(failure="fail-closed")
def tool_before(input: Mapping[str, Any], output: dict[str, Any]) -> dict[str, Any]:
    """**gate** ``tool.before``: reject a dangerous bash command, else pass it unchanged."""
    command = output.get("args", {}).get("command")
    if isinstance(command, str) and (blocked := check(command)) is not None:
        return {"verdict": "reject", "reason": f"blocked: {blocked}"}
    return output
