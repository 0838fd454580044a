"""Usage: the tokens and cost of sessions and agents, from their history.

Every model call leaves a ``message.assistant`` fact with its model and its
``usage`` (tokens, and cost when the provider reports one). The store adds them
up by session or by agent and model (:meth:`aos.store.Store.usage_rows`); this
module folds those rows into :class:`UsageTotals`, what ``session.usage``
returns and ``aos session list`` / ``aos agent list`` show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import msgspec

UsageGroup = Literal["session", "agent"]


class ModelUsage(msgspec.Struct, kw_only=True):
    model: str
    calls: int = 0
    """Model calls (assistant messages) that reported usage or not."""
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None
    """Summed where the provider reported it; None when no call reported a cost."""


class UsageTotals(msgspec.Struct, kw_only=True):
    """One session's (or agent's) model calls: totals, and by model."""

    id: str
    """The session id (or the agent id, by agent)."""
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None
    models: list[ModelUsage] = msgspec.field(default_factory=list)


def fold(rows: Iterable[Mapping[str, Any]], ids: Iterable[str]) -> list[UsageTotals]:
    """Totals for each of ``ids`` (zeros for one without model calls) from rows of
    ``{key, model, calls, input_tokens, output_tokens, cost}``."""
    totals = {key: UsageTotals(id=key) for key in ids}
    for row in rows:
        total = totals.get(row["key"])
        if total is None:
            continue
        model = ModelUsage(
            model=row["model"] or "(unknown)",
            calls=int(row["calls"]),
            input_tokens=int(row["input_tokens"] or 0),
            output_tokens=int(row["output_tokens"] or 0),
            cost=float(row["cost"]) if row["cost"] is not None else None,
        )
        total.models.append(model)
        total.calls += model.calls
        total.input_tokens += model.input_tokens
        total.output_tokens += model.output_tokens
        if model.cost is not None:
            total.cost = (total.cost or 0.0) + model.cost
    for total in totals.values():
        total.models.sort(key=lambda m: (-m.input_tokens - m.output_tokens, m.model))
    return list(totals.values())
