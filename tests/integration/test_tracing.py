"""Traces through the app in-process (the real model, the real log), with the SDK's in-memory exporter:
which spans a request makes, how they nest under the caller's traceparent, what they carry (never text),
and that a dead OTLP endpoint costs no request. Through Ray Serve, with a real OTLP/HTTP receiver:
tests/e2e/test_tracing.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from samo_serve.compose import build_service
from samo_serve.core.model_card import ModelCard
from samo_serve.core.model_runner import OrtModelRunner
from samo_serve.core.pipeline import LocalModel
from samo_serve.http.app import create_app
from samo_serve.observability.metrics import Metrics, PrometheusFactory
from samo_serve.observability.telemetry import Telemetry
from samo_serve.observability.tracing import Tracing
from samo_serve.settings import RunnerSettings, Settings, TracingSettings
from testkit.otlp_receiver import OtlpReceiver

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
SECRET = "my sister's wedding made me cry with joy"


def _app(settings: Settings, card: ModelCard, tracing: Tracing) -> Any:
    """The one-process server's wiring (build_service), with this tracing."""
    metrics = Metrics(PrometheusFactory())
    telemetry = Telemetry(metrics, tracing=tracing)
    runner = OrtModelRunner.for_card(card, settings.model_dir, RunnerSettings(device="cpu", intra_op_threads=1))
    service = build_service(settings, LocalModel(runner, metrics), telemetry, card)
    return create_app(settings, service), service


async def test_a_request_is_one_trace_under_the_callers_traceparent(
    make_settings: Callable[..., Settings], card: ModelCard
) -> None:
    settings = make_settings(tracing=TracingSettings(enabled=True, sample_ratio=0.0))  # only the caller decides
    memory = InMemorySpanExporter()
    tracing = Tracing(settings.tracing, "test", exporter=memory)
    app, service = _app(settings, card, tracing)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://samo") as client:
            r = await client.post("/predict", json={"text": SECRET, "user_id": "u1"}, headers={"traceparent": CALLER})
            assert r.status_code == 200, r.text
            unsampled = await client.post("/predict", json={"text": "another text"})  # ratio 0: not traced
            assert unsampled.status_code == 200
            assert service.request_log is not None
            await service.request_log.writer.flush()
    tracing.flush()
    spans = {s.name: s for s in memory.get_finished_spans()}
    expected = {"POST /predict", "validate", "cache.lookup", "classify", "micro_batch", "tokenize", "model.call"}
    assert expected | {"log.write"} <= set(spans), sorted(spans)
    assert len(memory.get_finished_spans()) == len(spans)  # one request traced, each span once
    root = spans["POST /predict"]
    assert root.context is not None
    assert f"{root.context.trace_id:032x}" == TRACE_ID
    assert root.parent is not None
    assert f"{root.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert root.attributes is not None
    assert root.attributes["samo.request_id"] == r.headers["x-request-id"]
    assert root.attributes["http.response.status_code"] == 200
    parent_of = {name: s.parent.span_id for name, s in spans.items() if s.parent is not None}
    for child, parent in [("validate", "POST /predict"), ("cache.lookup", "POST /predict"),
                          ("classify", "POST /predict"), ("micro_batch", "classify"), ("tokenize", "micro_batch"),
                          ("model.call", "micro_batch"), ("log.write", "POST /predict")]:  # fmt: skip
        assert parent_of[child] == spans[parent].context.span_id, (child, parent)  # type: ignore[union-attr]
    assert spans["model.call"].attributes == {"samo.batch_size": 1}
    write = spans["log.write"]  # the writer's batch, in the request's trace (rows of other requests linked)
    assert write.attributes is not None
    assert write.attributes["samo.rows"] >= 1
    for span in spans.values():  # ids, counts and the tenant: never the text
        assert SECRET not in repr(dict(span.attributes or {})), span.name
        assert not span.events, span.name


@pytest.mark.parametrize("endpoint", ["unreachable", "empty", "wrong"])
async def test_a_bad_collector_fails_no_request_and_is_counted(
    make_settings: Callable[..., Settings], card: ModelCard, endpoint: str
) -> None:
    """Nothing listening (connection refused), no URL at all, and a server that answers 404 to OTLP."""
    with OtlpReceiver(status=404) as wrong:
        url = {"unreachable": "http://127.0.0.1:9", "empty": "", "wrong": wrong.url}[endpoint]
        tracing = TracingSettings(enabled=True, sample_ratio=1.0, otlp_endpoint=url, export_timeout_s=0.5)
        settings = make_settings(tracing=tracing)
        failures: list[int] = []
        traces = Tracing(tracing, "test", on_export_failure=failures.append)
        app, _ = _app(settings, card, traces)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://samo") as client:
                for i in range(5):
                    r = await client.post("/predict", json={"text": f"text number {i}"})
                    assert r.status_code == 200, r.text
        traces.flush(timeout_s=10)
        assert sum(failures) > 0  # spans lost, counted; no request failed
        assert wrong.requests > 0 or endpoint != "wrong"
