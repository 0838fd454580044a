"""aos-sdk: write AgentOS skill services and call syscalls.

The wire protocol's msgspec structs live here (:mod:`aos_sdk.protocol`) and the
kernel imports them, so there is exactly one definition of every frame.

Names are imported on first use: a skill script that only needs
:func:`call` (:mod:`aos_sdk.blocking`) does not load asyncio or msgspec.
"""

from __future__ import annotations

__version__ = "0.1.0"

TYPE_CHECKING = False
if TYPE_CHECKING:  # for type checkers; at run time each name loads on first use
    from aos_sdk.blocking import call
    from aos_sdk.client import Client
    from aos_sdk.errors import ConnectionClosed, FrameTooLarge, NotConnected, SyscallFailed
    from aos_sdk.service import MethodError, define_service, leave, syscall

_HOMES = {
    "call": "aos_sdk.blocking",
    "Client": "aos_sdk.client",
    "ConnectionClosed": "aos_sdk.errors",
    "FrameTooLarge": "aos_sdk.errors",
    "NotConnected": "aos_sdk.errors",
    "SyscallFailed": "aos_sdk.errors",
    "MethodError": "aos_sdk.service",
    "define_service": "aos_sdk.service",
    "leave": "aos_sdk.service",
    "syscall": "aos_sdk.service",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'aos_sdk' has no attribute {name!r}")
    value = getattr(__import__(home, fromlist=[name]), name)  # (importlib: 0.6 ms more)
    globals()[name] = value
    return value


__all__ = [
    "Client",
    "ConnectionClosed",
    "FrameTooLarge",
    "MethodError",
    "NotConnected",
    "SyscallFailed",
    "__version__",
    "call",
    "define_service",
    "leave",
    "syscall",
]
