"""MicroBatcher: no wait when idle, natural batching under load, failures and cancellation."""

from __future__ import annotations

import asyncio

import pytest

from samo_serve.core.micro_batcher import MicroBatcher


class Downstream:
    """Records the batches it gets; each run blocks until released (to hold batches in flight)."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[list[list[str]]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail_on = fail_on

    async def run(self, calls: list[list[str]]) -> list[list[str]]:
        self.batches.append(calls)
        await self.release.wait()
        if self.fail_on and any(self.fail_on in call for call in calls):
            raise RuntimeError("downstream failed")
        return [[t.upper() for t in call] for call in calls]


async def test_a_lone_call_runs_at_once() -> None:
    down = Downstream()
    batcher = MicroBatcher(down.run, max_size=8)
    assert await asyncio.wait_for(batcher.submit(["a"]), 1) == ["A"]
    assert down.batches == [[["a"]]]


async def test_calls_queue_while_batches_are_in_flight_then_leave_together() -> None:
    down = Downstream()
    down.release.clear()
    batcher = MicroBatcher(down.run, max_size=8, max_in_flight=1)
    first = asyncio.ensure_future(batcher.submit(["a"]))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(batcher.submit([t])) for t in "bcd"]
    await asyncio.sleep(0)
    assert down.batches == [[["a"]]]  # the others wait for the running batch
    down.release.set()
    assert await first == ["A"]
    assert [await r for r in rest] == [["B"], ["C"], ["D"]]
    assert down.batches[1] == [["b"], ["c"], ["d"]]
    assert (batcher.batches, batcher.items) == (2, 4)


async def test_batches_respect_max_size_counted_in_items() -> None:
    down = Downstream()
    down.release.clear()
    batcher = MicroBatcher(down.run, max_size=3, max_in_flight=1)
    blocker = asyncio.ensure_future(batcher.submit(["x"]))
    await asyncio.sleep(0)
    calls = [asyncio.ensure_future(batcher.submit(c)) for c in (["a", "b"], ["c", "d"], ["e"], ["f", "g", "h", "i"])]
    await asyncio.sleep(0)
    down.release.set()
    await asyncio.gather(blocker, *calls)
    sizes = [sum(len(c) for c in batch) for batch in down.batches[1:]]
    assert sizes == [2, 3, 4]  # ["a","b"] | ["c","d"],["e"] | the oversized call alone


async def test_a_failure_reaches_every_caller_of_that_batch_only() -> None:
    down = Downstream(fail_on="boom")
    down.release.clear()
    batcher = MicroBatcher(down.run, max_size=8, max_in_flight=1)
    ok = asyncio.ensure_future(batcher.submit(["fine"]))
    await asyncio.sleep(0)
    bad = [asyncio.ensure_future(batcher.submit(c)) for c in (["boom"], ["other"])]
    await asyncio.sleep(0)
    down.release.set()
    assert await ok == ["FINE"]
    for b in bad:
        with pytest.raises(RuntimeError, match="downstream failed"):
            await b
    assert await batcher.submit(["after"]) == ["AFTER"]  # the batcher recovers


async def test_a_cancelled_waiting_call_is_dropped() -> None:
    down = Downstream()
    down.release.clear()
    batcher = MicroBatcher(down.run, max_size=8, max_in_flight=1)
    first = asyncio.ensure_future(batcher.submit(["a"]))
    await asyncio.sleep(0)
    gone = asyncio.ensure_future(batcher.submit(["gone"]))
    kept = asyncio.ensure_future(batcher.submit(["kept"]))
    await asyncio.sleep(0)
    gone.cancel()
    down.release.set()
    await first
    assert await kept == ["KEPT"]
    assert down.batches[1] == [["kept"]]


@pytest.mark.parametrize(("max_size", "max_in_flight"), [(0, 1), (1, 0)], ids=["size-0", "in-flight-0"])
def test_bad_limits_are_refused(max_size: int, max_in_flight: int) -> None:
    async def run(calls: list[list[str]]) -> list[list[str]]:
        return calls

    with pytest.raises(ValueError, match=">= 1"):
        MicroBatcher(run, max_size=max_size, max_in_flight=max_in_flight)
