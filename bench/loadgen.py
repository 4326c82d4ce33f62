"""Loopback load generation for the benchmarks: wrk (closed loop) and an asyncio open-loop client."""

from __future__ import annotations

import asyncio
import csv
import json
import random
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "goemotions"


def goemotions_texts(data_dir: Path = DATA, splits: tuple[str, ...] = ("test", "dev", "train")) -> list[str]:
    """Unique GoEmotions texts, test split first (read with csv: some texts are quoted)."""
    seen: dict[str, None] = {}
    for split in splits:
        with (data_dir / f"{split}.tsv").open(encoding="utf-8", newline="") as f:
            for row in csv.reader(f, delimiter="\t"):
                seen.setdefault(row[0], None)
    return list(seen)


@dataclass
class Result:
    label: str
    concurrency: int
    requests: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    texts_per_request: int = 1

    @property
    def texts_per_s(self) -> float:
        return self.rps * self.texts_per_request

    def row(self) -> dict[str, object]:
        return {**asdict(self), "texts_per_s": round(self.texts_per_s, 1)}


def write_bodies(path: Path, texts: list[str], per_request: int = 1) -> Path:
    with path.open("w", encoding="utf-8") as f:
        if per_request == 1:
            for t in texts:
                f.write(json.dumps({"text": t}) + "\n")
        else:
            for i in range(0, len(texts) - per_request + 1, per_request):
                f.write(json.dumps({"texts": texts[i : i + per_request]}) + "\n")
    return path


def run_wrk(
    url: str,
    bodies: Path,
    concurrency: int,
    duration_s: float,
    label: str,
    path: str = "/predict",
    offset: int = 0,
    texts_per_request: int = 1,
    threads: int = 1,
) -> Result:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    cmd = [
        "wrk",
        f"-t{min(threads, concurrency)}",
        f"-c{concurrency}",
        f"-d{duration_s}s",
        "--timeout",
        "10s",
        "-s",
        str(HERE / "wrk_bodies.lua"),
        url,
        "--",
        str(bodies),
        str(offset),
        path,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    s = json.loads(line[len("WRK_JSON ") :])
    errors = sum(v for k, v in s.items() if k.startswith("errors_"))
    return Result(
        label=label,
        concurrency=concurrency,
        requests=s["requests"],
        rps=round(s["requests"] / (s["duration_us"] / 1e6), 1),
        p50_ms=s["p50_us"] / 1000,
        p95_ms=s["p95_us"] / 1000,
        p99_ms=s["p99_us"] / 1000,
        errors=errors,
        texts_per_request=texts_per_request,
    )


async def _open_loop(url: str, bodies: list[str], rate: float, duration_s: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:

        async def one(body: str) -> None:
            nonlocal errors
            started = time.perf_counter()
            try:
                resp = await client.post("/predict", content=body, headers={"content-type": "application/json"})
                if resp.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
                return
            latencies.append(time.perf_counter() - started)

        tasks = []
        start = time.perf_counter()
        n = int(rate * duration_s)
        rng = random.Random(0)
        next_at = start
        for i in range(n):
            next_at += rng.expovariate(rate)  # Poisson arrivals
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(bodies[i % len(bodies)])))
        await asyncio.gather(*tasks)
    return latencies, errors


def open_loop(url: str, bodies: Path, rate: float, duration_s: float, label: str, offset: int = 0) -> Result:
    """Fixed arrival rate (open loop): latency includes queueing when the server falls behind."""
    lines = bodies.read_text(encoding="utf-8").splitlines()
    lines = lines[offset:] + lines[:offset]
    started = time.perf_counter()
    latencies, errors = asyncio.run(_open_loop(url, lines, rate, duration_s))
    elapsed = time.perf_counter() - started
    lat = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    return Result(
        label=label,
        concurrency=0,
        requests=len(latencies) + errors,
        rps=round(len(latencies) / elapsed, 1),
        p50_ms=float(np.percentile(lat, 50)),
        p95_ms=float(np.percentile(lat, 95)),
        p99_ms=float(np.percentile(lat, 99)),
        errors=errors,
    )
