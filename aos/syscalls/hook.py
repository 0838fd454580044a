"""``hook.list``: every hook with its implementations in call order."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from aos.principals import Principal
from aos.syscalls._table import (
    NoParams,
    syscall,
)

if TYPE_CHECKING:
    from aos.kernel import Kernel


class HookImplInfo(msgspec.Struct):
    owner: str
    where: str
    function: str
    failure: str
    timeout: float
    tryfirst: bool
    trylast: bool
    system: bool
    """Its owner is a system skill: it applies to every agent, not only where active."""
    calls: int
    """Calls since the node started (failures and timeouts included)."""
    p50_ms: float | None
    """Median latency of its last calls (up to 1,024), None before the first."""
    p99_ms: float | None


class HookInfo(msgspec.Struct):
    hook: str
    kind: str
    required: bool
    implementations: list[HookImplInfo]


@syscall(
    "hook.list",
    scope="hook.read",
    doc="Every hook with its kind and implementations in call order.",
)
async def hook_list(kernel: Kernel, principal: Principal, params: NoParams) -> list[HookInfo]:
    return msgspec.convert(kernel.hooks.describe(), list[HookInfo])
