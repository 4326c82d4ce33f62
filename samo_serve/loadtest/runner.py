"""A whole load test: a sweep of levels (or a stress ramp), a live progress bar, the outputs."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from samo_serve.loadtest.corpus import entry_picker, load_corpus
from samo_serve.loadtest.engine import LevelResult, LoadSpec, TextPicker, run_level
from samo_serve.loadtest.output import write_outputs
from samo_serve.loadtest.stats import fetch_stats
from samo_serve.loadtest.summary import P95_TARGET_MS, summarize_level

__all__ = ["STRESS_STEPS", "run_loadtest"]

STRESS_STEPS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
STRESS_SUCCESS = 0.95


async def running_replicas(url: str, api_key: str | None) -> dict[str, int] | None:
    """Replicas per deployment as the level ends (from /stats): what ``samo-serve plan`` divides by."""
    headers = {"X-API-Key": api_key} if api_key else {}
    async with httpx.AsyncClient(base_url=url, timeout=10, headers=headers) as client:
        stats = await fetch_stats(client)
    replicas = (stats or {}).get("replicas")
    return dict(replicas) if replicas else None


def _degraded(level: dict[str, Any], p95_target_ms: float) -> bool:
    p95 = level["latency_ms"]["p95"]
    return level["success_rate"] < STRESS_SUCCESS or p95 is None or p95 > p95_target_ms


async def _levels(
    base: LoadSpec, loads: list[int | float], open_loop: bool, stress: bool, pick: Callable[[], str],
    p95_target_ms: float, console: Console,
) -> tuple[list[dict[str, Any]], list[LevelResult]]:  # fmt: skip
    summaries: list[dict[str, Any]] = []
    results: list[LevelResult] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        for load in loads:
            spec = replace(base, rate=float(load)) if open_loop else replace(base, concurrency=int(load))
            label = f"{load:g} req/s" if open_loop else f"c={load}"
            task = progress.add_task(label, total=spec.requests)

            async def advance(_done: int, task: TaskID = task) -> None:
                progress.advance(task)

            result = await run_level(spec, pick, on_done=advance)
            summary = summarize_level(result, p95_target_ms)
            summary["replicas"] = await running_replicas(base.url, base.api_key)
            progress.update(
                task,
                description=f"{label}: {summary['throughput_rps']} rps, p95 {summary['latency_ms']['p95']} ms, "
                f"{summary['success_rate']:.1%} ok",
            )
            summaries.append(summary)
            results.append(result)
            if stress and _degraded(summary, p95_target_ms):
                break
    return summaries, results


def run_loadtest(
    url: str,
    concurrency: list[int],
    rate: list[float] | None = None,
    requests: int | None = None,
    duration_s: float | None = None,
    corpus: Path | None = None,
    repeat_ratio: float = 0.0,
    unique: bool = False,
    batch: int = 1,
    entries: int = 1,
    api_key: str | None = None,
    stress: bool = False,
    p95_target_ms: float = P95_TARGET_MS,
    out: Path | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run the levels and return the run document (also written to ``out`` as results.json + report.md).

    ``unique``: every fresh text tagged and numbered (engine.TextPicker), so none is a cache hit.
    ``entries`` > 1: each text sent is an entry of that many corpus texts (corpus.entry_picker).
    """
    console = console or Console()
    if requests is None and duration_s is None:
        requests = 200
    texts = load_corpus(corpus)
    picker = TextPicker(texts, repeat_ratio, unique=unique)
    pick = entry_picker(picker, entries) if entries > 1 else picker
    base = LoadSpec(url=url.rstrip("/"), requests=requests, duration_s=duration_s, batch=batch, api_key=api_key)
    if stress:
        loads: list[int | float] = list(STRESS_STEPS)
        open_loop = False
    elif rate:
        loads, open_loop = list(rate), True
        base = replace(base, concurrency=max(concurrency))
    else:
        loads, open_loop = list(concurrency), False
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    levels, results = asyncio.run(_levels(base, loads, open_loop, stress, pick, p95_target_ms, console))
    run: dict[str, Any] = {
        "url": base.url,
        "started_at": started_at,
        "corpus": (str(corpus) if corpus else f"built-in sample ({len(texts)} texts)")
        + (", every text numbered (unique)" if unique else ""),
        "repeat_ratio": repeat_ratio,
        "batch": batch,
        "sentences_per_text": entries,
        "bound": f"{requests} requests per level" if requests else f"{duration_s:g} s per level",
        "p95_target_ms": p95_target_ms,
        "levels": levels,
    }
    if urlsplit(base.url).hostname in ("127.0.0.1", "localhost", "::1"):
        # the service shared this machine: its CPUs are what the measured capacity ran on (samo-serve plan)
        run["host_cpus"] = os.cpu_count()
    if stress:
        failing = next((lv for lv in levels if _degraded(lv, p95_target_ms)), None)
        passing = [lv for lv in levels if not _degraded(lv, p95_target_ms)]
        run["stress"] = {
            "degradation_at": failing["concurrency"] if failing else None,
            "max_sustainable": f"c={passing[-1]['concurrency']}" if passing else None,
            "max_sustainable_rps": passing[-1]["throughput_rps"] if passing else 0.0,
        }
    if out is not None:
        files = write_outputs(run, [r.latencies_s for r in results], out)
        console.print(f"written: {', '.join(str(f) for f in files)}")
    return run
