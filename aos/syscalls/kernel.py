"""``kernel.status``, ``kernel.config``, ``kernel.shutdown``: the node."""

from __future__ import annotations

import os
import platform
import time
from typing import TYPE_CHECKING, Any

import msgspec

from aos import __version__
from aos.cluster import ClusterStatus
from aos.config import mask_url
from aos.principals import Principal
from aos.sandbox import Isolation
from aos.syscalls._table import (
    NoParams,
    syscall,
)

if TYPE_CHECKING:
    from aos.kernel import Kernel


class DatabaseStatus(msgspec.Struct):
    backend: str
    url: str
    schema_version: int


class PluginStatus(msgspec.Struct, omit_defaults=True):
    name: str
    value: str
    distribution: str | None = None
    error: str | None = None


class KernelStatus(msgspec.Struct):
    node: str
    version: str
    pid: int
    python: str
    started_at: float
    uptime: float
    database: DatabaseStatus
    plugins: list[PluginStatus]
    skills: dict[str, int]
    """How many skills are active, broken and shadowed."""
    services: list[dict[str, Any]]
    """Each service: skill, state, pid, restarts, last_error (when a daemon runs them)."""
    isolation: Isolation
    """What protects the agents' commands (aos/sandbox.py)."""
    project: str
    """The directory the daemon serves: its skills/, aoscb.json and .env are this one's."""
    websocket: str | None
    """The WebSocket face's URL, when the node listens (``AOS_WS_LISTEN``)."""
    config_file: str | None
    """The aoscb.json the node read, if any (skills read their own keys from it)."""
    cluster: ClusterStatus
    """The nodes on this node's database, alive or not, and the sessions each runs."""


@syscall(
    "kernel.status", scope="kernel.read", doc="The node: version, pid, uptime, database, plugins."
)
async def kernel_status(kernel: Kernel, principal: Principal, params: NoParams) -> KernelStatus:
    return KernelStatus(
        node=kernel.node_id,
        version=__version__,
        pid=os.getpid(),
        python=platform.python_version(),
        started_at=kernel.started_at,
        uptime=time.time() - kernel.started_at,
        cluster=await kernel.cluster.status(),
        database=DatabaseStatus(
            backend=kernel.store.backend,
            url=kernel.store.url,
            schema_version=await kernel.store.schema_version(),
        ),
        plugins=[
            PluginStatus(p.name, p.value, p.distribution, p.error) for p in kernel.plugin_loads
        ],
        skills={
            status: sum(1 for s in kernel.skills.all() if s.status == status)
            for status in ("active", "broken", "shadowed")
        },
        services=kernel.services.status() if kernel.services else [],
        isolation=kernel.sandboxes.isolation,
        project=str(kernel.config.project_dir),
        websocket=kernel.ws_url,
        config_file=str(kernel.config.aoscb_file) if kernel.config.aoscb_file else None,
    )


class KernelConfig(msgspec.Struct):
    aoscb: dict[str, Any]
    db_url: str
    paths: dict[str, str]
    sources: dict[str, str]


@syscall(
    "kernel.config", scope="kernel.admin", doc="The resolved configuration and each value's source."
)
async def kernel_config(kernel: Kernel, principal: Principal, params: NoParams) -> KernelConfig:
    config = kernel.config
    return KernelConfig(
        aoscb=msgspec.to_builtins(config.aoscb),
        db_url=mask_url(config.db_url),
        paths={k: str(v) for k, v in vars(config.paths).items()},
        sources=config.sources,
    )


class ShutdownParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: str = "requested"


class ShuttingDown(msgspec.Struct):
    node: str
    reason: str


@syscall(
    "kernel.shutdown", scope="kernel.admin", doc="Stop the node cleanly (services, sockets, store)."
)
async def kernel_shutdown(
    kernel: Kernel, principal: Principal, params: ShutdownParams
) -> ShuttingDown:
    kernel.shutdown_reason = f"{params.reason} (by {principal.name})"
    kernel.shutdown_requested.set()
    return ShuttingDown(node=kernel.node_id, reason=kernel.shutdown_reason)
