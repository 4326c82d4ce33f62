"""A micro-batcher that waits only while the downstream is busy (no timer).

``@serve.batch`` waits ``batch_wait_timeout_s`` for company even when a request is alone, so a fixed
window costs every request at low load, and no window at all sends tiny batches under load. This batcher
starts a batch at once whenever fewer than ``max_in_flight`` batches are running; otherwise calls queue
and leave together, up to ``max_size`` items, as soon as a running batch returns. Batches grow with load
by themselves, and a lone request never waits.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["MicroBatcher"]

C = TypeVar("C", bound=Sequence[object])  # one call: a sequence of items (texts)
R = TypeVar("R")  # one call's result


class MicroBatcher(Generic[C, R]):
    """Merges concurrent calls into batches of at most ``max_size`` items (a larger call goes alone).

    Args:
        run: runs one batch: a list of calls -> one result per call, in order.
        max_size: most items (summed call lengths) per batch.
        max_in_flight: batches running at once; 2 lets one batch fill while another is downstream.
    """

    def __init__(
        self,
        run: Callable[[list[C]], Awaitable[list[R]]],
        max_size: int,
        max_in_flight: int = 2,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        if max_size < 1 or max_in_flight < 1:
            raise ValueError("max_size and max_in_flight must be >= 1")
        self._run = run
        self.max_size = max_size
        self.max_in_flight = max_in_flight
        self._pending: deque[tuple[C, asyncio.Future[R], float]] = deque()
        #: called per batch with (items, seconds its oldest call waited): for metrics
        self.on_batch = on_batch
        self._in_flight = 0
        self.batches = 0  # counters for stats: batches run and items in them
        self.items = 0

    async def submit(self, call: C) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((call, future, time.perf_counter()))
        self._dispatch()
        return await future

    def _take(self) -> list[tuple[C, asyncio.Future[R], float]]:
        batch: list[tuple[C, asyncio.Future[R], float]] = []
        size = 0
        while self._pending:
            call, future, _ = self._pending[0]
            if future.done():  # cancelled while waiting (client gone)
                self._pending.popleft()
                continue
            if batch and size + len(call) > self.max_size:
                break
            batch.append(self._pending.popleft())
            size += len(call)
        return batch

    def _dispatch(self) -> None:
        while self._in_flight < self.max_in_flight:
            batch = self._take()
            if not batch:
                return
            self._in_flight += 1
            self.batches += 1
            items = sum(len(call) for call, _, _ in batch)
            self.items += items
            if self.on_batch is not None:
                self.on_batch(items, time.perf_counter() - batch[0][2])
            asyncio.get_running_loop().create_task(self._execute(batch))

    async def _execute(self, batch: list[tuple[C, asyncio.Future[R], float]]) -> None:
        try:
            results = await self._run([call for call, _, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} calls")
            for (_, future, _), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        except Exception as exc:  # every caller of the batch gets the failure
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
        finally:
            self._in_flight -= 1
            self._dispatch()
