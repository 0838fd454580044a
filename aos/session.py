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
