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
        self, flush: Flush[T, R], *, max_batch: int = 1000, lazy_delay: float = 0.05
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._lazy_delay = lazy_delay
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    async def submit(self, item: T, *, lazy: bool = False) -> R:
        """Write ``item`` in the next transaction. ``lazy`` items (records nobody
        waits on) do not start a transaction of their own at once: they ride along
        with the next eager write, or go after ``lazy_delay`` seconds."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if self._task is None:
            if not lazy:
                self._start()
            elif self._timer is None:
                self._timer = loop.call_later(self._lazy_delay, self._start)
        return await future

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
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                try:
                    results = await self._flush([item for item, _ in batch])
                except Exception as exc:  # the whole transaction failed
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # the writer was cancelled; its write still happened
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._task = None
