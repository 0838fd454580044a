"""Kernel events for subscribers (``events.subscribe``): a small in-process bus.

Topics: ``history.append`` (a fact was appended), ``stream`` (the model's text
and reasoning as they arrive, token by token, before the assistant fact),
``skill`` (a skill was added, changed or removed), ``service`` (a service
changed state). Publishing never
blocks and never raises: a subscriber that fails is dropped.

On a cluster, events of sessions running on other nodes are published here
too, ``relayed`` (:mod:`aos.cluster`); a ``local_only`` subscription (the
relay's own) does not receive them.
"""

from __future__ import annotations

import contextvars
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TOPICS = ("history.append", "stream", "skill", "service")
SESSION_TOPICS = frozenset({"history.append", "stream"})

Deliver = Callable[[str, Any], None]


@dataclass
class Subscription:
    id: int
    deliver: Deliver
    topics: frozenset[str]
    session_id: str | None = None
    agent_ids: frozenset[str] | None = None
    """When set, only events of these agents (an agent principal's subtree)."""
    local_only: bool = False
    """Only events of this node (not those relayed from others)."""

    def wants(self, topic: str, data: Any, relayed: bool = False) -> bool:
        if topic not in self.topics or (relayed and self.local_only):
            return False
        if topic not in SESSION_TOPICS:
            return self.agent_ids is None
        if self.session_id is not None and data.get("session_id") != self.session_id:
            return False
        return self.agent_ids is None or data.get("agent_id") in self.agent_ids


@dataclass
class EventBus:
    _subscriptions: dict[int, Subscription] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def subscribe(
        self,
        deliver: Deliver,
        *,
        topics: frozenset[str] = frozenset(TOPICS),
        session_id: str | None = None,
        agent_ids: frozenset[str] | None = None,
        local_only: bool = False,
    ) -> Subscription:
        sub = Subscription(next(self._ids), deliver, topics, session_id, agent_ids, local_only)
        self._subscriptions[sub.id] = sub
        return sub

    def unsubscribe(self, subscription_id: int) -> None:
        self._subscriptions.pop(subscription_id, None)

    def has_subscribers(self) -> bool:
        return bool(self._subscriptions)

    def wanted(self, topic: str, data: Any) -> bool:
        """Whether a subscriber would receive a relayed event like this one."""
        return any(sub.wants(topic, data, True) for sub in self._subscriptions.values())

    def publish(self, topic: str, data: Any, *, relayed: bool = False) -> None:
        for sub in list(self._subscriptions.values()):
            if sub.wants(topic, data, relayed):
                try:
                    sub.deliver(topic, data)
                except Exception:
                    self.unsubscribe(sub.id)


@dataclass
class Stream:
    """Where a connection wants a subscription's events (set by the transport)."""

    deliver: Callable[[int, str, Any], None]
    """``deliver(subscription_id, topic, data)``."""
    on_close: Callable[[Callable[[], None]], None]
    """Register a cleanup to run when the connection ends."""


current_stream: contextvars.ContextVar[Stream | None] = contextvars.ContextVar(
    "aos_current_stream", default=None
)
