"""Agent: identity, permission boundary, inheritable configuration (the ACB),
and inheritance: an agent's lineage, its effective configuration and active skills.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec

from aos.dispatches import PLACEMENT_PATTERN
from aos.principals import DEFAULT_AGENT_SCOPES
from aos.sandbox import Network, SandboxMode

if TYPE_CHECKING:
    from aos.aoscb import AOSCB
    from aos.store import Store

AgentStatus = Literal["active", "archived"]

NAME_RULE = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
"""What an agent's name may be: a word for the command line (``aos run -a NAME``)."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an agent, or None (see :data:`NAME_RULE`)."""
    if _NAME.fullmatch(name):
        return None
    return f"invalid agent name {name!r}: a name is {NAME_RULE}"


PROMPT_MAX = 20_000
"""The longest ``AgentConfig.prompt``, in characters."""


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
    placement: Annotated[str, msgspec.Meta(pattern=PLACEMENT_PATTERN)] | None = None
    """Where its dispatches run on a cluster: ``any`` node, ``node:<id>`` (its
    workspace lives there) or a node with ``label:<label>`` (admin only)."""
    prompt: Annotated[str, msgspec.Meta(max_length=PROMPT_MAX)] | None = None
    """Text added to the system prompt of this agent and its descendants (after the
    node's ``prompt`` and its ancestors' additions)."""


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
    placement: str = "any"
    prompt: str = ""
    """The ``prompt`` additions along the lineage, root first, separated by a blank line."""


class LineageCycle(Exception):
    """An agent's parents loop back to it."""


class Agents:
    """Inheritance along the agent tree, read from the store.

    ``aoscb`` gives the node's control block (its model, limits, sandbox and
    default skills are what a root agent inherits); ``loaded_skills`` the skills
    loaded in a session (SessionHistory's ``skill.loaded`` facts)."""

    def __init__(
        self,
        store: Store,
        aoscb: Callable[[], AOSCB],
        loaded_skills: Callable[[str], Awaitable[frozenset[str]]],
    ) -> None:
        self._store = store
        self._aoscb = aoscb
        self._loaded_skills = loaded_skills

    # -- the agents ----------------------------------------------------------------
    async def get(self, agent_id: str) -> ACB:
        return await self._store.get_agent(agent_id)

    async def all(self, status: AgentStatus | None = None) -> list[ACB]:
        return await self._store.list_agents(status=status)

    async def children(self, parent_id: str, status: AgentStatus | None = None) -> list[ACB]:
        return await self._store.list_agents(parent=parent_id, status=status)

    async def create(self, acb: ACB) -> ACB:
        return await self._store.create_agent(acb)

    async def update(self, acb: ACB) -> ACB:
        """Write ``acb`` if nobody changed it since it was read (its revision)."""
        return await self._store.update_agent(acb)

    async def within(self, root_id: str, agents: Iterable[ACB]) -> list[ACB]:
        """Those of ``agents`` in ``root_id``'s subtree."""
        return [a for a in agents if await self.in_subtree(root_id, a.id)]

    # -- inheritance -----------------------------------------------------------------
    async def lineage(self, agent_id: str) -> list[ACB]:
        """The agent and its ancestors, root first.

        Raises :class:`LineageCycle` if the parents loop (two concurrent moves on
        different nodes, each undone by ``agent.update`` once it sees the loop)."""
        chain = [await self._store.get_agent(agent_id)]
        seen = {agent_id}
        while chain[-1].parent is not None:
            if chain[-1].parent in seen:
                raise LineageCycle(
                    f"agent {agent_id}'s parents form a cycle through {chain[-1].parent}"
                )
            seen.add(chain[-1].parent)
            chain.append(await self._store.get_agent(chain[-1].parent))
        chain.reverse()
        return chain

    def effective_of(self, chain: list[ACB]) -> EffectiveConfig:
        """Inherit along a root-first lineage.

        The nearest override wins for model, workspace, max_steps, sandbox and placement;
        ``network`` too, except that ``none`` holds for the whole subtree below it. Skills add
        up: a child adds skills but cannot drop its ancestors' (policy skills
        stay active below them); so do prompts (root first, a blank line between).
        Scopes narrow: a root agent has the scopes it names (else the default agent
        scopes), each descendant the intersection with what it names.
        """
        aoscb = self._aoscb()
        model, workspace, max_steps = aoscb.model, None, aoscb.limits.max_steps
        network: Network = "on"
        sandbox: SandboxMode = aoscb.sandbox
        placement = "any"
        skills: dict[str, None] = {}  # ordered set
        prompts: list[str] = []
        scopes: set[str] | None = None
        for acb in chain:
            c = acb.config
            model = c.model if c.model is not None else model
            skills.update(dict.fromkeys(c.skills or ()))
            workspace = c.workspace if c.workspace is not None else workspace
            max_steps = c.max_steps if c.max_steps is not None else max_steps
            if network != "none" and c.network is not None:  # none is never widened below
                network = c.network
            sandbox = c.sandbox if c.sandbox is not None else sandbox
            placement = c.placement if c.placement is not None else placement
            if c.prompt and c.prompt.strip():
                prompts.append(c.prompt.strip())
            if scopes is None:
                scopes = set(DEFAULT_AGENT_SCOPES if acb.scopes is None else acb.scopes)
            elif acb.scopes is not None:
                scopes &= set(acb.scopes)
        return EffectiveConfig(
            model=model,
            skills=list(skills),
            scopes=sorted(scopes if scopes is not None else DEFAULT_AGENT_SCOPES),
            workspace=workspace,
            max_steps=max_steps,
            network=network,
            sandbox=sandbox,
            placement=placement,
            prompt="\n\n".join(prompts),
        )

    async def effective(self, agent_id: str) -> EffectiveConfig:
        return self.effective_of(await self.lineage(agent_id))

    async def active_skills(
        self,
        agent_id: str,
        session_id: str | None = None,
        *,
        effective: EffectiveConfig | None = None,
    ) -> frozenset[str]:
        """System default skills, the agent's (inherited) skills, and those loaded
        in the session. ``effective``: the agent's, when the caller has it already."""
        effective = effective or await self.effective(agent_id)
        active = frozenset(self._aoscb().default_skills) | frozenset(effective.skills)
        return active | await self._loaded_skills(session_id) if session_id else active

    async def in_subtree(self, root_id: str, agent_id: str) -> bool:
        """Whether ``agent_id`` is ``root_id`` or one of its descendants."""
        return any(acb.id == root_id for acb in await self.lineage(agent_id))
