"""Autoscaling, shown: EmotionModel replicas over time while load comes and goes (a measurement, not a test).

    python bench/autoscale_timeline.py [--load-s 40] [--idle-s 60]

Starts ``samo-serve run`` with configs/serve.yaml plus short autoscaling delays for EmotionModel (target
0.5 ongoing micro-batches per replica, up after 2 s, down after 10 s, metrics every 1 s over 5 s), sends
``--load-s`` seconds of load at c=16, then waits ``--idle-s`` seconds, and prints once a second the running
replicas per deployment that /stats reads from Serve's status.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from loadgen import Proc  # noqa: E402

from samo_serve.drills import drive  # noqa: E402
from samo_serve.launcher import DEFAULT_CONFIG  # noqa: E402
from samo_serve.loadtest.corpus import builtin_corpus  # noqa: E402
from samo_serve.local_services import free_port  # noqa: E402

FAST = {
    "min_replicas": 1,
    "max_replicas": 2,
    "target_ongoing_requests": 0.5,
    "upscale_delay_s": 2,
    "downscale_delay_s": 10,
    "metrics_interval_s": 1,
    "look_back_period_s": 5,
}


def config_with_fast_autoscaling(path: Path) -> Path:
    config = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    for deployment in config["applications"][0]["deployments"]:
        if deployment["name"] == "EmotionModel":
            deployment["autoscaling_config"] = FAST
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


async def watch(url: str, seconds: float, started: float, timeline: list[tuple[float, dict[str, int]]]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                replicas = (await client.get("/stats")).json().get("replicas") or {}
            except (httpx.HTTPError, ValueError):
                replicas = {}
            timeline.append((round(time.monotonic() - started, 1), replicas))
            print(f"  t={timeline[-1][0]:6.1f}s  {replicas}", flush=True)
            await asyncio.sleep(1)


async def scenario(url: str, load_s: float, idle_s: float) -> list[tuple[float, dict[str, int]]]:
    timeline: list[tuple[float, dict[str, int]]] = []
    started = time.monotonic()
    texts = builtin_corpus()
    n = 10**6  # bounded by time below

    async def load() -> None:
        task = asyncio.create_task(drive(url, texts, n, 16))
        await asyncio.sleep(load_s)
        task.cancel()

    print(f"load at c=16 for {load_s:.0f} s, then idle for {idle_s:.0f} s", flush=True)
    await asyncio.gather(load(), watch(url, load_s + idle_s, started, timeline))
    return timeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--load-s", type=float, default=40.0)
    parser.add_argument("--idle-s", type=float, default=60.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="samo-autoscale-"))
    config = config_with_fast_autoscaling(tmp / "serve.yaml")
    port = free_port()
    cmd = [sys.executable, "-m", "samo_serve.cli", "run", "--port", str(port), "--metrics-port", str(free_port()),
           "--config", str(config)]  # fmt: skip
    srv = Proc(cmd, f"http://127.0.0.1:{port}", {"SAMO_DATA_DIR": str(tmp / "data")}, tmp / "samo.log")
    try:
        srv.wait_ready()
        timeline = asyncio.run(scenario(srv.url, args.load_s, args.idle_s))
    finally:
        srv.stop()
    counts = [r.get("EmotionModel", 0) for _, r in timeline]
    peak = max(counts, default=0)
    first, last = (counts[0], counts[-1]) if counts else ("?", "?")
    print(f"\nEmotionModel replicas: start {first}, peak {peak}, end {last}")


if __name__ == "__main__":
    main()
