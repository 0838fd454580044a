"""Durability: every seq a process was told about survives SIGKILL of that process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio

from aos.facts import HistoryEntry, UserMessage
from aos.store import open_store

WORKER = Path(__file__).with_name("append_worker.py")


def test_reported_appends_survive_sigkill(db_url: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), db_url, "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    reported: dict[int, str] = {}
    try:
        header = proc.stdout.readline()
        assert header.startswith("session "), header + (proc.stderr.read() if proc.stderr else "")
        session_id = header.split()[1]
        while len(reported) < 400:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "worker died"
            seq, text = line.rstrip("\n").split("\t")
            reported[int(seq)] = text
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: its writers are still appending
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    async def reopen_and_read() -> list[HistoryEntry]:
        store = await open_store(db_url)
        try:
            return await store.read_history(session_id)
        finally:
            await store.close()

    history = {e.seq: e.fact for e in anyio.run(reopen_and_read)}
    for seq, text in reported.items():
        assert history.get(seq) == UserMessage(text=text), f"seq {seq} lost or changed"
    # what was stored has no gaps, and it may hold appends committed but not yet reported
    assert sorted(history) == list(range(1, len(history) + 1))
    assert len(history) >= len(reported)
