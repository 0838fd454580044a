"""Session control block (SCB): one conversation of one agent, and its lease."""

from __future__ import annotations

from typing import Literal

import msgspec

SessionStatus = Literal["idle", "running", "archived"]


class SCB(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Session control block."""

    id: str
    agent_id: str
    title: str = ""
    """Given at ``session.create``, else the first dispatched message's first line."""
    status: SessionStatus = "idle"
    phase: str = ""
    """What a running dispatch is doing (assemble, compute, tool, ...); empty when idle."""
    created_at: float = 0.0
    updated_at: float = 0.0
    revision: int = 0
    lease_owner: str | None = None
    """The node running this session's dispatch, while its lease holds."""
    lease_expires: float | None = None
    """Unix time the lease ends unless renewed; past it, another node may claim it."""


TITLE_LENGTH = 60
"""Characters of a title made from a message (:func:`title_of`)."""


def title_of(message: str) -> str:
    """A session's title from its first dispatched message: its first non-blank
    line, trimmed to :data:`TITLE_LENGTH` characters."""
    line = next((line.strip() for line in message.splitlines() if line.strip()), "")
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"
