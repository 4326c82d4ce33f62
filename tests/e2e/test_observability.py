"""After a burst of real traffic through Ray Serve: /stats, the dashboard (headless Chromium) and Ray's
Prometheus endpoint agree; the Grafana dashboard only queries metrics that endpoint has."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from samo_serve.observability.metrics import LATENCY_BUCKETS_S
from samo_serve.observability.window_stats import histogram_quantile
from testkit.drills import drive

from .conftest import Server

ROOT = Path(__file__).resolve().parents[2]
PREDICT = ("/predict", "/predict/batch")


def scrape(server: Server) -> dict[str, Any]:
    """Prediction requests and latency buckets summed over replicas, and every series name."""
    text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=30).text
    requests, buckets, names = 0.0, dict.fromkeys([*LATENCY_BUCKETS_S, float("inf")], 0.0), set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.add(sample.name)
            if sample.name == "ray_samo_requests_total" and sample.labels.get("route") in PREDICT:
                requests += sample.value
            if sample.name == "ray_samo_request_latency_seconds_bucket" and sample.labels.get("route") in PREDICT:
                buckets[float(sample.labels["le"])] += sample.value
    cumulative = [buckets[b] for b in sorted(buckets)]
    return {"requests": requests, "counts": np.diff([0.0, *cumulative]), "names": names}


def settled_scrape(server: Server, expected: int, timeout_s: float = 90) -> dict[str, Any]:
    """Ray exports metrics every few seconds: scrape until the count reaches what /stats saw."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = scrape(server)
        if got["requests"] >= expected or time.monotonic() > deadline:
            return got
        time.sleep(2)


def dashboard_dom(server: Server, screenshot: Path | None = None, query: str = "") -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed: scripts/test.sh installs Debian's chromium")
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=8000"]
    url = f"{server.url}/dashboard{query}"
    if screenshot is not None:
        shot = [*base, "--window-size=1400,1100", f"--screenshot={screenshot}", url]
        subprocess.run(shot, capture_output=True, timeout=120, check=True)
    return subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True).stdout


def dom_numbers(dom: str) -> dict[str, Any]:
    windows = {w: int(n) for w, n in re.findall(r'data-window="(\w+)" data-requests="(\d+)"', dom)}
    p95 = {w: float(v) for w, v in re.findall(r'data-window="(\w+)" data-requests="\d+" data-p95="([\d.]+)"', dom)}
    charts = {
        name: {"sum": float(total), "points": int(points)}
        for name, total, points in re.findall(
            r'data-name="([\w.]+)" data-last="[^"]*" data-sum="([^"]*)" '
            r'data-points="(\d+)"',
            dom,
        )  # fmt: skip
    }
    return {"windows": windows, "p95": p95, "charts": charts}


async def burst(server: Server, n: int, tag: str) -> None:
    texts = [f"{tag} {i}: I can't believe how well this went, thank you!" for i in range(n)]
    statuses = await drive(server.url, texts + texts[: n // 10], n + n // 10, 8)
    assert statuses == {200: n + n // 10}
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        for i in range(10):
            r = await client.post("/predict/batch", json={"texts": [f"{tag} batch {i} {k}" for k in range(4)]})
            assert r.status_code == 200


def stats(server: Server) -> dict[str, Any]:
    time.sleep(2.5)  # the last second reaches the StatsHub with the next push
    body: dict[str, Any] = httpx.get(f"{server.url}/stats", timeout=60).json()
    return body


def test_stats_dashboard_and_prometheus_agree(server: Server, tmp_path: Path) -> None:
    asyncio.run(burst(server, 300, "first"))
    view = stats(server)
    hour = view["windows"]["1h"]  # everything since the server started (the session is shorter)
    assert hour["requests"] >= 340
    prom = settled_scrape(server, hour["requests"])
    assert abs(prom["requests"] - hour["requests"]) <= 0.01 * hour["requests"], (prom["requests"], hour["requests"])
    prom_p95 = histogram_quantile(0.95, prom["counts"]) * 1000  # type: ignore[operator]
    i = int(np.searchsorted(LATENCY_BUCKETS_S, prom_p95 / 1000))
    width_ms = (LATENCY_BUCKETS_S[i] - (LATENCY_BUCKETS_S[i - 1] if i else 0.0)) * 1000
    assert abs(prom_p95 - hour["latency_ms"]["p95"]) <= width_ms, (prom_p95, hour["latency_ms"]["p95"], width_ms)
    assert view["replicas"]["EmotionModel"] >= 1
    assert view["replicas"]["Ingress"] == 1

    shot = tmp_path / "dashboard.png"
    dom = dashboard_dom(server, shot)
    first = dom_numbers(dom)
    assert first["windows"]["1h"] == hour["requests"]  # the page shows what /stats reports
    assert first["p95"]["1h"] == pytest.approx(hour["latency_ms"]["p95"], abs=0.05)
    for chart in ("p95_ms", "rps", "batch_size"):
        assert first["charts"][chart]["points"] > 0, chart  # non-empty charts
    five = stats(server)["windows"]["5m"]["requests"]
    assert first["charts"]["rps"]["sum"] * 5 == pytest.approx(five, abs=2)  # the series holds the window
    assert shot.stat().st_size > 20_000
    mix = re.search(r'<svg id="chart-mix"[^>]*data-buckets="(\d+)" data-texts="(\d+)"', dom)
    assert mix is not None  # the analytics view: the open service's emotion mix over the last 24 h
    assert int(mix[1]) >= 24
    assert int(mix[2]) >= 340  # every text of the burst (the log is written off the request path)
    assert re.search(r'<rect [^>]*data-label="', dom)
    if (ROOT / "runs").is_dir():  # keep the last screenshot for a person to look at
        shutil.copy(shot, ROOT / "runs" / "dashboard.png")

    asyncio.run(burst(server, 100, "second"))
    stats(server)
    second = dom_numbers(dashboard_dom(server))
    assert second["windows"]["1h"] > first["windows"]["1h"]  # the charts follow the traffic
    assert second["charts"]["rps"]["sum"] > first["charts"]["rps"]["sum"]


def test_grafana_queries_only_metrics_the_endpoint_has(server: Server) -> None:
    dashboard = json.loads((ROOT / "k8s" / "grafana" / "samo-serve.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queried = {n for e in exprs for n in re.findall(r"\b(ray_[a-z_]+)\b", e)}
    # series that exist once their event has happened: a tenant judged for drift (its gauges are read off
    # this endpoint in test_tenants.py), a span export that failed (tests/integration/test_tracing.py)
    queried -= {"ray_samo_drift_mix_js", "ray_samo_drift_confidence_psi", "ray_samo_trace_export_failures_total"}
    asyncio.run(burst(server, 50, "grafana"))
    deadline = time.monotonic() + 90  # some of Serve's series appear only after a control-loop round
    while (missing := queried - scrape(server)["names"]) and time.monotonic() < deadline:
        time.sleep(3)
    assert not missing, sorted(missing)
