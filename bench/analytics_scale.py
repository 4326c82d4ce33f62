"""Analytics at scale: the request log's rollups against direct SQL over the raw rows, on PostgreSQL.

    python bench/analytics_scale.py --rows 20000000 [--days 30 --users 1000 --tenants 5 --seed 7]
    python bench/analytics_scale.py --rows 200000 --keep     # quick; --dsn URL to use a running server

Seeds ``--rows`` raw rows over the last ``--days`` days with one ``INSERT .. SELECT FROM generate_series``
per million rows (seeded ``random()``; users belong to one tenant each; emotions and latencies skewed),
then runs ``samo-serve log rebuild-rollups`` (rows loaded by plain SQL are counted by a rebuild). It
then times, over ``--repeats`` calls each, the 30-day summary and emotions breakdown (all tenants and
one tenant), one user's and one tenant's day-bucket timeline, as the service answers them (RequestLog), and checks
each answer against direct SQL over the raw table: texts, requests, cache levels, per-emotion counts and
means exactly (to 1e-9), the user timeline's primary counts and every label's count and mean score
(to 1e-6), processing-time percentiles within the histogram's 2.5 %. A private PostgreSQL
(testkit.local_services) unless ``--dsn``; never the machine's own. Prints one JSON document. The seeding
and the direct SQL use the bench's own store with a 600 s statement timeout (they are not the product's
work); the rebuild is the CLI's, and the timed answers come from the store a server would use (settings'
defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]  # testkit/ (harnesses the wheel leaves out)

from samo_serve.core.times import utc_iso  # noqa: E402
from samo_serve.settings import Settings  # noqa: E402
from samo_serve.storage.request_log import RequestLog  # noqa: E402
from samo_serve.storage.request_log.postgres import PostgresStore  # noqa: E402
from samo_serve.storage.request_log.rollups import USER_ROLLUPS  # noqa: E402
from testkit.local_services import PostgresServer  # noqa: E402

# roughly GoEmotions' frequency order: random()^3 picks the front ones most
LABELS = (
    "neutral",
    "approval",
    "admiration",
    "gratitude",
    "annoyance",
    "amusement",
    "curiosity",
    "disapproval",
    "love",
    "optimism",
    "anger",
    "joy",
    "confusion",
    "sadness",
    "disappointment",
    "realization",
    "caring",
    "surprise",
    "excitement",
    "disgust",
    "desire",
    "fear",
    "remorse",
    "embarrassment",
    "nervousness",
    "relief",
    "pride",
    "grief",
)
LEVELS = ("miss", "l1", "l2", "l3")
CHUNK = 1_000_000


def seed_sql(first: int, last: int, args: argparse.Namespace, now: datetime) -> str:
    labels = "ARRAY[" + ",".join(f"'{x}'" for x in LABELS) + "]"
    levels = "ARRAY[" + ",".join(f"'{x}'" for x in LEVELS) + "]"
    pick = f"({labels})[1 + floor(power(random(), 3) * {len(LABELS)})::int]"
    span_s = args.days * 86400
    # cleared: the primary, and for 40 % of rows a second label (GoEmotions texts carry 1.2 labels on average,
    # entries of several sentences more), as the service records them
    return f"""
        INSERT INTO emotion_requests (id, created_at, request_id, api_key_id, text_hash, primary_emotion,
            confidence, emotions, model_version, cache_level, processing_time_ms, truncated, segment_count,
            tenant_id, user_id, occurred_at, request_texts, cleared)
        SELECT gen_random_uuid(), t, 'r' || (g / 2), NULL, md5(g::text) || md5((g + 1)::text), p, c, '{{}}'::jsonb,
            'bench', ({levels})[1 + floor(power(random(), 2) * 4)::int], exp(random() * 6), false, 1,
            't' || (u % {args.tenants}), 'u' || u, t, 2,
            jsonb_build_object(p, c) || CASE WHEN random() < 0.4 THEN jsonb_build_object({pick}, c * random())
                                             ELSE '{{}}'::jsonb END
        FROM (SELECT g, abs(hashint4((g / 2)::int)) % {args.users} AS u,
                     '{now.isoformat()}'::timestamptz - random() * interval '{span_s} seconds' AS t,
                     {pick} AS p, 0.3 + random() * 0.7 AS c
              FROM generate_series({first}, {last}) AS g) AS s
    """  # two rows per request (g / 2), of one user: request counts are checked as sums of 1/request_texts


async def seed(store: PostgresStore, dsn: str, args: argparse.Namespace, now: datetime) -> dict[str, float]:
    pool = await store._get_pool()
    async with pool.acquire() as conn:
        await conn.execute(f"SELECT setseed({args.seed / 1000})")  # one session: the rows are reproducible
        started = time.perf_counter()
        for first in range(0, args.rows, CHUNK):
            last = min(first + CHUNK, args.rows) - 1
            await conn.execute(seed_sql(first, last, args, now), timeout=None)
            print(f"seeded {last + 1:,} rows, {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        seed_s = time.perf_counter() - started
        await conn.execute("ANALYZE emotion_requests", timeout=None)  # what autovacuum does after a bulk load
    # the rollups as a user makes them: the CLI, with its own settings (no statement timeout, ANALYZE after)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "samo_serve.ops.cli", "log", "rebuild-rollups"],
        stdout=sys.stderr,  # its JSON line: this bench prints one document
        env={**os.environ, "SAMO_DATABASE_URL": dsn},
        check=True,
    )
    rebuild_s = time.perf_counter() - started
    return {"seed_s": round(seed_s, 1), "rebuild_rollups_s": round(rebuild_s, 1)}


async def timed(call: Callable[[], Awaitable[Any]], repeats: int) -> tuple[Any, dict[str, float]]:
    times, answer = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        answer = await call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return answer, {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(p95, 1)}


async def direct(store: PostgresStore, start: datetime, end: datetime, tenant: str | None) -> dict[str, Any]:
    pool = await store._get_pool()
    where = "coalesce(occurred_at, created_at) >= $1 AND coalesce(occurred_at, created_at) < $2"
    args: list[Any] = [start, end]
    if tenant is not None:
        where += " AND tenant_id = $3"
        args.append(tenant)
    started = time.perf_counter()
    totals = await pool.fetchrow(
        "SELECT count(*) AS texts, count(DISTINCT request_id) AS requests, avg(processing_time_ms) AS mean, "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY processing_time_ms) AS p50, "
        f"percentile_cont(0.95) WITHIN GROUP (ORDER BY processing_time_ms) AS p95 FROM emotion_requests WHERE {where}",
        *args,
        timeout=None,
    )
    levels = await pool.fetch(f"SELECT cache_level, count(*) FROM emotion_requests WHERE {where} GROUP BY 1", *args)
    emotions = await pool.fetch(
        f"SELECT primary_emotion, count(*), avg(confidence) FROM emotion_requests WHERE {where} GROUP BY 1",
        *args,
        timeout=None,
    )
    return {
        "totals": dict(totals or {}),
        "levels": {r[0]: r[1] for r in levels},
        "emotions": {r[0]: (r[1], r[2]) for r in emotions},
        "direct_ms": round((time.perf_counter() - started) * 1000),
    }


def check(summary: dict[str, Any], counts: list[dict[str, Any]], raw: dict[str, Any]) -> list[str]:
    problems = []
    totals = raw["totals"]
    if summary["texts"] != totals["texts"] or summary["requests"] != totals["requests"]:
        problems.append(
            f"texts/requests {summary['texts']}/{summary['requests']} vs {totals['texts']}/{totals['requests']}"
        )
    if summary["cache"]["by_level"] != raw["levels"]:
        problems.append(f"cache levels {summary['cache']['by_level']} vs {raw['levels']}")
    if totals["texts"] and abs(summary["processing_time_ms"]["mean"] - totals["mean"]) > 1e-9 * totals["mean"]:
        problems.append("mean processing time differs")
    for q in ("p50", "p95"):
        if totals[q] is not None and abs(summary["processing_time_ms"][q] / totals[q] - 1) > 0.026:
            problems.append(f"{q} {summary['processing_time_ms'][q]} vs {totals[q]} (over 2.5 %)")
    mine = {r["emotion"]: (r["count"], r["mean_confidence"]) for r in counts}
    if mine.keys() != raw["emotions"].keys() or any(
        mine[e][0] != n or abs(mine[e][1] - conf) > 1e-9 for e, (n, conf) in raw["emotions"].items()
    ):
        problems.append("emotion counts differ")
    return problems


async def check_timeline(
    store: PostgresStore, timeline: list[dict[str, Any]], tenant: str, user: str, start: datetime, end: datetime
) -> list[str]:
    pool = await store._get_pool()
    rows = await pool.fetch(
        "SELECT date_trunc('day', coalesce(occurred_at, created_at)) AS day, primary_emotion, count(*) "
        "FROM emotion_requests WHERE tenant_id = $1 AND user_id = $2 AND coalesce(occurred_at, created_at) >= $3 "
        "AND coalesce(occurred_at, created_at) < $4 GROUP BY 1, 2",
        tenant,
        user,
        start,
        end,
    )

    def first(day: datetime) -> str:  # a bucket starts at its calendar day, the first one at the range's start
        return utc_iso(max(day, start))

    raw: dict[tuple[str, str], int] = {(first(r[0]), r[1]): r[2] for r in rows}
    mine = {(b["start"], e): v["count"] for b in timeline for e, v in b["emotions"].items()}
    problems = [] if raw == mine else [f"timeline differs in {len(set(raw.items()) ^ set(mine.items()))} cells"]
    rows = await pool.fetch(
        "SELECT date_trunc('day', coalesce(occurred_at, created_at)) AS day, l.key, count(*), avg(l.value::float8) "
        "FROM emotion_requests, jsonb_each_text(cleared) AS l(key, value) WHERE tenant_id = $1 AND user_id = $2 "
        "AND coalesce(occurred_at, created_at) >= $3 AND coalesce(occurred_at, created_at) < $4 GROUP BY 1, 2",
        tenant,
        user,
        start,
        end,
    )
    day = {(first(r[0]), r[1]): (r[2], r[3]) for r in rows}
    labels = {
        (b["start"], k): (v["count"], v["mean_score"]) for b in timeline for k, v in b["labels"].items() if v["count"]
    }
    if labels.keys() != day.keys() or any(
        labels[k][0] != n or abs(labels[k][1] - m) > 1e-6 for k, (n, m) in day.items()
    ):
        problems.append("timeline label counts or mean scores differ")
    return problems


async def measure(store: PostgresStore, dsn: str, args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="samo-bench-"))
    log = RequestLog.from_settings(Settings(data_dir=data_dir, database_url=dsn))  # a server's store and timeout
    start, end = now - timedelta(days=args.days), now  # not on an hour: the edges are read raw
    user = 7
    tenant, user_id = f"t{user % args.tenants}", f"u{user}"
    results: dict[str, Any] = {}
    for scope in (None, "t1"):
        name = "all" if scope is None else f"tenant_{scope}"
        summary, summary_t = await timed(lambda s=scope: log.summary(start, end, s), args.repeats)
        counts, counts_t = await timed(lambda s=scope: log.emotion_counts(start, end, s), args.repeats)
        raw = await direct(store, start, end, scope)
        results[name] = {
            "summary": summary_t,
            "emotions": counts_t,
            "direct_sql_ms": raw["direct_ms"],
            "texts": summary["texts"],
            "problems": check(summary, counts, raw),
        }
    timeline, timeline_t = await timed(lambda: log.timeline(tenant, user_id, start, end, "day"), args.repeats)
    results["user_timeline_day"] = {
        **timeline_t,
        "buckets": len(timeline),
        "texts": sum(b["texts"] for b in timeline),
        "problems": await check_timeline(store, timeline, tenant, user_id, start, end),
    }
    # the tenant's: what the dashboard draws for 30 days
    tenant_days, tenant_t = await timed(lambda: log.timeline(tenant, None, start, end, "day"), args.repeats)
    results["tenant_timeline_day"] = {**tenant_t, "texts": sum(b["texts"] for b in tenant_days), "problems": []}
    await log.store.close()
    return results


async def run(args: argparse.Namespace) -> dict[str, Any]:
    server = None if args.dsn else PostgresServer().start()
    dsn = args.dsn or server.url  # type: ignore[union-attr]
    store = PostgresStore(dsn, statement_timeout_s=600)
    try:
        now = datetime.now(UTC)
        await store.migrate()
        await store.maintain(args.days + 3, now)  # day partitions for the seeded range
        timings = await seed(store, dsn, args, now) if not args.skip_seed else {}
        pool = await store._get_pool()
        sizes = {
            t: await pool.fetchval(f"SELECT count(*) FROM {t}")
            for t in ("emotion_requests", "emotion_rollup_tenant", *USER_ROLLUPS.values())
        }
        results = await measure(store, dsn, args, now)
        target = all(
            not r["problems"] and r.get("summary", r)["p95_ms"] < 200 and r.get("emotions", r)["p95_ms"] < 200
            for r in results.values()
        )
        return {"args": vars(args), "rows": sizes, **timings, "results": results, "target_met": target}
    finally:
        await store.close()
        if server is not None and not args.keep:
            server.remove()
        elif server is not None:
            print(f"kept: {server.url} ({server.dir})", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--tenants", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--dsn", help="an existing PostgreSQL (default: a private one started here)")
    parser.add_argument("--skip-seed", action="store_true", help="measure rows already in --dsn")
    parser.add_argument("--keep", action="store_true", help="leave the private server running")
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2, default=str))


if __name__ == "__main__":
    main()
