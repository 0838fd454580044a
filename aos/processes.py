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


class ProcessIds(NamedTuple):
    ppid: int
    pgrp: int
    session: int


def ids_of(pid: int) -> ProcessIds | None:
    """A process's parent, process group and session (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return ProcessIds(int(fields[1]), int(fields[2]), int(fields[3]))


def lineage(pid: int) -> Iterator[ProcessIds]:
    """The ids of ``pid``, then of its parent, grandparent... (up to pid 1)."""
    seen: set[int] = set()
    current = pid
    while current > 0 and current not in seen:
        seen.add(current)
        ids = ids_of(current)
        if ids is None:
            return
        yield ids
        current = ids.ppid


def descends_from(
    pid: int, ancestors: frozenset[int], groups: frozenset[int] = frozenset()
) -> bool:
    """Whether ``pid`` is one of ``ancestors``, descends from one, is in a session
    one of them leads, or in one of the process ``groups``."""
    if pid in ancestors:
        return True
    return any(
        ids.ppid in ancestors or ids.session in ancestors or ids.pgrp in groups
        for ids in lineage(pid)
    )


def _namespace(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def in_other_pid_namespace(pid: int) -> bool:
    """Whether ``pid`` lives in a PID namespace other than the daemon's (a sandbox)."""
    theirs = _namespace(pid)
    return theirs is not None and theirs != _namespace("self")
