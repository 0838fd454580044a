"""Agent: identity, permission boundary, inheritable configuration (the ACB)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec

from aos.sandbox import Network, SandboxMode

AgentStatus = Literal["active", "archived"]

NAME_RULE = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
"""What an agent's name may be: a word for the command line (``aos run -a NAME``)."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an agent, or None (see :data:`NAME_RULE`)."""
    if _NAME.fullmatch(name):
        return None
    return f"invalid agent name {name!r}: a name is {NAME_RULE}"


class AgentConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """What an agent overrides; ``None`` means "inherit from the parent, then the AOSCB"."""

    model: str | None = None
    skills: list[str] | None = None
    """Skills active for this agent on top of the system default skills."""
    workspace: str | None = None
    """Directory bash runs in; defaults to a directory under the data dir."""
    max_steps: Annotated[int, msgspec.Meta(ge=1)] | None = None
    network: Network | None = None
    """``on`` (the internet, not the node's own ports), ``none`` (no network) or
    ``host`` (the host's network, the node's ports included: admin only)."""
    sandbox: SandboxMode | None = None
    """Overrides the node's ``sandbox`` setting for this agent (admin only)."""


class ACB(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Agent control block."""

    id: str
    name: str
    parent: str | None = None
    config: AgentConfig = msgspec.field(default_factory=AgentConfig)
    scopes: list[str] | None = None
    """Syscall scopes of this agent's tokens; ``None`` inherits the parent's. The
    effective scopes are always within the parent's."""
    status: AgentStatus = "active"
    created_at: float = 0.0
    updated_at: float = 0.0
    revision: int = 0
    """Bumped by every update; updates name the revision they read (optimistic locking)."""


class EffectiveConfig(msgspec.Struct, kw_only=True):
    """An agent's configuration after inheritance (own value, else parent's, else AOSCB)."""

    model: str | None
    skills: list[str]
    scopes: list[str]
    workspace: str | None
    max_steps: int
    network: Network = "on"
    sandbox: SandboxMode = "auto"
