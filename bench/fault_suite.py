"""The fault suite: one command that breaks things under load and counts what was lost.

    python bench/fault_suite.py [--requests 1000] [--out runs/fault_suite.json]

Starts private Redis and PostgreSQL (testkit.local_services), an API keys file with one key, and
``samo-serve run`` with two EmotionModel replicas, Redis L2 + rate limits, and the PostgreSQL request log.
Then, per scenario, prints requests sent / succeeded / failed and log rows sent / stored:

1. bad-input battery (34 cases): each must be its 4xx with a JSON error code;
2. API keys: no protected route may answer without a valid key;
3. schemathesis against /openapi.json: no 5xx, responses match the schema;
4. one model replica SIGKILLed under load: >= 99% succeed and Serve brings the replica back;
5. the Ingress replica (the process serving the port) SIGKILLed under open-loop load: seconds until the
   port serves again (goal: 10) and the requests that failed meanwhile;
6. a slow-client flood: 300 uploads stall after one byte of body; what they are answered, and whether
   /healthz and /predict are answered meanwhile;
7. Redis killed under load, then restarted: 0 failed;
8. PostgreSQL stopped under load, then restarted: 0 failed, every log row stored;
9. SIGTERM to samo-serve with rows still queued: every row stored, no Ray process left.

Loopback only; every scenario is bounded in requests and time. Needs redis-server, PostgreSQL, and the
GoEmotions texts in ../shared/data/goemotions (else the load tester's built-in sample).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # bench/ helpers, and testkit/ (harnesses the wheel leaves out)

from loadgen import Proc, bench_texts, require_local_services  # noqa: E402

from samo_serve.http.api_keys import KeyStore  # noqa: E402
from samo_serve.ops.ports import free_port  # noqa: E402
from samo_serve.ops.serve_config import (  # noqa: E402
    DEFAULT_CONFIG,
    load_serve_config,
    override_deployment,
    write_serve_config,
)
from testkit.drills import (  # noqa: E402
    DrillResult,
    ReplicaKill,
    at,
    bad_input_battery,
    drive,
    slow_client_flood,
    unauthenticated_served,
    wait_for_log_rows,
)
from testkit.local_services import PostgresServer, RedisServer  # noqa: E402
from testkit.server_process import samo_serve_command  # noqa: E402


@functools.cache
def texts() -> list[str]:
    return bench_texts()  # read once: two scenarios load from it


def two_model_replicas(path: Path) -> Path:
    config = override_deployment(load_serve_config(DEFAULT_CONFIG), "EmotionModel", num_replicas=2)
    return write_serve_config(config, path)


def ray_processes() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "raylet|gcs_server"], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


async def logged_drill(name: str, url: str, pg: PostgresServer, corpus: list[str], n: int, **kw: Any) -> DrillResult:
    """A load drill whose 200s must all appear in the request log."""
    start = datetime.now(UTC)
    result = DrillResult(name, await drive(url, corpus, n, 16, **kw))
    end = datetime.now(UTC)
    result.rows_sent = result.succeeded
    result.rows_stored = await wait_for_log_rows(pg.url, start, end, result.succeeded)
    return result


def schemathesis_run(url: str, key: str, out: Path) -> dict[str, Any]:
    report = out / "schemathesis.ndjson"
    binary = Path(sys.executable).parent / "schemathesis"
    if not binary.exists():
        why = 'skipped: schemathesis not installed (pip install -e ".[dev]")'
        return {"exit_code": None, "passed": None, "summary": [why]}
    cmd = [
        str(binary), "run", f"{url}/openapi.json",
        "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance",
        "--max-examples", "25", "--seed", "1", "-H", f"X-API-Key: {key}",
        "--report", "ndjson", "--report-ndjson-path", str(report), "--request-timeout", "30",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    tail = [line for line in proc.stdout.splitlines() if line.strip()][-6:]
    return {"exit_code": proc.returncode, "passed": proc.returncode == 0, "summary": tail}


async def scenarios(url: str, key: str, redis: RedisServer, pg: PostgresServer, n: int, out: Path) -> dict[str, Any]:
    corpus = texts()
    auth = {"X-API-Key": key}
    results: dict[str, Any] = {}

    print("1. bad-input battery ...", flush=True)
    results["bad_inputs"] = await bad_input_battery(url, headers=auth)
    print(f"   {results['bad_inputs']}", flush=True)

    print("2. API keys ...", flush=True)
    results["auth"] = await unauthenticated_served(url, key)
    print(f"   {results['auth']}", flush=True)

    print("3. schemathesis against /openapi.json ...", flush=True)
    results["schemathesis"] = await asyncio.to_thread(schemathesis_run, url, key, out)
    print(f"   passed={results['schemathesis']['passed']}  " + " | ".join(results["schemathesis"]["summary"][-2:]))

    print(f"4. one of 2 model replicas SIGKILLed after {n // 3} of {n} requests ...", flush=True)
    kill = ReplicaKill("EmotionModel")
    kill_result = await logged_drill(
        "model replica killed", url, pg, corpus, n, on_progress=at({1 / 3: kill}, n), headers=auth
    )
    replaced_s = await asyncio.to_thread(kill.wait)
    kill_result.notes.update(
        success_rate=round(kill_result.succeeded / kill_result.sent, 4),
        killed_pid=kill.victim,
        replaced_after_s=replaced_s,
    )
    results["model_replica_killed"] = kill_result.row()
    print(f"   {results['model_replica_killed']}", flush=True)

    rate, seconds = 40, 40
    print(f"5. the Ingress replica SIGKILLed after {seconds * 0.15:.0f} s of {seconds} s at {rate} requests/s ...")
    kill = ReplicaKill("Ingress", timeout_s=180, serving_url=url)
    statuses = await drive(url, corpus, rate * seconds, 16, at({0.15: kill}, rate * seconds), auth,
                           until=time.monotonic() + seconds, rate=rate)  # fmt: skip
    ingress = DrillResult("ingress replica killed", statuses)
    replaced_s = await asyncio.to_thread(kill.wait)
    ingress.notes.update(killed_pid=kill.victim, replaced_after_s=replaced_s, serving_after_s=kill.serving_after_s)
    results["ingress_replica_killed"] = ingress.row()
    print(f"   {results['ingress_replica_killed']}", flush=True)

    print("6. slow-client flood: 300 uploads stalled after one byte of body ...", flush=True)
    results["slow_client_flood"] = await slow_client_flood(url, auth, connections=300)
    print(f"   {results['slow_client_flood']}", flush=True)

    print(f"7. Redis killed after {n // 5} of {n} requests, restarted after {3 * n // 5} ...", flush=True)
    chaos = at({0.2: redis.stop, 0.6: redis.start}, n)
    results["redis_down_up"] = (await logged_drill("redis", url, pg, corpus, n, on_progress=chaos, headers=auth)).row()
    print(f"   {results['redis_down_up']}", flush=True)

    print(f"8. PostgreSQL stopped after {n // 5} of {n} requests, started after {3 * n // 5} ...", flush=True)
    chaos = at({0.2: pg.stop, 0.6: pg.start}, n)
    results["postgres_down_up"] = (await logged_drill("pg", url, pg, corpus, n, on_progress=chaos, headers=auth)).row()
    print(f"   {results['postgres_down_up']}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="requests per load scenario")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "fault_suite.json")
    args = parser.parse_args()
    require_local_services()
    tmp = Path(tempfile.mkdtemp(prefix="samo-faults-"))
    redis, pg = RedisServer().start(), PostgresServer().start()
    key = KeyStore(tmp / "keys.json").create("fault-suite", scopes=("admin",))  # /stats is admin-only
    env = {
        "SAMO_REDIS_URL": redis.url,
        "SAMO_DATABASE_URL": pg.url,
        "SAMO_API_KEYS_FILE": str(tmp / "keys.json"),
        "SAMO_DATA_DIR": str(tmp / "data"),
        # rate limits on (in Redis, in-process while Redis is down) but far above this load
        "SAMO_RATE_LIMITS__ENABLED": "true",
        "SAMO_RATE_LIMITS__TIERS": json.dumps({"default": {"per_second": 100000, "burst": 100000}}),
    }
    config = two_model_replicas(tmp / "serve.yaml")
    ray_before = ray_processes()
    results: dict[str, Any] = {}
    try:
        port = free_port()
        cmd = samo_serve_command(port, free_port(), "--config", str(config))
        srv = Proc(cmd, f"http://127.0.0.1:{port}", env, tmp / "samo.log")
        try:
            srv.wait_ready()
            results = asyncio.run(scenarios(srv.url, key, redis, pg, args.requests, tmp))
        finally:
            srv.stop()

        print("9. SIGTERM to samo-serve with rows still queued ...", flush=True)
        port = free_port()
        queued_env = {**env, "SAMO_REQUEST_LOG__FLUSH_INTERVAL_MS": "3600000", "SAMO_REQUEST_LOG__FLUSH_ROWS": "100000"}
        cmd = samo_serve_command(port, free_port())
        srv = Proc(cmd, f"http://127.0.0.1:{port}", queued_env, tmp / "samo-sigterm.log")
        srv.wait_ready()
        start = datetime.now(UTC)
        statuses = asyncio.run(drive(srv.url, texts(), 300, 8, headers={"X-API-Key": key}))
        end = datetime.now(UTC)
        srv.stop()
        result = DrillResult("sigterm", statuses)
        result.rows_sent = result.succeeded
        result.rows_stored = asyncio.run(wait_for_log_rows(pg.url, start, end, result.succeeded, timeout_s=10))
        time.sleep(5)
        result.notes.update(exit_code=srv.proc.returncode, ray_processes_left=len(ray_processes() - ray_before))
        results["sigterm_rows_queued"] = result.row()
        print(f"   {results['sigterm_rows_queued']}", flush=True)
    finally:
        redis.stop()
        pg.remove()

    print("\nfault suite:")
    for name, value in results.items():
        print(f"  {name}: {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten {args.out}  (server logs in {tmp})")


if __name__ == "__main__":
    main()
