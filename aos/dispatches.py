"""Dispatch requests: ``session.dispatch`` on a node of a cluster, as the queue holds it.

On PostgreSQL every ``session.dispatch`` is recorded as a request (``queued``);
a live node whose placement matches claims it (``claimed``, ``FOR UPDATE SKIP
LOCKED``), starts the dispatch (``running``) and records how it ended
(``done``, with the outcome, or the refusal as ``{"code", "message"}``). The
node that recorded it answers its caller from that row. :mod:`aos.cluster`
runs the queue; the store (:mod:`aos.store.postgres`) holds it.
"""

from __future__ import annotations

from typing import Literal

import msgspec

DispatchRequestState = Literal["queued", "claimed", "running", "done"]
Placement = str
"""``any``, ``node:<id>`` or ``label:<label>``: where an agent's dispatches may run."""
PLACEMENT_PATTERN = r"^(any|node:\S+|label:\S+)$"


class Refusal(msgspec.Struct, frozen=True):
    """Why the claiming node refused to start the dispatch (a syscall error)."""

    code: str
    message: str


class DispatchRequest(msgspec.Struct, kw_only=True):
    id: str
    session_id: str
    dispatch_id: str
    origin: str
    """The node whose ``session.dispatch`` recorded it."""
    principal: str
    """JSON of the caller's principal: the dispatch runs as them."""
    message: str
    cwd: str | None = None
    model: str | None = None
    placement: Placement = "any"
    state: DispatchRequestState = "queued"
    node: str | None = None
    """The node that claimed it."""
    created_at: float = 0.0
    claimed_at: float | None = None
    outcome: str | None = None
    """JSON: the DispatchOutcome, or a :class:`Refusal`."""


def placements_of(node_id: str, labels: list[str]) -> list[Placement]:
    """The placements a node may claim."""
    return ["any", f"node:{node_id}", *(f"label:{label}" for label in labels)]
