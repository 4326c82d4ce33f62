"""Metrics, sliding windows, recommendations, /stats, /dashboard, the report and the Grafana dashboard."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client import generate_latest
from rich.console import Console

from samo_serve.core.model_card import ModelCard
from samo_serve.http.app import create_app
from samo_serve.observability.metrics import LATENCY_BUCKETS_S, Metrics, PrometheusFactory
from samo_serve.observability.recommendations import RecommendationSettings, recommend
from samo_serve.observability.telemetry import Telemetry
from samo_serve.observability.window_stats import COL, WindowStats, histogram_quantile, merge, summarize
from samo_serve.ops.report import render_report
from samo_serve.service import EmotionService
from samo_serve.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------------------ windows


def test_windows_count_only_their_seconds() -> None:
    clock = Clock()
    w = WindowStats(clock)
    w.record_request(200, 0.01)
    clock.now += 120
    w.record_request(500, 0.2)
    w.record_request(429, 0.001)
    assert summarize(w.totals(60), 60)["requests"] == 2
    assert summarize(w.totals(300), 300)["requests"] == 3
    one_minute = summarize(w.totals(60), 60)
    assert one_minute["errors"] == {"4xx": 1, "429": 1, "5xx": 1, "503": 0}
    assert one_minute["error_rate"] == 0.5
    clock.now += 3600
    assert summarize(w.totals(3600), 3600)["requests"] == 0  # an hour later everything has aged out


def test_a_slot_is_reused_after_an_hour() -> None:
    clock = Clock()
    w = WindowStats(clock)
    w.record_request(200, 0.01)
    clock.now += 3600  # same slot index, new second
    w.record_request(200, 0.01)
    assert w.totals(3600)[COL["requests"]] == 1


def test_a_client_that_hung_up_is_counted_apart_not_as_an_error() -> None:
    w = WindowStats(Clock())
    w.record_request(200, 0.01)
    w.record_request(499, 0.3)
    s = summarize(w.totals(60), 60)
    assert s["requests"] == 2
    assert s["client_closed"] == 1
    assert s["errors"] == {"4xx": 0, "429": 0, "5xx": 0, "503": 0}
    assert s["error_rate"] == 0.0


def test_levels_and_batches() -> None:
    w = WindowStats(Clock())
    w.record_levels(["l1", "l1", "l2", "miss"])
    w.record_batch(3, 64)
    w.record_batch(5, 64)
    s = summarize(w.totals(60), 60)
    assert s["texts"] == 4
    assert s["cache_hit_rate"] == {"l1": 0.5, "l2": 0.25, "l3": 0.0}
    assert s["cache_answers"] == {"l1": 2, "l2": 1, "l3": 0, "miss": 1}
    assert s["batch"] == {"batches": 2, "mean_size": 4.0, "fill": round(8 / 128, 4)}


def _prometheus_quantile(q: float, observations: list[float]) -> float:
    """histogram_quantile as Prometheus computes it, from a real prometheus_client histogram's buckets."""
    factory = PrometheusFactory()
    hist = factory.histogram("h_seconds", "h", LATENCY_BUCKETS_S)
    for v in observations:
        hist.observe(v)
    text = generate_latest(factory.registry).decode()
    cumulative = [float(m) for m in re.findall(r'h_seconds_bucket\{le="[^"]+"\} (\S+)', text)]
    counts = np.diff([0.0, *cumulative])
    value = histogram_quantile(q, counts)
    assert value is not None
    return value


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_percentiles_match_the_prometheus_histogram(q: float) -> None:
    rng = np.random.default_rng(1)
    latencies = list(rng.lognormal(mean=-3.5, sigma=0.8, size=2000))
    w = WindowStats(Clock())
    for v in latencies:
        w.record_request(200, float(v))
    ours = summarize(w.totals(60), 60)["latency_ms"][{0.5: "p50", 0.95: "p95", 0.99: "p99"}[q]]
    assert ours == pytest.approx(_prometheus_quantile(q, latencies) * 1000, abs=0.01)
    exact = float(np.quantile(latencies, q)) * 1000
    bucket = np.searchsorted(LATENCY_BUCKETS_S, exact / 1000)
    width = (LATENCY_BUCKETS_S[bucket] - (LATENCY_BUCKETS_S[bucket - 1] if bucket else 0)) * 1000
    assert abs(ours - exact) <= width  # within one bucket of the true value


def test_export_absorb_and_merge() -> None:
    clock = Clock()
    a, b = WindowStats(clock), WindowStats(clock)
    a.record_request(200, 0.01)
    b.record_request(200, 0.02)
    b.record_request(200, 0.02)
    hub_a = WindowStats(clock)
    hub_a.absorb(a.export(0))
    a.record_request(200, 0.01)  # the same second grows: pushed again, it replaces the earlier copy
    hub_a.absorb(a.export(int(clock.now)))
    hub_b = WindowStats(clock)
    hub_b.absorb(b.export(0))
    merged = merge([hub_a, hub_b], clock)
    assert summarize(merged.totals(60), 60)["requests"] == 4


def test_series_sums_to_the_window() -> None:
    clock = Clock()
    w = WindowStats(clock)
    for _ in range(100):
        clock.now += 2.5
        w.record_request(200, 0.01)
    points = w.series(300, 5)
    assert sum(row[COL["requests"]] for _, row in points) == w.totals(300)[COL["requests"]] == 100
    assert [t for t, _ in points] == sorted(t for t, _ in points)


# ---------------------------------------------------------------------------------- recommendations


def _window(**overrides: Any) -> dict[str, Any]:
    w = WindowStats(Clock())
    for _ in range(200):
        w.record_request(200, 0.01)
    w.record_levels(["l1"] * 100 + ["miss"] * 100)
    w.record_batch(32, 64)
    s = summarize(w.totals(300), 300)
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if field:
            s[section][field] = value
        else:
            s[section] = value
    return s


def test_a_healthy_window_gets_no_advice() -> None:
    assert recommend(_window(), RecommendationSettings()) == []


@pytest.mark.parametrize(
    ("overrides", "kind", "metric", "value"),
    [
        ({"cache_hit_rate": {"l1": 0.02, "l2": 0.0, "l3": 0.0}}, "cache", "cache_hit_rate", 0.02),
        ({"latency_ms__p95": 812.0}, "latency", "latency_ms.p95", 812.0),
        ({"batch__fill": 0.01, "throughput_rps": 50.0}, "batching", "batch.fill", 0.01),
        ({"error_rate": 0.05, "errors": {"4xx": 0, "429": 0, "5xx": 10, "503": 8}}, "errors", "error_rate", 0.05),
    ],
)
def test_each_rule_names_the_number_that_triggered_it(
    overrides: dict[str, Any], kind: str, metric: str, value: float
) -> None:
    (advice,) = recommend(_window(**overrides), RecommendationSettings())
    assert (advice["kind"], advice["metric"], advice["value"]) == (kind, metric, value)
    assert advice["message"]


def test_memory_and_failed_dependencies() -> None:
    memory = {"max_replica_rss_mb": 950.0, "max_rss_mb": 1000}
    (advice,) = recommend(_window(), RecommendationSettings(), memory)
    assert advice["kind"] == "memory"
    assert advice["value"] == 950.0
    broken = recommend(
        _window(error_rate=0.2, errors={"4xx": 0, "429": 0, "5xx": 40, "503": 40}),
        RecommendationSettings(),
        dependencies={"redis": {"state": "down"}, "database": {"state": "up"}},
    )
    assert "down: redis" in broken[0]["message"]


def test_too_little_traffic_is_not_judged() -> None:
    w = WindowStats(Clock())
    w.record_request(500, 2.0)
    w.record_levels(["miss"])
    assert recommend(summarize(w.totals(300), 300), RecommendationSettings()) == []


# --------------------------------------------------------------------------------- through the app


async def test_requests_reach_metrics_and_stats(make_service: Callable[..., EmotionService], fake_runner: Any) -> None:
    settings = Settings()
    factory = PrometheusFactory()
    telemetry = Telemetry.from_settings(settings, factory)
    base = make_service(fake_runner, settings)
    app = create_app(settings, EmotionService(base.card, base.pipeline, settings, telemetry=telemetry))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for i in range(5):
            assert (await client.post("/predict", json={"text": f"t{i % 3}"})).status_code == 200
        assert (await client.post("/predict/batch", json={"texts": ["a", "b"]})).status_code == 200
        assert (await client.post("/predict", json={"text": ""})).status_code == 422
        assert (await client.get("/nowhere")).status_code == 404
        stats = (await client.get("/stats")).json()
    text = generate_latest(factory.registry).decode()
    assert 'samo_requests_total{route="/predict",status="200"} 5.0' in text
    assert 'samo_requests_total{route="/predict",status="422"} 1.0' in text
    assert 'samo_requests_total{route="other",status="404"} 1.0' in text  # no label per random URL
    one = stats["windows"]["1m"]
    assert one["requests"] == 7  # the prediction routes only
    assert one["texts"] == 7  # 5 + 2 answered texts (the 422 had none)
    assert one["cache_answers"]["l1"] == 2  # t0 and t1 repeated
    assert one["errors"]["4xx"] == 1
    assert stats["ingress_replicas_reporting"] == 1
    assert stats["replicas"] is None  # not on Ray Serve
    assert stats["replica"]["cache"]["l1"]["hits"] == 2
    assert isinstance(stats["recommendations"], list)


async def test_metrics_off(make_service: Callable[..., EmotionService], fake_runner: Any) -> None:
    settings = Settings(observability={"metrics_enabled": False})
    factory = PrometheusFactory()
    base = make_service(fake_runner, settings)
    telemetry = Telemetry.from_settings(settings, factory)
    app = create_app(settings, EmotionService(base.card, base.pipeline, settings, telemetry=telemetry))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.post("/predict", json={"text": "x"})).status_code == 200
        assert (await client.get("/stats")).json()["windows"]["1m"]["requests"] == 1  # /stats still counts
    assert "samo_requests_total" not in generate_latest(factory.registry).decode()


async def test_without_service_telemetry_the_app_still_counts_requests(
    make_service: Callable[..., EmotionService], fake_runner: Any
) -> None:
    app = create_app(Settings(), make_service(fake_runner))  # tests and benches build services without one
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.post("/predict", json={"text": "x"})).status_code == 200
        one = (await client.get("/stats")).json()["windows"]["1m"]
    assert one["requests"] == 1
    assert one["texts"] == 0  # texts per cache level are the service's to count


class StuckPipeline:
    """A model that never answers; records that the request's work was cancelled."""

    def __init__(self) -> None:
        self.called = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def classify(self, texts: list[str]) -> list[Any]:
        self.called.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        raise AssertionError("unreachable")

    async def model_info(self) -> dict[str, object]:
        return {"provider": "stuck"}


@pytest.mark.parametrize("how", ["app-sees-disconnect", "serve-cancels"])
async def test_a_client_that_hangs_up_is_not_a_server_error(card: ModelCard, how: str) -> None:
    """wrk closing its connections: the requests in flight count as client_closed (499), never as 5xx.

    Under uvicorn the app reads the disconnect itself; under Ray Serve the proxy sees it and cancels
    the request (CancelledError), which used to be counted as a 500.
    """
    settings = Settings()
    factory = PrometheusFactory()
    telemetry = Telemetry.from_settings(settings, factory)
    pipeline = StuckPipeline()
    app = create_app(settings, EmotionService(card, pipeline, settings, telemetry=telemetry))
    hung_up = asyncio.Event()
    messages = [{"type": "http.request", "body": b'{"text": "slow"}', "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/predict", "raw_path": b"/predict", "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"application/json")], "client": ("127.0.0.1", 1), "server": ("t", 80),
    }  # fmt: skip
    request = asyncio.create_task(app(scope, receive, send))
    await asyncio.wait_for(pipeline.called.wait(), 5)
    if how == "app-sees-disconnect":
        hung_up.set()
        await asyncio.wait_for(request, 5)
    else:
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
    await asyncio.wait_for(pipeline.cancelled.wait(), 5)  # the model work stops with the request
    one = summarize(telemetry.windows.totals(60), 60)
    assert one["requests"] == 1
    assert one["client_closed"] == 1
    assert one["errors"] == {"4xx": 0, "429": 0, "5xx": 0, "503": 0}
    assert one["error_rate"] == 0.0
    text = generate_latest(factory.registry).decode()
    assert 'samo_requests_total{route="/predict",status="499"} 1.0' in text
    assert not re.search(r'samo_requests_total\{[^}]*status="5\d\d"\}', text)


async def test_dashboard_is_self_contained(make_service: Callable[..., EmotionService], fake_runner: Any) -> None:
    app = create_app(Settings(), make_service(fake_runner))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        page = await client.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "content-security-policy" in page.headers
    assert not re.search(r"(src|href)=\"https?://", page.text)  # no CDN: works offline
    assert 'fetch("stats"' in page.text
    for chart in ("chart-latency", "chart-throughput", "chart-errors", "chart-cache", "chart-batch"):
        assert f'id="{chart}"' in page.text


def test_report_renders_every_section() -> None:
    w = WindowStats()
    for _ in range(150):
        w.record_request(200, 0.9)
    w.record_levels(["miss"] * 150)
    from samo_serve.observability.telemetry import build_view

    deployments = {
        name: {"status": "HEALTHY", "replica_states": {"RUNNING": n}, "message": ""}
        for name, n in (("Ingress", 1), ("EmotionModel", 2))
    }
    view = build_view(w, {"r1": {"rss_mb": 321.0}}, RecommendationSettings(), None, deployments=deployments)
    out = StringIO()
    render_report(view, Console(file=out, width=160))
    text = out.getvalue()
    for expected in ("1m", "5m", "1h", "EmotionModel", "321 MB", "latency"):
        assert expected in text


# ------------------------------------------------------------------------------------------ grafana


def exported_names() -> set[str]:
    """Every series name the app's metrics produce on Ray's endpoint (ray_ prefix, Prometheus suffixes)."""
    factory = PrometheusFactory()
    Metrics(factory)
    names = set()
    for family in factory.registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}[family.type]
        names.update(f"ray_{family.name}{s}" for s in suffixes)
    return names


def grafana_metric_names() -> set[str]:
    dashboard = json.loads((ROOT / "k8s" / "grafana" / "samo-serve.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    return {name for e in exprs for name in re.findall(r"\b(ray_[a-z_]+)\b", e)}


def test_every_samo_metric_the_grafana_dashboard_queries_is_exported() -> None:
    queried = {n for n in grafana_metric_names() if n.startswith("ray_samo_")}
    assert queried, "the dashboard queries no samo metric"
    assert queried <= exported_names(), queried - exported_names()
    # and every samo metric family has a panel
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in exported_names()}
    assert families <= {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in queried}


async def test_one_process_emits_the_model_metrics_ray_mode_does(tmp_path: Any) -> None:
    """One composition root for both modes: the model's time and batch sizes are measured in one process too."""
    from samo_serve.ops.single_process import build_app

    factory = PrometheusFactory()
    settings = Settings(request_log={"enabled": False}, data_dir=tmp_path)
    app = build_app(settings, factory)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post("/predict/batch", json={"texts": ["so happy today", "what a mess"]})
        assert answer.status_code == 200
    text = generate_latest(factory.registry).decode()
    assert re.search(r"^samo_model_seconds_count [1-9]", text, re.MULTILINE), text
    assert re.search(r'^samo_batch_size_sum\{stage="model"\} 2\.0', text, re.MULTILINE)
    assert re.search(r'^samo_batch_size_sum\{stage="ingress"\} 2\.0', text, re.MULTILINE)
