"""The request-log writer: a bounded queue drained in batches by one background task.

``enqueue`` never waits and never touches the database: the request path only appends to a deque.
The task writes a batch every ``flush_interval_ms`` or as soon as ``flush_rows`` rows are waiting.
A failed write is retried with exponential backoff; rows that arrive while the queue is full go to a
spill file and are replayed once a write succeeds again. On shutdown the queue is flushed, and
whatever the database cannot take then is spilled, so a graceful stop loses no row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from samo_serve.observability.tracing import Tracing
from samo_serve.settings import RequestLogSettings
from samo_serve.storage.request_log.rows import LogRow
from samo_serve.storage.request_log.spill import SpillFiles
from samo_serve.storage.request_log.store import LogStore, RejectedRows

__all__ = ["LogWriter", "WriterCounters"]

log = logging.getLogger(__name__)

_FIRST_BACKOFF_S = 0.1
_TRACED_PER_WRITE = 32  # traced requests a write's span links to


@dataclass
class WriterCounters:
    queued: int = 0  # rows handed to enqueue()
    written: int = 0  # rows the database acknowledged (from the queue or from spill files)
    spilled: int = 0  # rows written to a spill file
    replayed: int = 0  # rows read back from spill files and stored
    rejected: int = 0  # rows the database refused for their content: kept in spill/rejected/
    dropped: int = 0  # rows lost: a spill file could not be written, or a line in one was unreadable
    failed_writes: int = 0


class LogWriter:
    def __init__(self, store: LogStore, settings: RequestLogSettings, spill: SpillFiles) -> None:
        self.store = store
        self.settings = settings
        self.spill = spill
        self.counters = WriterCounters()
        self.last_error: str | None = None
        self.database_up: bool | None = None  # unknown until the first write
        self._queue: deque[LogRow] = deque()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._spill_waiting = True  # look for leftovers of an earlier run first
        self._in_flight = 0
        self._next_maintenance = 0.0  # partitions ahead and retention: at start, then every interval
        self.maintenance: dict[str, int] = {}
        #: the next write's span (``log.write``) is in the trace of the first traced request whose rows it
        #: carries, linked to the others (the service passes its tracing)
        self.tracing = Tracing.off()
        self._traced: list[Any] = []

    @property
    def pending(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="request-log-writer")

    def enqueue(self, rows: list[LogRow]) -> None:
        self.counters.queued += len(rows)
        traced = self.tracing.enabled and len(self._traced) < _TRACED_PER_WRITE
        if traced and (parent := self.tracing.current_parent()).trace_flags.sampled:
            self._traced.append(parent)
        room = self.settings.queue_max_rows - len(self._queue)
        if room < len(rows):
            self._spill(rows[max(room, 0) :])
            rows = rows[: max(room, 0)]
        self._queue.extend(rows)
        if len(self._queue) >= self.settings.flush_rows:
            self._wake.set()

    def _spill(self, rows: list[LogRow], rejected: bool = False) -> None:
        if not rows:
            return
        try:
            self.spill.append(rows, rejected=rejected)
        except OSError as exc:
            self.counters.dropped += len(rows)
            log.error("could not spill %d request-log rows: %s", len(rows), exc)
            return
        if rejected:
            self.counters.rejected += len(rows)
        else:
            self.counters.spilled += len(rows)
            self._spill_waiting = True

    async def _run(self) -> None:
        interval_s = self.settings.flush_interval_ms / 1000
        backoff_s = 0.0
        while True:
            if self._stopping and (not self._queue or backoff_s):
                # Stopping, and the queue is empty or the database is failing: keep what is left on disk.
                self._spill(list(self._queue))
                self._queue.clear()
                self.spill.rotate()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff_s or interval_s)
            self._wake.clear()
            ok = await self._write_queue()
            if ok and self._spill_waiting:
                ok = await self._replay()
            if ok and asyncio.get_running_loop().time() >= self._next_maintenance:
                await self._maintain()
            backoff_s = 0.0 if ok else min(max(backoff_s * 2, _FIRST_BACKOFF_S), self.settings.retry_max_backoff_s)

    async def _write_queue(self) -> bool:
        """Write queued rows in batches until the queue is empty or a write fails."""
        while self._queue:
            n = min(len(self._queue), self.settings.flush_rows)
            batch = [self._queue.popleft() for _ in range(n)]
            self._in_flight = len(batch)
            traced, self._traced = self._traced, []
            try:
                with self.tracing.linked("log.write", traced, **{"samo.rows": n}):
                    stored = await self._insert(batch)
            except asyncio.CancelledError:  # shutdown timed out: the batch goes back, to be spilled
                self._queue.extendleft(reversed(batch))
                raise
            finally:
                self._in_flight = 0
            if stored is None:
                self._queue.extendleft(reversed(batch))  # oldest first, as they came
                excess = len(self._queue) - self.settings.queue_max_rows
                if excess > 0:
                    self._spill([self._queue.pop() for _ in range(excess)][::-1])
                return False
            self.counters.written += stored
        return True

    async def _insert(self, rows: list[LogRow]) -> int | None:
        """How many rows were stored (the rest set aside as rejected), or None: retry them later."""
        try:
            await self.store.insert(rows)
        except RejectedRows as exc:
            if len(rows) > 1:  # find the offending rows by halves; store the rest
                half = len(rows) // 2
                first = await self._insert(rows[:half])
                second = await self._insert(rows[half:]) if first is not None else None
                return None if second is None or first is None else first + second
            log.error("database refused a request-log row (kept in spill/rejected): %s", exc)
            self._spill(rows, rejected=True)
            return 0
        except Exception as exc:  # the database is unavailable, whatever the driver calls it
            self.counters.failed_writes += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            if self.database_up is not False:
                log.warning("request log: database write failed (%s); retrying with backoff", self.last_error)
            self.database_up = False
            return None
        if self.database_up is False:
            log.warning("request log: database is back")
        self.database_up = True
        return len(rows)

    async def _replay(self) -> bool:
        self.spill.rotate()
        self._spill_waiting = False
        for path in self.spill.pending():
            claim = await asyncio.to_thread(self.spill.claim, path)
            if claim is None:
                continue
            self.counters.dropped += claim.unreadable
            stored = True
            for start in range(0, len(claim.rows), self.settings.flush_rows):
                chunk = claim.rows[start : start + self.settings.flush_rows]
                added = await self._insert(chunk)
                if added is None:
                    stored = False
                    break
                self.counters.written += added
                self.counters.replayed += added
            if not stored:
                claim.release()
                self._spill_waiting = True
                return False
            claim.done()
        return True

    async def _maintain(self) -> None:
        """Partitions ahead and retention, in this task: off the request path, between batches."""
        loop = asyncio.get_running_loop()
        self._next_maintenance = loop.time() + self.settings.maintenance_interval_s
        try:
            self.maintenance = await self.store.maintain(self.settings.retention_days, datetime.now(UTC))
        except Exception as exc:  # tried again next interval; writing goes on
            log.warning("request log maintenance failed: %s: %s", type(exc).__name__, exc)

    def queued(self) -> list[LogRow]:
        """The rows waiting now (a copy)."""
        return list(self._queue)

    def discard(self, matches: Callable[[LogRow], bool]) -> int:
        """Drop queued rows that match (erasure); how many."""
        kept = [row for row in self._queue if not matches(row)]
        dropped = len(self._queue) - len(kept)
        self._queue = deque(kept)
        return dropped

    async def flush(self, timeout_s: float = 30.0) -> bool:
        """Write everything queued now; True once nothing is left (tests and benches: the task does this)."""
        self._wake.set()
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._queue or self._in_flight or self._spill_waiting:
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def stop(self, timeout_s: float) -> None:
        """Flush what is queued (spilling whatever the database will not take) and stop the task."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=timeout_s)
        except TimeoutError:
            log.warning("request log: flush on shutdown timed out; spilling %d rows", len(self._queue))
            self._task.cancel()
            await asyncio.wait([self._task])  # the batch being written is back in the queue
            self._spill(list(self._queue))
            self._queue.clear()
            self.spill.rotate()

    def snapshot(self) -> dict[str, object]:
        return {**asdict(self.counters), "pending": len(self._queue), "database_up": self.database_up}
