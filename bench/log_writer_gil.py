"""How long the request log's SQLite store takes to write one flush of rows, idle and beside a busy thread.

    python bench/log_writer_gil.py [--rows 1000] [--rounds 5]

The store is the one ``RequestLog.from_settings`` builds from default settings (SQLite in a temporary data
dir, the default statement timeout), the batch is one ``request_log.flush_rows`` flush. Rounds alternate
idle / busy, where busy is one other Python thread spinning, as a loaded server's event loop does: any
statement (or Python function) run once per row hands the GIL to the other thread and waits for it back,
up to the interpreter's switch interval each time. Prints min / median ms per flush for both and their
ratio (a batch of a fixed handful of statements keeps the ratio small).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

from samo_serve.settings import Settings  # noqa: E402
from samo_serve.storage.request_log import RequestLog  # noqa: E402
from samo_serve.storage.request_log.rows import LogRow, new_row_id  # noqa: E402


def _rows(n: int) -> list[LogRow]:
    now, request = datetime.now(UTC), uuid.uuid4().hex
    return [
        LogRow(
            id=new_row_id(),
            created_at=now,
            request_id=request,
            api_key_id=None,
            text_hash=uuid.uuid4().hex * 2,
            text=None,
            primary_emotion="joy",
            confidence=0.5,
            emotions='{"joy":0.5}',
            model_version="bench",
            cache_level="l1",
            processing_time_ms=0.5 + i % 50,
            truncated=False,
        )
        for i in range(n)
    ]


class _Spinner:
    """One Python thread that never blocks (a busy event loop's shape, as far as the GIL sees it)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)

    def _spin(self) -> None:
        x = 0
        while not self._stop.is_set():
            x += 1

    def __enter__(self) -> _Spinner:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=None, help="rows per flush (default: request_log.flush_rows)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir))
        rows = args.rows or settings.request_log.flush_rows
        log = RequestLog.from_settings(settings)
        await log.store.migrate()
        times: dict[str, list[float]] = {"idle": [], "busy": []}
        await log.store.insert(_rows(rows))  # warm: connection, statement cache
        for _ in range(args.rounds):
            for variant in ("idle", "busy"):
                batch = _rows(rows)
                if variant == "busy":
                    with _Spinner():
                        t0 = time.perf_counter()
                        await log.store.insert(batch)
                        times[variant].append(time.perf_counter() - t0)
                else:
                    t0 = time.perf_counter()
                    await log.store.insert(batch)
                    times[variant].append(time.perf_counter() - t0)
        await log.store.close()
    print(f"one flush of {rows} rows into the default SQLite log, {args.rounds} rounds alternating")
    for variant, ts in times.items():
        print(f"  {variant}: min {min(ts) * 1e3:8.1f} ms  median {statistics.median(ts) * 1e3:8.1f} ms")
    ratio = statistics.median(times["busy"]) / statistics.median(times["idle"])
    print(f"  busy / idle (median): {ratio:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
