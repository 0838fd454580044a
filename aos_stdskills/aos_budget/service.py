"""aos-budget's service face: the ``compute.before`` gate that keeps budgets.

Budgets come from the node's ``aoscb.json`` (``budgets``: an agent's name or id,
or ``*`` for every agent, -> ``{"tokens": int, "cost": float}``), read again when
the file changes; the window from SKILL.md's ``window-hours`` metadata or
``AOS_BUDGET_WINDOW_HOURS``. Before each model call of an agent with a budget,
the agent's model calls in the window are added up (``session.usage``); past the
budget, the call is refused and the dispatch ends ``rejected`` with the reason.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import msgspec
from aos_sdk import define_service, syscall

SKILL = "aos-budget"


class Budget(msgspec.Struct, forbid_unknown_fields=True):
    tokens: int | None = None
    """Input and output tokens in the window."""
    cost: float | None = None
    """What the provider reported the calls cost, in dollars, in the window."""


class Budgets:
    """The budgets of ``aoscb.json``, read again whenever the file changes."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.window = 24 * 3600.0
        self.by_agent: dict[str, Budget] = {}
        self.problems: list[str] = []
        """What is wrong with the file's budgets."""
        self.window_problem: str | None = None
        self._seen: float | None = None

    def refresh(self) -> None:
        if self.path is None:
            return
        try:
            changed = self.path.stat().st_mtime
        except OSError as exc:
            self.problems, self.by_agent = [f"cannot read {self.path}: {exc.strerror}"], {}
            return
        if changed == self._seen:
            return
        self._seen = changed
        self.by_agent, self.problems = {}, []
        try:
            entries = json.loads(self.path.read_text()).get("budgets") or {}
        except (OSError, ValueError) as exc:
            self.problems = [f"cannot read {self.path}: {exc}"]
            return
        for name, entry in entries.items():
            try:
                self.by_agent[name] = msgspec.convert(entry, Budget)
            except msgspec.ValidationError as exc:
                self.problems.append(f"budgets.{name}: {exc}")

    def of(self, agent: dict[str, Any]) -> tuple[str, Budget] | None:
        """The budget that holds for an agent (by id, then name, then ``*``)."""
        self.refresh()
        for key in (agent["id"], agent["name"], "*"):
            if key in self.by_agent:
                return key, self.by_agent[key]
        return None


BUDGETS = Budgets()


async def start() -> None:
    """Where the budgets are (the file the node read) and the window."""
    status = await syscall("kernel.status")
    if status.get("config_file"):
        BUDGETS.path = Path(status["config_file"])
    metadata = (await syscall("skill.get", {"name": SKILL})).get("metadata") or {}
    hours = os.environ.get("AOS_BUDGET_WINDOW_HOURS") or metadata.get("window-hours") or "24"
    try:
        BUDGETS.window = float(hours) * 3600
    except ValueError:
        BUDGETS.window_problem = f"the window must be a number of hours, not {hours!r} (24 h used)"
    BUDGETS.refresh()


async def compute_before(input_data: dict[str, Any], output_data: dict[str, Any]) -> Any:
    agent = (await syscall("agent.get", {"id": input_data["agent_id"]}))["agent"]
    found = BUDGETS.of(agent)
    if found is None:
        return output_data
    key, budget = found
    [spent] = await syscall(
        "session.usage",
        {"ids": [agent["id"]], "by": "agent", "since": time.time() - BUDGETS.window},
    )
    hours = f"{BUDGETS.window / 3600:g} h"
    tokens = spent["input_tokens"] + spent["output_tokens"]
    if budget.tokens is not None and tokens >= budget.tokens:
        over = f"{tokens:,} tokens in the last {hours}, its budget is {budget.tokens:,}"
    elif budget.cost is not None and (spent["cost"] or 0.0) >= budget.cost:
        over = f"${spent['cost']:.4f} in the last {hours}, its budget is ${budget.cost:.4f}"
    else:
        return output_data
    return {
        "verdict": "reject",
        "reason": f"agent {agent['name']} has spent {over} (aoscb.json budgets.{key}): "
        "no more model calls until the window moves on or an operator raises the budget",
    }


async def doctor(caller: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """What is wrong with the budgets (``aos doctor``, ``aos skill show aos-budget``)."""
    BUDGETS.refresh()
    return [p for p in (BUDGETS.window_problem, *BUDGETS.problems) if p]


@define_service
def service() -> dict[str, Any]:
    return {
        "hooks": {"compute.before": compute_before},
        "methods": {"doctor": doctor},
        "start": start,
    }
