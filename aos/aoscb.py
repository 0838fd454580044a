"""AOSCB: the system control block (``aoscb.json``).

The system-wide defaults every agent starts from: which skills are active for
everyone, the model, the limits, and where drop-in skills are found. Decoded
strictly: an unknown or mistyped field is an error naming that field.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from aos.sandbox import SandboxMode

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
ListenAddress = Annotated[
    str, msgspec.Meta(pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$")
]
"""``HOST:PORT``: a host name, an IPv4 address or a bracketed IPv6 one, and a port."""


class Limits(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Resource limits of the node (an agent's config may override ``max_steps``)."""

    max_steps: PositiveInt = 50
    """ReAct steps (LLM calls) one dispatch may take."""
    tool_timeout: PositiveFloat = 120.0
    """Seconds a bash call may run before its process group is killed."""
    tool_output_cap: PositiveInt = 32_768
    """Bytes of tool output the model sees; the raw output goes to RuntimeLog."""
    hook_timeout: PositiveFloat = 5.0
    """Seconds one hook implementation may take before its failure policy applies."""
    context_budget: PositiveInt = 100_000
    """Token budget of an assembled SessionContext."""


CHARS_PER_TOKEN = 4
"""How tokens are estimated where no tokenizer is at hand: characters per token
(the kernel's check of a message against ``context_budget``, aos-context's budget)."""


STANDARD_SKILLS = ("aos-context", "aos-skill", "aos-a2a", "aos-frontend")
"""The standard harness's skills (aos_stdskills), active for every agent by default."""
DEFAULT_MODEL = "deepseek/deepseek-v4.1-flash"
"""The model a node uses when nothing names one: on OpenRouter, current, capable
with tool calls and inexpensive, so that the key alone is enough to start."""


class AOSCB(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """System control block: the defaults of the whole node."""

    harness: str | None = None
    """The installed harness (``aos harness list``) whose settings the node takes
    where nothing more specific sets them; None: the built-in defaults below,
    which are the standard harness's."""
    model: str | None = DEFAULT_MODEL
    """Default model id (OpenAI-compatible); agents, ``AOS_MODEL`` and ``aos run
    --model`` override it; ``null`` means none (every agent must name one)."""
    default_skills: list[str] = msgspec.field(default_factory=lambda: list(STANDARD_SKILLS))
    """Skills active for every agent."""
    skill_roots: list[str] = msgspec.field(default_factory=lambda: ["skills"])
    """Drop-in skill roots, highest precedence first; relative paths are taken
    from the directory holding aoscb.json (or the working directory)."""
    limits: Limits = msgspec.field(default_factory=Limits)
    prompt: str = ""
    """Added to the system prompt of every agent (a harness's own instructions):
    the ``session.assemble`` provider puts it after its own."""
    sandbox: SandboxMode = "auto"
    """Agent commands in a bubblewrap sandbox: ``auto`` (when the host can),
    ``required`` (refuse to dispatch otherwise) or ``off``; an admin may set it
    per agent (docs/specs/aos-security.md)."""
    agent_env: list[str] = msgspec.field(default_factory=list)
    """Variables of the daemon's environment passed to agent commands, beyond the
    allowlist (PATH, locale, TERM, TZ, USER...): nothing else reaches the agent."""
    mcp_servers: dict[str, Any] = msgspec.field(default_factory=dict)
    """MCP servers for aos-mcp, in ``.mcp.json``'s ``mcpServers`` shape (the
    project's ``.mcp.json`` wins for a name both have); the kernel only carries them."""
    budgets: dict[str, Any] = msgspec.field(default_factory=dict)
    """Spending budgets for aos-budget: an agent's name or id (``*``: every agent)
    -> ``{"tokens": int, "cost": float}`` per window; the kernel only carries them."""
    ws_listen: ListenAddress | None = None
    """``HOST:PORT`` where the daemon serves its WebSocket face (remote services and
    clients, by token; port 0 picks a free one); ``null``: no WebSocket face."""
