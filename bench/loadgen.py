"""Loopback load generation for the benchmarks: wrk (closed loop) and an asyncio open-loop client."""

from __future__ import annotations

import asyncio
import csv
import json
import random
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np

from testkit.server_process import ServerProcess

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
        f"-d{max(1, round(duration_s))}s",
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


class _Conn:
    """One keep-alive HTTP/1.1 connection; a hand-written client costs a fraction of httpx's CPU, which
    matters when the load generator shares 2 cores with the server it measures."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def post(self, host: str, path: str, body: bytes) -> int:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])


async def _open_loop(url: str, bodies: list[str], rate: float, duration_s: float) -> tuple[list[float], int]:
    parsed = httpx.URL(url)
    host, port = parsed.host, parsed.port or 80
    latencies: list[float] = []
    errors = 0
    idle: list[_Conn] = []

    async def one(body: bytes, scheduled: float) -> None:
        nonlocal errors
        conn = idle.pop() if idle else _Conn(*await asyncio.open_connection(host, port))
        try:
            status = await asyncio.wait_for(conn.post(host, "/predict", body), 30)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, IndexError):
            errors += 1
            conn.writer.close()
            return
        if status != 200:
            errors += 1
        latencies.append(time.perf_counter() - scheduled)  # from the arrival, queueing included
        idle.append(conn)

    encoded = [b.encode() for b in bodies]
    tasks = []
    rng = random.Random(0)
    next_at = time.perf_counter()
    for i in range(int(rate * duration_s)):
        next_at += rng.expovariate(rate)  # Poisson arrivals
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(encoded[i % len(encoded)], next_at)))
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.writer.close()
    return latencies, errors


async def _closed_loop(url: str, bodies: list[str], concurrency: int, duration_s: float) -> tuple[list[float], int]:
    parsed = httpx.URL(url)
    host, port = parsed.host, parsed.port or 80
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration_s
    counter = iter(range(10**9))

    async def worker() -> None:
        nonlocal errors
        conn = _Conn(*await asyncio.open_connection(host, port))
        while time.perf_counter() < deadline:
            body = bodies[next(counter) % len(bodies)].encode()
            started = time.perf_counter()
            if await conn.post(host, "/predict", body) != 200:
                errors += 1
            latencies.append(time.perf_counter() - started)
        conn.writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


def closed_loop(url: str, bodies: Path, concurrency: int, duration_s: float, label: str, offset: int = 0) -> Result:
    """The open-loop client's own closed-loop peak: the same client CPU cost as the open-loop run."""
    started = time.perf_counter()
    latencies, errors = asyncio.run(_closed_loop(url, _rotated(bodies, offset), concurrency, duration_s))
    return _result(label, concurrency, latencies, errors, time.perf_counter() - started)


def _rotated(bodies: Path, offset: int) -> list[str]:
    lines = bodies.read_text(encoding="utf-8").splitlines()
    return lines[offset:] + lines[:offset]


def _result(label: str, concurrency: int, latencies: list[float], errors: int, elapsed: float) -> Result:
    lat = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    return Result(
        label=label,
        concurrency=concurrency,
        requests=len(latencies) + errors,
        rps=round(len(latencies) / elapsed, 1),
        p50_ms=float(np.percentile(lat, 50)),
        p95_ms=float(np.percentile(lat, 95)),
        p99_ms=float(np.percentile(lat, 99)),
        errors=errors,
    )


def open_loop(url: str, bodies: Path, rate: float, duration_s: float, label: str, offset: int = 0) -> Result:
    """Fixed arrival rate (open loop): latency includes queueing when the server falls behind."""
    started = time.perf_counter()
    latencies, errors = asyncio.run(_open_loop(url, _rotated(bodies, offset), rate, duration_s))
    return _result(label, 0, latencies, errors, time.perf_counter() - started)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # so that `finally: srv.stop()` runs when a bench is killed by timeout


class Proc(ServerProcess):
    """A bench's server (testkit.server_process), and a SIGTERM'd bench stops it on the way out."""

    def __init__(self, cmd: list[str], url: str, env: dict[str, str], log: Path) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
        super().__init__(cmd, url, log, env)


def save_report(report: dict[str, object], out: Path, heading: str = "ratios") -> None:
    """Print ``report[heading]`` (if any) and write the whole report as JSON to ``out``."""
    if isinstance(section := report.get(heading), dict):
        print(f"\n{heading}:")
        for key, value in section.items():
            print(f"  {key}: {value}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten {out}")
