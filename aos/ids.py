"""Identifiers: short, prefixed, sortable by creation time."""

from __future__ import annotations

import os
import time


def new_id(prefix: str) -> str:
    """``<prefix>_<12 hex of milliseconds><8 hex random>``: unique and time-ordered."""
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{os.urandom(4).hex()}"
