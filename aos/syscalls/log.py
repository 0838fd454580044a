"""``log.read``: RuntimeLog records."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aos.principals import Principal
from aos.runtimelog import LogEntry, LogQuery
from aos.syscalls._table import (
    SyscallError,
    session_for,
    syscall,
)

if TYPE_CHECKING:
    from aos.kernel import Kernel


@syscall("log.read", scope="log.read", doc="RuntimeLog records by session, agent, kind and time.")
async def log_read(kernel: Kernel, principal: Principal, params: LogQuery) -> list[LogEntry]:
    if principal.kind == "agent":
        if params.session_id is None:
            raise SyscallError(
                "denied",
                f"{principal.name} may read the log of its own sessions only: name session_id",
            )
        await session_for(kernel, principal, params.session_id)
    await kernel.flush_logs()  # records are written lazily: a reader sees those before it
    return await kernel.store.read_log(params)
