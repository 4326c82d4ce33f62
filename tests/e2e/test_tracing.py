"""Issue 28: one request's trace through real Ray Serve (`samo-serve run`), exported as OTLP/HTTP protobuf to a
real receiver that decodes it with the protocol's own protobufs: the caller's trace id, the ingress spans,
and the model replica's spans joined to them across the Ray processes, with ids and sizes, never text."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from testkit.otlp_receiver import OtlpReceiver, ReceivedSpan

from .conftest import Server, run_server

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER = f"00-{TRACE_ID}-b7ad6b7169203331-01"
TEXT = "I finally told my brother how much I missed him, and we both laughed."
INGRESS = {
    "POST /predict",
    "validate",
    "cache.lookup",
    "classify",
    "micro_batch",
    "tokenize",
    "model.call",
    "log.write",
}


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


@pytest.fixture(scope="module")
def traced_server(tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver) -> Iterator[Server]:
    env = {
        "SAMO_TRACING__ENABLED": "true",
        "SAMO_TRACING__OTLP_ENDPOINT": receiver.url,
        "SAMO_TRACING__SAMPLE_RATIO": "0",
    }
    yield from run_server(tmp_path_factory, env)


def _ours(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    return [s for s in spans if s.trace_id == TRACE_ID]


def test_one_request_is_one_trace_across_the_ray_processes(traced_server: Server, receiver: OtlpReceiver) -> None:
    r = httpx.post(f"{traced_server.url}/predict", json={"text": TEXT}, headers={"traceparent": CALLER}, timeout=60)
    assert r.status_code == 200, r.text
    assert httpx.post(f"{traced_server.url}/predict", json={"text": "not traced"}, timeout=60).status_code == 200

    def complete(spans: list[ReceivedSpan]) -> bool:
        return INGRESS | {"model.queue", "model.ort"} <= {s.name for s in _ours(spans)}

    try:
        spans = _ours(receiver.wait_for(complete, timeout_s=60))
    except AssertionError:  # which of ours is missing, and where the others went
        seen = sorted((s.name, s.trace_id[:8], s.parent_span_id[:8]) for s in receiver.spans)
        raise AssertionError(f"trace {TRACE_ID[:8]} incomplete: {seen}") from None
    by_name = {s.name: s for s in spans}
    assert len(spans) == len(by_name)  # each span once
    root = by_name["POST /predict"]
    assert root.parent_span_id == "b7ad6b7169203331"  # the caller's span
    assert root.attributes["samo.request_id"] == r.headers["x-request-id"]
    assert root.attributes["http.response.status_code"] == 200
    chain = {
        "validate": "POST /predict", "cache.lookup": "POST /predict", "classify": "POST /predict",
        "micro_batch": "classify", "tokenize": "micro_batch", "model.call": "micro_batch",
        "model.queue": "model.call", "model.ort": "model.call", "log.write": "POST /predict",
    }  # fmt: skip
    for child, parent in chain.items():
        assert by_name[child].parent_span_id == by_name[parent].span_id, (child, parent)
    # the model's spans come from the model replica's process, the rest from the ingress replica's
    assert {by_name[n].resource["samo.process"] for n in ("model.queue", "model.ort")} == {"model"}
    assert {by_name[n].resource["samo.process"] for n in INGRESS} == {"ingress"}
    assert by_name["model.ort"].attributes["samo.batch_size"] >= 1
    ort, call = by_name["model.ort"], by_name["model.call"]
    assert call.start_ns <= ort.start_ns <= ort.end_ns <= call.end_ns + 50_000_000  # inside the hop (clock skew)
    for span in spans:
        assert TEXT not in repr(span.attributes), span.name
    # sample_ratio 0: the request without a traceparent left no trace
    assert all(s.trace_id == TRACE_ID for s in receiver.spans if s.name == "POST /predict")
