"""Group commit on its own: one flush serves every write pending, a writer's
items are never split, failures reach every writer of the batch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from aos.store._groupcommit import GroupCommit

pytestmark = pytest.mark.anyio


class Recorder:
    """A flush that records its batches (and fails when told to)."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.fail = False

    async def __call__(self, items: Sequence[str]) -> list[str | BaseException]:
        await asyncio.sleep(0)  # a real flush waits for its database
        self.batches.append(list(items))
        if self.fail:
            raise OSError("disk on fire")
        return [item.upper() for item in items]


async def test_writers_wait_together_and_are_never_split() -> None:
    flush = Recorder()
    commit: GroupCommit[str, str] = GroupCommit(flush, max_batch=2)
    results = await asyncio.gather(
        commit.submit_all(["a", "b", "c"]), commit.submit("d"), commit.submit_all(["e", "f"])
    )
    assert results == [["A", "B", "C"], "D", ["E", "F"]]
    writers = [["a", "b", "c"], ["d"], ["e", "f"]]
    for batch in flush.batches:  # each batch is whole writers, in order
        while batch:
            writer = writers.pop(0)
            assert batch[: len(writer)] == writer
            del batch[: len(writer)]
    assert writers == []


async def test_a_failed_flush_fails_every_writer_of_it() -> None:
    flush = Recorder()
    flush.fail = True
    commit: GroupCommit[str, str] = GroupCommit(flush)
    results = await asyncio.gather(
        commit.submit_all(["a", "b"]), commit.submit("c"), return_exceptions=True
    )
    assert [type(r) for r in results] == [OSError, OSError]
    assert await commit.submit_all([]) == []
