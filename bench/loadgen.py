"""Load for the benchmarks: wrk for closed-loop peaks, the load tester's engine for everything else.

wrk (C, ~0 CPU per request) measures peak rps; where it is not installed, ``closed_loop`` says so once
and uses the load tester's engine instead (samo_serve.loadtest.engine, the project's one Python request
loop), whose client needs about a core at c >= 32 on the machine it measures (docs/PERFORMANCE.md):
its rps is then a lower bound. Open loops and the drills always use the engine.
"""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from samo_serve.loadtest.corpus import builtin_corpus
from samo_serve.loadtest.engine import LevelResult, LoadSpec, TextPicker, run_level
from samo_serve.loadtest.summary import summarize_level
from samo_serve.modeling.goemotions import unique_texts
from testkit.local_services import missing_binaries
from testkit.server_process import ROOT, ServerProcess

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "goemotions"  # ../shared/data/goemotions from the repo root
FALLBACK_TEXTS = 60_000  # enough distinct texts for the longest uncached run


def bench_texts(splits: tuple[str, ...] = ("test", "dev", "train")) -> list[str]:
    """Distinct GoEmotions texts (test split first); without the data, the load tester's built-in sample,
    every text numbered so that each request still carries a new one."""
    if all((DATA / f"{split}.tsv").exists() for split in splits):
        return unique_texts(DATA, splits)
    pick = TextPicker(builtin_corpus(), 0.0, unique=True)
    print(f"GoEmotions not found at {DATA}: using the load tester's built-in sample, numbered "
          f"({FALLBACK_TEXTS:,} distinct texts)", flush=True)  # fmt: skip
    return [pick() for _ in range(FALLBACK_TEXTS)]


@dataclass
class Result:
    label: str
    concurrency: int  # 0: open loop
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


@functools.cache
def generator() -> str:
    """``wrk`` where installed, else ``python`` (said once, with why it matters)."""
    if shutil.which("wrk"):
        return "wrk"
    print("wrk not found (apt-get install -y wrk): closed-loop levels use the load tester's Python engine, "
          "which shares the CPUs it measures: its rps is a lower bound", flush=True)  # fmt: skip
    return "python"


def closed_loop(
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
    """``concurrency`` clients for ``duration_s``, each request the next body of ``bodies`` from ``offset``."""
    if generator() == "python":
        lines = bodies.read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines[offset % len(lines) :] + lines[: offset % len(lines)]]
        texts = [t for row in rows for t in (row["texts"] if "texts" in row else [row["text"]])]
        return engine_level(url, texts, label, concurrency=concurrency, duration_s=duration_s, batch=texts_per_request)
    cmd = ["wrk", f"-t{min(threads, concurrency)}", f"-c{concurrency}", f"-d{max(1, round(duration_s))}s",
           "--timeout", "10s", "-s", str(HERE / "wrk_bodies.lua"), url,
           "--", str(bodies), str(offset), path]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    s = json.loads(line[len("WRK_JSON ") :])
    return Result(
        label=label,
        concurrency=concurrency,
        requests=s["requests"],
        rps=round(s["requests"] / (s["duration_us"] / 1e6), 1),
        p50_ms=s["p50_us"] / 1000,
        p95_ms=s["p95_us"] / 1000,
        p99_ms=s["p99_us"] / 1000,
        errors=sum(v for k, v in s.items() if k.startswith("errors_")),
        texts_per_request=texts_per_request,
    )


def alternate(
    urls: dict[str, str],
    bodies: Path | dict[str, Path],
    rounds: int,
    duration_s: float,
    concurrency: int = 32,
    offset: int = 0,
    warm_up_s: float = 0.0,
) -> dict[str, list[Result]]:
    """Closed-loop rounds on servers that are all up: each round loads one after the other, the order
    reversed every round, so drift on a noisy machine falls on all of them. Every request the next body
    (of the server's own file where ``bodies`` maps names to files). ``warm_up_s``: each server first gets
    that long at the same concurrency, not counted (connections, first batches, ORT's arenas, caches)."""

    def own(name: str) -> Path:
        return bodies[name] if isinstance(bodies, dict) else bodies

    for name, url in urls.items() if warm_up_s else ():
        offset += closed_loop(url, own(name), concurrency, warm_up_s, "warm-up", offset=offset).requests + 100
    results: dict[str, list[Result]] = {name: [] for name in urls}
    for r in range(rounds):
        for name in list(urls) if r % 2 == 0 else list(reversed(urls)):
            res = closed_loop(urls[name], own(name), concurrency, duration_s, name, offset=offset)
            offset += res.requests + 100
            results[name].append(res)
            print(f"round {r + 1} {name:<16} c={concurrency} {res.rps:7.1f} rps  p50 {res.p50_ms:6.1f}  "
                  f"p95 {res.p95_ms:6.1f} ms  errors {res.errors}", flush=True)  # fmt: skip
    return results


def engine_level(
    url: str,
    texts: list[str],
    label: str,
    *,
    duration_s: float,
    concurrency: int = 512,
    rate: float | None = None,
    batch: int = 1,
    offset: int = 0,
) -> Result:
    """One level of the load tester's engine: closed loop at ``concurrency``, or with ``rate`` an open loop
    (Poisson arrivals, latency from the arrival: queueing included) with at most ``concurrency`` in flight."""
    offset %= len(texts)
    spec = LoadSpec(url, concurrency=concurrency, rate=rate, duration_s=duration_s, batch=batch)
    return as_result(label, asyncio.run(run_level(spec, TextPicker(texts[offset:] + texts[:offset], 0.0))))


def as_result(label: str, result: LevelResult) -> Result:
    summary = summarize_level(result)
    ms = {k: v if v is not None else 0.0 for k, v in summary["latency_ms"].items()}  # None: nothing succeeded
    return Result(
        label=label,
        concurrency=0 if result.spec.rate is not None else result.spec.concurrency,
        requests=summary["sent"],
        rps=round(summary["throughput_rps"], 1),
        p50_ms=ms["p50"],
        p95_ms=ms["p95"],
        p99_ms=ms["p99"],
        errors=summary["sent"] - summary["succeeded"],
        texts_per_request=result.spec.batch,
    )


def require(missing: list[str], how: str) -> None:
    """End the bench (exit 2) with a one-line reason when something it cannot do without is not here."""
    if missing:
        print(f"skipped: {', '.join(missing)} not found ({how})", file=sys.stderr, flush=True)
        raise SystemExit(2)


def require_local_services() -> None:
    """Private Redis and PostgreSQL servers (testkit.local_services) need their binaries."""
    require(missing_binaries(), "apt-get install -y redis-server postgresql")


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # so that `finally: srv.stop()` runs when a bench is killed by timeout


class Proc(ServerProcess):
    """A bench's server (testkit.server_process), and a SIGTERM'd bench stops it on the way out."""

    def __init__(self, cmd: list[str], url: str, env: dict[str, str], log: Path, cwd: Path = ROOT) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
        super().__init__(cmd, url, log, env, cwd)


def save_report(report: dict[str, object], out: Path, heading: str = "ratios") -> None:
    """Print ``report[heading]`` (if any) and write the whole report as JSON to ``out``."""
    if isinstance(section := report.get(heading), dict):
        print(f"\n{heading}:")
        for key, value in section.items():
            print(f"  {key}: {value}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten {out}")
