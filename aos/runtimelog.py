"""RuntimeLog: the kernel's audit trail.

Syscalls, hook verdicts and errors, raw tool output, LLM usage: everything an
operator needs to know what happened, kept apart from SessionHistory (which is
what the agent saw).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from aos import jsontext

LogLevel = Literal["debug", "info", "warning", "error"]
LOG_LEVELS: tuple[LogLevel, ...] = ("debug", "info", "warning", "error")
"""The levels, least severe first (``log.read``'s ``level`` means "this or above")."""


class LogEntry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One RuntimeLog record. ``id`` and ``ts`` are assigned by the store."""

    kind: str
    """Dotted category: ``syscall``, ``hook.verdict``, ``hook.error``, ``tool.raw``, ``llm.usage``..."""
    message: str = ""
    level: LogLevel = "info"
    session_id: str | None = None
    agent_id: str | None = None
    data: dict[str, Any] = {}
    id: int = 0
    ts: float = 0.0


class LogQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which RuntimeLog records to read (``log.read``'s params): every condition
    given must hold; records in ``id`` order, at most ``limit``."""

    session_id: str | None = None
    agent_id: str | None = None
    kind: str | None = None
    since: float | None = None
    """Records with ``ts >= since``."""
    until: float | None = None
    """Records with ``ts < until``."""
    after_id: int = 0
    before_id: int | None = None
    """Records with ``id < before_id`` (paging back with ``newest_first``)."""
    level: LogLevel | None = None
    """Records at this level or more severe."""
    skill: str | None = None
    """Records about this skill: its service's (``data.skill``), its hooks' verdicts
    and errors (``data.implementation``), its syscalls (``data.principal``)."""
    search: str | None = None
    """Records whose message or kind contains this text, in any case."""
    limit: int = 100
    newest_first: bool = False


_data_decoder = msgspec.json.Decoder(dict[str, Any])


def encode_data(data: dict[str, Any]) -> str:
    return jsontext.encode(data)


def decode_data(raw: str | bytes) -> dict[str, Any]:
    return jsontext.decode(raw, _data_decoder)
