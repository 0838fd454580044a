"""The node's small state files (JSON under the state dir): read leniently,
replaced atomically.

A file that cannot be read or decoded is reported, not fatal: its owner starts
empty and rewrites it at its next change. A write goes to a staged file that is
fsynced and renamed over the old one, so a crash leaves the old or the new file,
never half of one; files are 0600 (they may name tokens' grants).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

import msgspec

T = TypeVar("T")


def read_state(path: Path, kind: type[T], what: str) -> tuple[T | None, str | None]:
    """``(value, None)``; ``(None, None)`` when there is no file yet; ``(None,
    problem)`` when there is one that cannot be used (``what`` names it)."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=kind), None
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror}"
    except msgspec.DecodeError as exc:
        return None, f"{path} is not a valid {what} ({exc}): it is ignored"


def write_state(path: Path, value: object) -> None:
    """Replace ``path`` with ``value`` as JSON, atomically (OSError when it cannot)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        out.write(msgspec.json.encode(value))
        out.flush()
        os.fsync(out.fileno())
    os.replace(staged, path)
