"""Who is on the other end: a socket peer's credentials and a process's ancestry.

The kernel decides what a connection may do from what Linux says of the peer
(``SO_PEERCRED``: pid, uid and gid, translated into the daemon's PID namespace)
and from ``/proc``: which processes a pid descends from, and whether it lives in
another PID namespace (a sandbox). Nothing here trusts what the peer says.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from typing import NamedTuple

_PEERCRED = struct.Struct("3i")


class Credentials(NamedTuple):
    pid: int
    """0 when the peer is in a PID namespace the daemon cannot see into."""
    uid: int
    gid: int


def peer_credentials(sock: socket.socket | None) -> Credentials | None:
    """The credentials of a connected Unix socket's peer (None if unknown)."""
    if sock is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    except OSError:
        return None
    return Credentials(*_PEERCRED.unpack(raw))


def parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1])


def lineage(pid: int) -> Iterator[int]:
    """``pid``, then its parent, grandparent... up to (not including) pid 0."""
    seen: set[int] = set()
    current: int | None = pid
    while current and current not in seen:
        seen.add(current)
        yield current
        current = parent_of(current)


def descends_from(pid: int, ancestors: set[int] | frozenset[int]) -> bool:
    """Whether ``pid`` is one of ``ancestors`` or descends from one of them."""
    return bool(ancestors) and any(p in ancestors for p in lineage(pid))


def _namespace(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def in_other_pid_namespace(pid: int) -> bool:
    """Whether ``pid`` lives in a PID namespace other than the daemon's (a sandbox)."""
    theirs = _namespace(pid)
    return theirs is not None and theirs != _namespace("self")
