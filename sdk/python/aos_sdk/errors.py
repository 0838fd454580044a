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


MAX_FRAME = 16 * 1024 * 1024
"""Bytes a frame's body may have, on either side of any connection."""


class FrameTooLarge(ValueError):
    """A message too big for one frame (16 MiB): refused before it is sent."""

    @classmethod
    def of(cls, kind: str, size: int) -> FrameTooLarge:
        return cls(
            f"a {kind} frame of {size:,} bytes is over the limit of {MAX_FRAME:,} bytes "
            "(16 MiB): send less"
        )
