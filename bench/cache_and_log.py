"""What the cache router and the request log cost and buy, and what Redis/PostgreSQL outages do.

    python bench/cache_and_log.py [--duration 8] [--out runs/cache_and_log.json]

One run, same machine, same texts (GoEmotions in ../shared/data/goemotions, else the built-in sample,
numbered), wrk on loopback (apt-get install -y wrk; without it the load tester's engine, said so),
private Redis and PostgreSQL servers started here (testkit.local_services: needs redis-server and
postgresql, else it exits 2 saying so). ``samo-serve run`` is started alternately
with L2 + request log OFF (no Redis, request_log.enabled=false) and ON (Redis L2 + PostgreSQL log), in
the order off, on, on, off so that drift on a shared machine cancels out. Prints:

- R1: uncached single-text rps at c=32, on / off (every request carries a new text; target >= 0.9);
- R2: cache-hit rps (a few hundred texts repeated; L1 answers) / uncached rps, with both on (>= 3);
- F1: Redis killed under load and restarted: requests sent / succeeded / failed;
- F2: PostgreSQL stopped under load and restarted: requests sent / succeeded / failed, rows sent / stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # bench/ helpers, and testkit/ (harnesses the wheel leaves out)

from loadgen import (  # noqa: E402
    Proc,
    Result,
    bench_texts,
    closed_loop,
    generator,
    require_local_services,
    save_report,
    write_bodies,
)

from samo_serve.ops.ports import free_port  # noqa: E402
from testkit.drills import DrillResult, at, drive, wait_for_log_rows  # noqa: E402
from testkit.local_services import PostgresServer, RedisServer  # noqa: E402
from testkit.server_process import samo_serve_command  # noqa: E402


def start_server(env: dict[str, str], log: Path) -> Proc:
    port = free_port()
    srv = Proc(
        samo_serve_command(port, free_port()),
        f"http://127.0.0.1:{port}",
        env,
        log,
    )
    srv.wait_ready()
    return srv


def show(r: Result) -> None:
    print(f"    {r.label:<22} c={r.concurrency:<3} {r.rps:>8.1f} rps  p50 {r.p50_ms:6.1f}  p95 {r.p95_ms:6.1f} ms"
          f"  errors {r.errors}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--fault-requests", type=int, default=1500, help="requests per fault scenario")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "cache_and_log.json")
    args = parser.parse_args()
    require_local_services()

    texts = bench_texts()
    tmp = Path(tempfile.mkdtemp(prefix="samo-bench-cache-"))
    singles = write_bodies(tmp / "single.jsonl", texts)
    repeated = write_bodies(tmp / "repeated.jsonl", texts[:300])
    redis, postgres = RedisServer().start(), PostgresServer().start()
    off_env = {"SAMO_REQUEST_LOG__ENABLED": "false", "SAMO_DATA_DIR": str(tmp / "off")}
    on_env = {"SAMO_REDIS_URL": redis.url, "SAMO_DATABASE_URL": postgres.url, "SAMO_DATA_DIR": str(tmp / "on")}
    uncached: dict[str, list[Result]] = {"off": [], "on": []}
    hits: list[Result] = []
    faults: dict[str, dict[str, Any]] = {}
    offset = 0
    try:
        for i, variant in enumerate(("off", "on", "on", "off")):
            print(f"samo-serve with L2 + request log {variant.upper()} (round {i + 1}/4)...", flush=True)
            srv = start_server(off_env if variant == "off" else on_env, tmp / f"samo-{i}.log")
            try:
                closed_loop(srv.url, singles, 8, 3, "warm-up", offset=offset)
                offset += 5000
                r = closed_loop(srv.url, singles, 32, args.duration, f"uncached {variant}", offset=offset)
                offset += r.requests + 1000
                uncached[variant].append(r)
                show(r)
                if variant == "on":
                    closed_loop(srv.url, repeated, 8, 2, "fill the cache")
                    h = closed_loop(srv.url, repeated, 32, args.duration, "cache hits on")
                    hits.append(h)
                    show(h)
                if i == 2:  # the last "on" server: the fault drills
                    faults = fault_drills(srv.url, singles, offset % len(texts), redis, postgres, args.fault_requests)
                    offset += 2 * args.fault_requests
            finally:
                srv.stop()
    finally:
        redis.stop()
        postgres.remove()

    def mean_rps(rs: list[Result]) -> float:
        return sum(r.rps for r in rs) / len(rs)

    ratios = {
        "R1 uncached rps c=32, L2+log on / off (>= 0.9)": round(
            mean_rps(uncached["on"]) / mean_rps(uncached["off"]), 3
        ),
        "R2 cache-hit rps / uncached rps, both on (>= 3)": round(mean_rps(hits) / mean_rps(uncached["on"]), 2),
        "F1 Redis killed under load": faults.get("redis"),
        "F2 PostgreSQL restarted under load": faults.get("postgres"),
    }
    report = {
        "cpus": os.cpu_count(),
        "closed_loop_generator": generator(),
        "uncached": {k: [r.row() for r in v] for k, v in uncached.items()},
        "hits": [r.row() for r in hits],
        "ratios": ratios,
    }
    save_report(report, args.out)


def fault_drills(
    url: str, bodies: Path, offset: int, redis: RedisServer, postgres: PostgresServer, n: int
) -> dict[str, dict[str, Any]]:
    corpus = [json.loads(line)["text"] for line in bodies.read_text(encoding="utf-8").splitlines()]
    corpus = corpus[offset:] + corpus[:offset]
    print(f"  Redis killed after {n // 5} requests, restarted after {n * 3 // 5}, {n} requests at c=16...", flush=True)
    statuses = asyncio.run(drive(url, corpus, n, 16, at({0.2: redis.stop, 0.6: redis.start}, n)))
    redis_result = DrillResult("redis", statuses).row()
    print(f"    {redis_result}", flush=True)

    print(f"  PostgreSQL stopped after {n // 5} requests, started after {n * 3 // 5}...", flush=True)
    start = datetime.now(UTC)
    statuses = asyncio.run(drive(url, corpus[n:], n, 16, at({0.2: postgres.stop, 0.6: postgres.start}, n)))
    end = datetime.now(UTC)
    pg_result = DrillResult("postgres", statuses).row()
    # One row per successful /predict; rows written during the outage come back from spill files.
    pg_result["rows_sent"] = pg_result["succeeded"]
    pg_result["rows_stored"] = asyncio.run(wait_for_log_rows(postgres.url, start, end, pg_result["succeeded"]))
    pg_result["rows_lost"] = pg_result["rows_sent"] - pg_result["rows_stored"]
    print(f"    {pg_result}", flush=True)
    return {"redis": redis_result, "postgres": pg_result}


if __name__ == "__main__":
    main()
