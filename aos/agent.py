"""Agent: identity, permission boundary, inheritable configuration (the ACB)."""

from __future__ import annotations

from typing import Literal

import msgspec

AgentStatus = Literal["active", "archived"]


class AgentConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """What an agent overrides; ``None`` means "inherit from the parent, then the AOSCB"."""

    model: str | None = None
    skills: list[str] | None = None
    """Skills active for this agent on top of the system default skills."""
    workspace: str | None = None
    """Directory bash runs in; defaults to a directory under the data dir."""
    max_steps: int | None = None


class ACB(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Agent control block."""

    id: str
    name: str
    parent: str | None = None
    config: AgentConfig = msgspec.field(default_factory=AgentConfig)
    scopes: list[str] = msgspec.field(default_factory=list)
    """Syscall scopes granted to this agent's tokens (never wider than the parent's)."""
    status: AgentStatus = "active"
    created_at: float = 0.0
    updated_at: float = 0.0
    revision: int = 0
    """Bumped by every update; updates name the revision they read (optimistic locking)."""
