"""aos-sdk: write AgentOS skill services and call syscalls.

The wire protocol's msgspec structs live here (:mod:`aos_sdk.protocol`) and the
kernel imports them, so there is exactly one definition of every frame.
"""

__version__ = "0.1.0"

from aos_sdk.client import Client, NotConnected, SyscallFailed, call
from aos_sdk.peer import ConnectionClosed
from aos_sdk.service import MethodError, define_service, syscall

__all__ = [
    "Client",
    "ConnectionClosed",
    "MethodError",
    "NotConnected",
    "SyscallFailed",
    "__version__",
    "call",
    "define_service",
    "syscall",
]
