"""samo_serve.client over httpx.MockTransport: errors, retries, chunking, typed answers, import weight."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

import samo_serve.errors as server_errors
from samo_serve.client import (
    AnalyticsUnavailable,
    ApiError,
    AsyncClient,
    Client,
    ConnectFailed,
    EmotionStat,
    EmptyText,
    InvalidRequest,
    JournalEntry,
    Overloaded,
    RateLimited,
    Retry,
    ServerError,
    TimedOut,
    Unauthorized,
    Unavailable,
)
from samo_serve.client.errors import CODES

Handler = Callable[[httpx.Request], httpx.Response]
NO_WAIT = Retry(max_attempts=3, max_sleep_s=10, backoff_s=0)


def _result(text: str, **extra: Any) -> dict[str, Any]:
    """A /predict answer whose primary label names the text, so order is checkable."""
    return {
        "emotions": [{"label": text, "score": 0.9}],
        "primary": {"label": text, "score": 0.9},
        "model_version": "m-1",
        "cache": "miss",
        "truncated": False,
        "latency_ms": 1.5,
        **extra,
    }


def _error(status: int, code: str, headers: dict[str, str] | None = None, **extra: Any) -> httpx.Response:
    body = {"error": {"code": code, "message": f"{code} happened", "request_id": "rid-1", **extra}}
    return httpx.Response(status, json=body, headers=headers)


def _openapi(max_items: int | None) -> dict[str, Any]:
    texts: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
    if max_items is not None:
        texts["maxItems"] = max_items
    return {"components": {"schemas": {"BatchPredictRequest": {"properties": {"texts": texts}}}}}


class Server:
    """A scripted server: answers from ``script`` in turn (the last one repeats), records every request."""

    def __init__(self, *script: httpx.Response | Exception, max_items: int | None = 3) -> None:
        self.script = list(script)
        self.max_items = max_items
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/openapi.json":
            return httpx.Response(200, json=_openapi(self.max_items))
        if request.url.path == "/predict/batch" and not self.script:
            texts = json.loads(request.content)["texts"]
            return httpx.Response(200, json={"results": [_result(t) for t in texts], "count": len(texts)})
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


def _client(server: Handler, retry: Retry = NO_WAIT, **kwargs: Any) -> Client:
    return Client("http://samo", transport=httpx.MockTransport(server), retry=retry, **kwargs)


def _async_client(server: Handler, retry: Retry = NO_WAIT, **kwargs: Any) -> AsyncClient:
    return AsyncClient("http://samo", transport=httpx.MockTransport(server), retry=retry, **kwargs)


# ----------------------------------------------------------------------------------------- weight


def test_importing_the_client_loads_nothing_of_the_server() -> None:
    code = (
        "import sys, samo_serve.client\n"
        "heavy = ('ray', 'onnxruntime', 'fastapi', 'starlette', 'numpy', 'tokenizers')\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in heavy or m == 'samo_serve.service'\n"
        "          or m.startswith(('samo_serve.http', 'samo_serve.core', 'samo_serve.storage'))]\n"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------------------- errors


def _server_error_classes() -> list[type[server_errors.SamoError]]:
    found, todo = [], [server_errors.SamoError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [c for c in found if c.__module__ == server_errors.__name__]


@pytest.mark.parametrize("server_cls", _server_error_classes(), ids=lambda c: c.code)
def test_every_server_code_has_its_client_class(server_cls: type[server_errors.SamoError]) -> None:
    client_cls = CODES[server_cls.code]
    status = server_cls.http_status
    group = {401: Unauthorized, 429: RateLimited, 503: Unavailable}.get(status)
    if group is None:
        group = InvalidRequest if 400 <= status < 499 else ServerError
    assert issubclass(client_cls, group), (server_cls.code, client_cls, group)


def test_error_carries_the_envelope() -> None:
    server = Server(_error(422, "EMPTY_TEXT", details=[{"loc": ["text"]}]))
    with _client(server) as samo, pytest.raises(EmptyText) as caught:
        samo.predict(" ")
    error = caught.value
    assert (error.status, error.code, error.request_id) == (422, "EMPTY_TEXT", "rid-1")
    assert error.message == "EMPTY_TEXT happened"
    assert error.details == [{"loc": ["text"]}]
    assert "rid-1" in str(error)
    assert len(server.requests) == 1  # a caller's mistake is never retried


def test_an_answer_that_is_not_the_envelope_still_raises_by_status() -> None:
    server = Server(httpx.Response(502, text="<html>Bad Gateway</html>", headers={"x-request-id": "proxy"}))
    with _client(server) as samo, pytest.raises(ServerError) as caught:
        samo.predict("hi")
    assert (caught.value.status, caught.value.code, caught.value.request_id) == (502, "HTTP_502", "proxy")
    assert "Bad Gateway" in caught.value.message


def test_unknown_code_maps_by_status() -> None:
    with _client(Server(_error(429, "SOMETHING_NEW")), Retry(max_attempts=1)) as samo, pytest.raises(RateLimited):
        samo.emotions()


# ---------------------------------------------------------------------------------------- retries


def test_retry_delay_honours_retry_after_and_the_caps() -> None:
    policy = Retry(max_attempts=3, max_sleep_s=5, backoff_s=1)
    limited = RateLimited(429, "RATE_LIMITED", "m", retry_after_s=2)
    assert policy.delay(1, limited) == 2
    assert policy.delay(3, limited) is None  # attempts spent
    assert policy.delay(1, RateLimited(429, "RATE_LIMITED", "m", retry_after_s=30)) is None  # never early
    assert 0.5 <= (policy.delay(2, Overloaded(503, "OVERLOADED", "m")) or 0) <= 2  # backoff 1 s x 2, jittered
    assert policy.delay(1, AnalyticsUnavailable(503, "ANALYTICS_UNAVAILABLE", "m")) is None
    assert policy.delay(1, InvalidRequest(400, "X", "m")) is None
    with pytest.raises(ValueError, match="invalid retry policy"):
        Retry(max_attempts=0)


def test_503_then_success_is_retried_after_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("samo_serve.client.sync.time.sleep", slept.append)
    server = Server(_error(503, "OVERLOADED", {"Retry-After": "1"}), httpx.Response(200, json=_result("ok")))
    with _client(server) as samo:
        assert samo.predict("hi").primary.label == "ok"
    assert slept == [1.0]
    assert server.paths() == ["/predict", "/predict"]


def test_retries_stop_at_max_attempts() -> None:
    server = Server(_error(429, "RATE_LIMITED", {"Retry-After": "0"}))
    with _client(server, Retry(max_attempts=4, backoff_s=0)) as samo, pytest.raises(RateLimited) as caught:
        samo.predict("hi")
    assert len(server.requests) == 4
    assert caught.value.retry_after_s == 0


def test_a_retry_after_over_the_cap_raises_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("samo_serve.client.sync.time.sleep", pytest.fail)
    server = Server(_error(429, "RATE_LIMITED", {"Retry-After": "60"}))
    with _client(server, Retry(max_sleep_s=5)) as samo, pytest.raises(RateLimited) as caught:
        samo.predict("hi")
    assert len(server.requests) == 1
    assert caught.value.retry_after_s == 60


def test_connection_failures_are_retried_timeouts_are_not() -> None:
    refused = httpx.ConnectError("refused")
    server = Server(refused, refused, httpx.Response(200, json=_result("ok")))
    with _client(server) as samo:
        assert samo.predict("hi").primary.label == "ok"
    assert len(server.requests) == 3

    server = Server(refused)
    with _client(server) as samo, pytest.raises(ConnectFailed) as caught:
        samo.predict("hi")
    assert len(server.requests) == 3
    assert isinstance(caught.value.__cause__, httpx.ConnectError)

    server = Server(httpx.ReadTimeout("slow"))
    with _client(server) as samo, pytest.raises(TimedOut):
        samo.predict("hi")
    assert len(server.requests) == 1  # the server may have done the work: not asked twice


# --------------------------------------------------------------------------------------- chunking


def test_predict_batch_chunks_over_the_servers_limit_in_order() -> None:
    server = Server(max_items=3)
    texts = [f"t{i}" for i in range(8)]
    with _client(server) as samo:
        results = samo.predict_batch(texts)
        assert [r.primary.label for r in results] == texts
        assert samo.predict_batch(t for t in ["x", "y"])[1].primary.label == "y"  # any iterable
        assert samo.predict_batch([]) == []
    batches = [json.loads(r.content)["texts"] for r in server.requests if r.url.path == "/predict/batch"]
    assert [len(b) for b in batches] == [3, 3, 2, 2]
    assert server.paths().count("/openapi.json") == 1  # learned once


def test_predict_batch_options_and_a_given_limit() -> None:
    server = Server(max_items=3)
    with _client(server, max_batch_texts=5) as samo:
        samo.predict_batch([str(i) for i in range(6)], threshold=0.25, top_k=2, all_scores=True)
    assert "/openapi.json" not in server.paths()
    bodies = [json.loads(r.content) for r in server.requests]
    assert [len(b["texts"]) for b in bodies] == [5, 1]
    assert all(b["threshold"] == 0.25 and b["top_k"] == 2 and b["all_scores"] is True for b in bodies)


def test_a_spec_without_the_limit_falls_back_to_the_server_default() -> None:
    server = Server(max_items=None)
    with _client(server) as samo:
        assert samo.max_batch_texts() == 64


def test_an_error_in_a_later_chunk_raises() -> None:
    calls = 0

    def server(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        if request.url.path == "/openapi.json":
            return httpx.Response(200, json=_openapi(2))
        calls += 1
        if calls == 2:
            return _error(413, "TEXT_TOO_LONG")
        texts = json.loads(request.content)["texts"]
        return httpx.Response(200, json={"results": [_result(t) for t in texts], "count": len(texts)})

    with _client(server) as samo, pytest.raises(InvalidRequest, match="TEXT_TOO_LONG"):
        samo.predict_batch(["a", "b", "c", "d", "e"])
    assert calls == 2


# ------------------------------------------------------------------------------- typed answers, key


def test_predict_sends_the_key_and_only_set_options() -> None:
    scores = {"joy": 0.5, "anger": 0.25}
    server = Server(httpx.Response(200, json=_result("joy", scores=scores)))
    with _client(server, api_key="samo_k_s", headers={"X-Request-ID": "mine"}) as samo:
        prediction = samo.predict("yay", all_scores=True)
        samo.predict("yay")
    assert prediction.scores == scores
    assert prediction.labels == ["joy"]
    assert prediction.raw["latency_ms"] == 1.5
    first, second = (json.loads(r.content) for r in server.requests)
    assert first == {"text": "yay", "all_scores": True}
    assert second == {"text": "yay"}
    assert server.requests[0].headers["x-api-key"] == "samo_k_s"
    assert server.requests[0].headers["x-request-id"] == "mine"


def test_ready_reads_both_answers_of_readyz() -> None:
    up = {"status": "degraded", "model": {"version": "m-1"}, "dependencies": {"redis": {"state": "down"}}, "auth": "on"}
    down = {"error": {"code": "MODEL_UNAVAILABLE", "message": "no", "request_id": "r"}, "status": "unavailable"}
    with _client(Server(httpx.Response(200, json=up))) as samo:
        ready = samo.ready()
    assert (ready.ready, ready.status, ready.model_version, ready.auth) == (True, "degraded", "m-1", "on")
    server = Server(httpx.Response(503, json=down))
    with _client(server) as samo:
        assert samo.ready().ready is False
    assert len(server.requests) == 1  # a readiness probe answers now, never after retries
    with _client(Server(_error(401, "UNAUTHORIZED"))) as samo, pytest.raises(Unauthorized):
        samo.ready()


def test_emotions_and_analytics() -> None:
    label = {"id": 0, "label": "admiration", "ekman": "joy", "sentiment": "positive", "threshold": 0.3}
    summary = {
        "start": "2026-01-01T00:00:00+00:00",
        "end": "2026-01-02T00:00:00+00:00",
        "requests": 3,
        "texts": 4,
        "cache": {"hit_rate": 0.25, "by_level": {"l1": 1, "miss": 3}},
        "processing_time_ms": {"p50": 5.0, "p95": 9.0, "mean": 6.0},
    }
    row = {"emotion": "joy", "count": 4, "mean_confidence": 0.8, "mean_processing_ms": 6.0}
    answers = {
        "/emotions": {"model_version": "m-1", "count": 1, "emotions": [label]},
        "/analytics/summary": summary,
        "/analytics/emotions": {"start": summary["start"], "end": summary["end"], "emotions": [row]},
    }
    seen: list[httpx.URL] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json=answers[request.url.path])

    with _client(server) as samo:
        (got_label,) = samo.emotions()
        got_summary = samo.analytics_summary(start="2026-01-01T00:00:00Z")
        (got_row,) = samo.analytics_emotions(end="2026-01-02T00:00:00Z")
    assert (got_label.label, got_label.ekman, got_label.threshold) == ("admiration", "joy", 0.3)
    assert (got_summary.texts, got_summary.cache_hit_rate, got_summary.p95_ms) == (4, 0.25, 9.0)
    assert got_summary.by_cache_level == {"l1": 1, "miss": 3}
    assert (got_row.emotion, got_row.count) == ("joy", 4)
    assert seen[1].params["start"] == "2026-01-01T00:00:00Z"
    assert "start" not in seen[2].params
    assert seen[2].params["end"] == "2026-01-02T00:00:00Z"


def test_analytics_unavailable_is_not_retried() -> None:
    server = Server(_error(503, "ANALYTICS_UNAVAILABLE"))
    with _client(server) as samo, pytest.raises(AnalyticsUnavailable):
        samo.analytics_summary()
    assert len(server.requests) == 1


# ------------------------------------------------------------------------------------------ async


async def test_async_client_retries_chunks_and_raises() -> None:
    server = Server(max_items=2)
    async with _async_client(server) as samo:
        results = await samo.predict_batch(["a", "b", "c"], top_k=1)
        assert [r.primary.label for r in results] == ["a", "b", "c"]
    assert server.paths() == ["/openapi.json", "/predict/batch", "/predict/batch"]

    server = Server(_error(503, "TIMEOUT", {"Retry-After": "0"}), httpx.Response(200, json=_result("ok")))
    async with _async_client(server) as samo:
        assert (await samo.predict("hi")).primary.label == "ok"
    assert len(server.requests) == 2

    server = Server(_error(503, "OVERLOADED", {"Retry-After": "0"}))
    async with _async_client(server) as samo:
        with pytest.raises(Overloaded) as caught:
            await samo.predict("hi")
    assert isinstance(caught.value, ApiError)
    assert len(server.requests) == 3


async def test_async_client_typed_answers() -> None:
    up = {"status": "ready", "model": {"version": "m-1"}, "dependencies": {}, "auth": "off"}
    label = {"id": 1, "label": "amusement", "ekman": "joy", "sentiment": "positive", "threshold": 0.4}

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/readyz":
            return httpx.Response(200, json=up)
        return httpx.Response(200, json={"model_version": "m-1", "count": 1, "emotions": [label]})

    async with _async_client(server, api_key="k") as samo:
        assert (await samo.ready()).ready is True
        assert [e.label for e in await samo.emotions()] == ["amusement"]


def test_people_entries_and_their_analytics() -> None:
    """A journal import (entries with ids), a person's timeline and summary, and both erasures."""
    bucket = {"start": "2026-11-20T00:00:00Z", "texts": 2, "requests": 1,
              "emotions": {"joy": {"count": 2, "mean_score": 0.8}}, "ekman": {"joy": 1.0}, "sentiment": {},
              "labels": {"anger": {"count": 0, "mean_score": None}, "joy": {"count": 2, "mean_score": 0.8},
                         "relief": {"count": 1, "mean_score": 0.4}}}  # fmt: skip
    sent: list[tuple[str, str, Any]] = []

    def server(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        sent.append((request.method, request.url.raw_path.decode(), body))
        path = request.url.path
        if path == "/openapi.json":
            return httpx.Response(200, json=_openapi(64))
        if path == "/predict":
            return httpx.Response(200, json=_result("joy"))
        if path == "/predict/batch":
            return httpx.Response(200, json={"results": [_result("joy") for _ in body["texts"]], "count": 2})
        if path.endswith("/timeline"):
            return httpx.Response(200, json={"user_id": "u 1", "buckets": [bucket]})
        if path.endswith("/summary"):
            return httpx.Response(200, json={k: v for k, v in bucket.items() if k != "start"})
        return httpx.Response(200, json={"deleted": 1})

    at = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    with _client(server) as samo:
        samo.predict("yay", user_id="u1", occurred_at=at, entry_id="e-1")
        samo.predict_batch([JournalEntry("a", entry_id="e-2", occurred_at=at), "b"], user_id="u1")
        (day,) = samo.user_timeline("u 1", start="2026-11-20T00:00:00Z", bucket="week")
        summary = samo.user_summary("u 1")
        assert samo.delete_entry("u 1", "e/3") == 1
        assert samo.delete_user("u 1") == 1
    assert sent[0][2] == {"text": "yay", "user_id": "u1", "occurred_at": "2026-11-20T08:00:00+00:00", "entry_id": "e-1"}
    assert sent[2][2] == {
        "texts": [{"text": "a", "occurred_at": "2026-11-20T08:00:00+00:00", "entry_id": "e-2"}, "b"],
        "user_id": "u1",
    }
    assert (day.start, day.texts, day.emotions["joy"].count, day.ekman) == ("2026-11-20T00:00:00Z", 2, 2, {"joy": 1.0})
    assert (summary.texts, summary.emotions["joy"].mean_score) == (2, 0.8)
    assert (day.labels["relief"], day.labels["anger"]) == (EmotionStat(1, 0.4), EmotionStat(0, None))
    paths = [(method, path.split("?")[0]) for method, path, _ in sent[3:]]
    assert paths == [
        ("GET", "/analytics/users/u%201/timeline"), ("GET", "/analytics/users/u%201/summary"),
        ("DELETE", "/users/u%201/entries/e%2F3"), ("DELETE", "/users/u%201"),
    ]  # fmt: skip
    assert "bucket=week" in sent[3][1]
