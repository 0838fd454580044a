"""The SDK's exceptions, in a module that imports nothing (scripts load it fast)."""

from __future__ import annotations


class SyscallFailed(Exception):
    """The kernel refused or failed a syscall; ``code`` says how (denied, not_found...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class NotConnected(Exception):
    """No daemon answered at the socket."""


class ConnectionClosed(Exception):
    """The connection ended before the answer arrived (the call's outcome is unknown)."""
