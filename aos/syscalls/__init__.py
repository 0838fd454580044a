"""The syscall table: the only legal kernel boundary.

Each syscall is registered once with msgspec-typed params and result, the scope
it requires and a doc line. The CLI, services and skill scripts all call the
same table. A syscall is registered only when it works: the table is the truth
of what the kernel can do (``docs/specs/aos-syscall.md`` documents it).

``_table`` holds the table and the checks every call passes; one module per
object holds its syscalls: ``kernel``, ``agent``, ``session``, ``skill``,
``hook``, ``log``, ``events``, ``service``. Importing this package registers them all.
"""

from __future__ import annotations

from aos.syscalls import agent, events, hook, kernel, log, service, session, skill
from aos.syscalls._table import ERROR_CODES, SYSCALLS, Syscall, SyscallError, call

__all__ = ["ERROR_CODES", "SYSCALLS", "Syscall", "SyscallError", "call"]
_OBJECTS = (agent, events, hook, kernel, log, service, session, skill)
"""The modules whose import registers their syscalls."""
