"""Nodes: the daemons sharing one database, as the ``nodes`` table records them.

Every daemon registers its node (id, host, pid, version, labels) when it
starts and heartbeats while it runs; the database's clock stamps each
heartbeat, so the nodes' own clocks never matter. A node whose heartbeat is
older than the node TTL (``AOS_NODE_TTL`` seconds) is dead: the cluster
(:mod:`aos.cluster`) recovers its sessions and re-queues what it had claimed.

SQLite serves one node: the daemon holds an exclusive lock on a file beside
the database for its whole life (:func:`lock_sqlite`), so a second daemon on
the same file is refused with one sentence; the operating system drops the
lock when the holder dies, even by ``kill -9``.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Literal

import msgspec

from aos.config import ConfigError

NodeState = Literal["running", "stopping", "stopped", "dead"]
"""``stopping``: claims no new dispatch; ``dead``: missed its heartbeats, recovered by others."""

NODE_TTL = 10.0
"""Seconds without a heartbeat after which a node is dead (``AOS_NODE_TTL``)."""
CLAIM_INTERVAL = 1.0
"""Seconds between a node's looks for queued dispatches and dead nodes when no
notification woke it (``AOS_CLAIM_INTERVAL``): the backstop behind LISTEN/NOTIFY."""


class ServiceState(msgspec.Struct, frozen=True):
    skill: str
    state: str


class NodeRecord(msgspec.Struct, kw_only=True):
    """One daemon of the cluster."""

    id: str
    host: str
    pid: int
    version: str
    labels: list[str] = msgspec.field(default_factory=list)
    """What ``placement: label:<l>`` matches (``AOS_NODE_LABELS``)."""
    services: list[ServiceState] = msgspec.field(default_factory=list)
    """This node's skill services and their states, as of its last heartbeat."""
    state: NodeState = "running"
    started_at: float = 0.0
    heartbeat_at: float = 0.0
    age: float = 0.0
    """Seconds since the last heartbeat, by the database's clock, when read."""

    def alive(self, ttl: float) -> bool:
        return self.state in ("running", "stopping") and self.age <= ttl


def setting(getenv: Callable[[str], str | None], name: str, default: float) -> float:
    """A positive number of seconds from the environment (``getenv(name)``)."""
    raw = getenv(name)
    if not raw:
        return default
    try:
        value = float(str(raw))
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be a positive number of seconds, not {raw!r}")
    return value


def labels_of(raw: str | None) -> list[str]:
    """``AOS_NODE_LABELS`` (a comma list) as labels."""
    return [label.strip() for label in (raw or "").split(",") if label.strip()]


class SQLiteInUse(Exception):
    """Another daemon serves this SQLite database."""


def lock_sqlite(database: Path) -> IO[str]:
    """Hold ``<database>.node.lock`` exclusively for as long as the returned file
    stays open; :class:`SQLiteInUse` when another daemon holds it."""
    path = database.with_name(database.name + ".node.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the daemon's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise SQLiteInUse(
            f"the SQLite database {database} is in use by another daemon (pid {holder}): "
            "SQLite serves one node; stop that daemon, or put every node on one "
            "PostgreSQL database (AOS_DB_URL=postgresql://...) to run several"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
