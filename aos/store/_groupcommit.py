"""Group commit: one transaction serves every write that arrived meanwhile.

Writers call :meth:`GroupCommit.submit` and wait for their own result. A single
flusher takes everything pending, hands it to the backend's ``flush`` (one
transaction), and resolves each writer's future with its own result or error.
While a flush is in flight new writes queue up, so the batch grows with the
load and a lone writer pays for one commit only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Flush = Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]]


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        flush: Flush[T, R],
        *,
        max_batch: int = 1000,
        lazy_delay: float = 0.05,
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._lazy_delay = lazy_delay
        self._pending: list[tuple[Sequence[T], list[asyncio.Future[R]]]] = []
        """Writes waiting, by writer: a writer's items go in one transaction."""
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def submit(self, item: T, *, lazy: bool = False) -> R:
        """Write ``item`` in the next transaction. ``lazy`` items (records nobody
        waits on) do not start a transaction of their own at once: they ride along
        with the next eager write, or go after ``lazy_delay`` seconds."""
        [result] = await self.submit_all([item], lazy=lazy)
        return result

    async def submit_all(self, items: Sequence[T], *, lazy: bool = False) -> list[R]:
        """Write ``items`` in order, together in the next transaction."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[R]] = [loop.create_future() for _ in items]
        self._pending.append((items, futures))
        if self._task is None:
            if lazy:
                if self._timer is None:
                    self._timer = loop.call_later(self._lazy_delay, self._start)
            else:
                self._start()
        if len(futures) == 1:  # the common case, without a gathering future
            return [await futures[0]]
        return list(await asyncio.gather(*futures))

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is None and self._pending:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def drain(self) -> None:
        """Wait until every write submitted so far is flushed."""
        self._start()
        while self._task is not None:
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        try:
            # One more turn of the loop first: under load a turn is long and the
            # writers of the next one join this batch (fewer commits, each an fsync);
            # a lone writer pays microseconds for it.
            await asyncio.sleep(0)
            await self._flush_pending()
        finally:
            self._task = None

    async def _flush_pending(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._pending:
            # Whole writers (one writer's items are never split): the first, then more
            # while the batch holds fewer than max_batch items.
            taken, size = 0, 0
            while taken < len(self._pending) and (not taken or size < self._max_batch):
                size += len(self._pending[taken][0])
                taken += 1
            batch = self._pending[:taken]
            del self._pending[:taken]
            items = [item for writer, _ in batch for item in writer]
            futures = [future for _, writer_futures in batch for future in writer_futures]
            try:
                results = await self._flush(items)
            except Exception as exc:  # the whole transaction failed
                results = [exc] * len(items)
            for future, result in zip(futures, results, strict=True):
                if future.done():  # the writer was cancelled; its write still happened
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
