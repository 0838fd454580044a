"""aos-sdk: write AgentOS skill services and call syscalls.

The wire protocol's msgspec structs live here and the kernel imports them, so
there is exactly one definition of every frame. The protocol, ``define_service``
and the syscall client arrive with the daemon and the wire
(see docs/specs/aos-service.md).
"""

__version__ = "0.1.0"
