"""Session control block (SCB): one conversation of one agent, and its lease."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import msgspec

if TYPE_CHECKING:
    from aos.store import Store

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
    outcome: str = ""
    """How its last dispatch ended: the status (``completed``, ``max_steps``...), and
    for any other than those, its error after a colon (``failed: …``); empty
    before the first dispatch ends."""
    lease_owner: str | None = None
    """The node running this session's dispatch, while its lease holds."""
    lease_expires: float | None = None
    """Unix time the lease ends unless renewed; past it, another node may claim it."""


def outcome_of(status: str, error: str | None) -> str:
    """An SCB's ``outcome`` for a dispatch that ended with ``status`` and ``error``."""
    return f"{status}: {error}" if error and status not in ("completed", "max_steps") else status


TITLE_MAX = 200
"""Characters a title may have (``session.create``, ``session.update``)."""
TITLE_LENGTH = 80
"""Characters of a title made from a message (:func:`title_of`)."""


def title_of(message: str) -> str:
    """A session's title from its first dispatched message: its first non-blank
    line, runs of whitespace made one space, cut to :data:`TITLE_LENGTH`
    characters (the last of them "…" when cut)."""
    line = next((" ".join(words) for line in message.splitlines() if (words := line.split())), "")
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


class Sessions:
    """The sessions, read and written through the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, session_id: str) -> SCB:
        return await self._store.get_session(session_id)

    async def find(
        self,
        *,
        agent_id: str | None = None,
        status: SessionStatus | None = None,
        outcome: str | None = None,
        search: str | None = None,
        limit: int | None = None,
    ) -> list[SCB]:
        """An agent's sessions (all agents' without ``agent_id``), by status, by how
        their last dispatch ended, by a text in their title or messages; the
        ``limit`` most recently active."""
        return await self._store.list_sessions(
            agent_id=agent_id, status=status, outcome=outcome, search=search, limit=limit
        )

    async def create(self, scb: SCB) -> SCB:
        return await self._store.create_session(scb)

    async def update(self, scb: SCB) -> SCB:
        """Write ``scb`` if nobody changed it since it was read (its revision)."""
        return await self._store.update_session(scb)
