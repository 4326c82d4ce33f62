"""CPU the ingress spends per request on the cache router and the request log, model left out.

    python bench/cache_log_overhead.py [--requests 5000]

An EmotionService in this process whose pipeline answers at once, so what is measured is our own
per-request work: keys, L1, the Redis MGET/EVALSHA round trips, log rows, and the background writers
(process CPU time, private Redis and PostgreSQL started here). Every request carries a new text (a miss).
Variants alternate (off, on, sqlite, off, on) so that drift shows.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # bench/ helpers, and testkit/ (harnesses the wheel leaves out)

from loadgen import require_local_services  # noqa: E402

from samo_serve.core.model_card import load_card  # noqa: E402
from samo_serve.core.postprocess import PredictOptions  # noqa: E402
from samo_serve.core.results import CachedResult  # noqa: E402
from samo_serve.service import EmotionService, RequestContext  # noqa: E402
from samo_serve.settings import Settings, default_model_dir  # noqa: E402
from testkit.local_services import PostgresServer, RedisServer  # noqa: E402


class InstantPipeline:
    async def classify(self, texts: list[str]) -> list[CachedResult]:
        return [CachedResult(np.full(28, 0.1, np.float32), False) for _ in texts]

    async def model_info(self) -> dict[str, object]:
        return {}


async def cost_per_request(settings: Settings, n: int, concurrency: int = 32) -> tuple[float, float]:
    service = EmotionService.from_settings(load_card(default_model_dir()), InstantPipeline(), settings)
    await service.start()
    options = PredictOptions()

    async def client(k: int) -> None:
        for j in range(n // concurrency):
            await service.predict([f"text {k} {j} {time.time_ns()}"], options, RequestContext("bench"))

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(concurrency)))
    if service.request_log is not None:
        await service.request_log.writer.flush()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await service.stop()
    return cpu / n * 1e6, wall / n * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    require_local_services()
    redis, postgres = RedisServer().start(), PostgresServer().start()
    tmp = Path(tempfile.mkdtemp())
    variants = {
        "off (L1 only, no log)": Settings(data_dir=tmp, request_log={"enabled": False}),
        "on (Redis L2 + PostgreSQL log)": Settings(data_dir=tmp, redis_url=redis.url, database_url=postgres.url),
        "sqlite log, no L2": Settings(data_dir=tmp),
    }
    order = [*variants, *list(variants)[:2]]
    try:
        for name in order:
            cpu, wall = await cost_per_request(variants[name], args.requests)
            print(f"{name:<32} CPU {cpu:6.1f} us/request   wall {wall:6.1f} us/request", flush=True)
    finally:
        redis.stop()
        postgres.remove()


if __name__ == "__main__":
    asyncio.run(main())
