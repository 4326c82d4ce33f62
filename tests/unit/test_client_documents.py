"""samo_serve.client over httpx.MockTransport: documents, their segments, and the ``segments`` option."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from samo_serve.client import AsyncClient, Client, Emotion, Prediction, Retry, Segment

NO_WAIT = Retry(max_attempts=1)
ENTRY = "I missed the bus again. My manager blamed me for his mistake! Thank you for dinner 😊"


def _score(label: str, score: float) -> dict[str, Any]:
    return {"label": label, "score": score}


def _sentences(text: str) -> list[tuple[int, int]]:
    """Offsets of ``text``'s sentences at '. ' and '! ', as the server gives them (whitespace trimmed)."""
    spans, start = [], 0
    for i, char in enumerate(text):
        if char in ".!" and text[i + 1 : i + 2] == " ":
            spans.append((start, i + 1))
            start = i + 2
    return [*spans, (start, len(text))]


def _document(text: str, segments: bool, all_scores: bool = False) -> dict[str, Any]:
    """A document answer: one segment per sentence, each primary label naming the segment's text."""
    spans = _sentences(text)
    answer: dict[str, Any] = {
        "emotions": [_score("gratitude", 0.97), _score("anger", 0.5)],
        "primary": _score("gratitude", 0.97),
        "model_version": "m-1",
        "cache": "miss",
        "truncated": False,
        "latency_ms": 12.5,
        "segment_count": len(spans),
        "ekman": [_score("joy", 0.97), _score("anger", 0.5)],
        "sentiment": [_score("positive", 0.97), _score("negative", 0.5)],
    }
    if segments:
        answer["segments"] = [
            {
                "start": start,
                "end": end,
                "emotions": [_score(text[start:end], 0.6)],
                "primary": _score(text[start:end], 0.6),
                **({"scores": {"anger": 0.25, "joy": 0.5}} if all_scores else {}),
            }
            for start, end in spans
        ]
    return answer


class Server:
    """Answers /predict and /predict/batch as documents, segments only when the body asks; records bodies."""

    def __init__(self, max_items: int = 2) -> None:
        self.max_items = max_items
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/openapi.json":
            texts = {"maxItems": self.max_items}
            return httpx.Response(
                200, json={"components": {"schemas": {"BatchPredictRequest": {"properties": {"texts": texts}}}}}
            )
        body = json.loads(request.content)
        self.bodies.append(body)
        asked = (bool(body.get("segments")), bool(body.get("all_scores")))
        if request.url.path == "/predict":
            return httpx.Response(200, json=_document(body["text"], *asked))
        results = [_document(t, *asked) for t in body["texts"]]
        return httpx.Response(200, json={"results": results, "count": len(results)})


def _client(server: Server) -> Client:
    return Client("http://samo", transport=httpx.MockTransport(server), retry=NO_WAIT)


def test_a_document_answer_is_parsed_into_typed_fields() -> None:
    server = Server()
    with _client(server) as samo:
        got = samo.predict(ENTRY, segments=True, all_scores=True)
    assert server.bodies == [{"text": ENTRY, "all_scores": True, "segments": True}]
    assert got.segment_count == 3
    assert got.truncated_by is None
    assert got.ekman == [Emotion("joy", 0.97), Emotion("anger", 0.5)]
    assert got.sentiment is not None
    assert got.sentiment[0] == Emotion("positive", 0.97)
    assert got.segments is not None
    assert [s.text_of(ENTRY) for s in got.segments] == [
        "I missed the bus again.",
        "My manager blamed me for his mistake!",
        "Thank you for dinner 😊",
    ]
    first = got.segments[0]
    assert (first.start, first.end) == (0, 23)
    assert first.primary.label == first.labels[0] == "I missed the bus again."
    assert first.scores == {"anger": 0.25, "joy": 0.5}


def test_segments_are_asked_for_only_when_wanted() -> None:
    server = Server()
    with _client(server) as samo:
        plain = samo.predict(ENTRY)
        samo.predict_batch([ENTRY], top_k=2)
    assert server.bodies == [{"text": ENTRY}, {"texts": [ENTRY], "top_k": 2}]
    assert plain.segment_count == 3  # a document's summary comes without asking
    assert plain.segments is None
    assert plain.raw["segment_count"] == 3


def test_a_short_text_on_an_older_server_has_none_of_the_document_fields() -> None:
    answer = {
        "emotions": [_score("joy", 0.8)],
        "primary": _score("joy", 0.8),
        "model_version": "m-0",
        "cache": "l1",
        "truncated": False,
        "latency_ms": 1.0,
    }
    got = Prediction.from_json(answer)
    assert (got.segment_count, got.truncated_by, got.ekman, got.sentiment, got.segments) == (None,) * 5


def test_truncated_by_is_read() -> None:
    answer = {**_document(ENTRY, segments=False), "truncated": True, "truncated_by": "max_segments"}
    got = Prediction.from_json(answer)
    assert (got.truncated, got.truncated_by) == (True, "max_segments")


def test_segment_text_of_counts_code_points() -> None:
    text = "😡 no. مرحبا بك!"
    segment = Segment(start=6, end=len(text), emotions=[], primary=Emotion("neutral", 0.5))
    assert segment.text_of(text) == "مرحبا بك!"
    with pytest.raises(AttributeError):
        segment.start = 0  # type: ignore[misc]  # frozen


def _texts() -> list[str]:
    return [f"Text {i} starts. It ends {i}!" for i in range(5)]


def _assert_each_keeps_its_segments(texts: list[str], results: list[Prediction]) -> None:
    assert len(results) == len(texts)
    for text, result in zip(texts, results, strict=True):
        assert result.segments is not None
        assert [s.primary.label for s in result.segments] == [f"Text {text[5]} starts.", f"It ends {text[5]}!"]
        assert [s.text_of(text) for s in result.segments] == [s.primary.label for s in result.segments]


def test_batch_chunks_keep_each_texts_segments() -> None:
    server = Server(max_items=2)
    texts = _texts()
    with _client(server) as samo:
        results = samo.predict_batch(texts, segments=True)
    assert [b["texts"] for b in server.bodies] == [texts[0:2], texts[2:4], texts[4:]]
    assert all(b["segments"] is True for b in server.bodies)
    _assert_each_keeps_its_segments(texts, results)


async def test_async_client_sends_segments_and_chunks() -> None:
    server = Server(max_items=3)
    texts = _texts()
    async with AsyncClient("http://samo", transport=httpx.MockTransport(server), retry=NO_WAIT) as samo:
        one = await samo.predict(ENTRY, segments=True)
        plain = await samo.predict(ENTRY)
        results = await samo.predict_batch(texts, segments=True)
    assert one.segments is not None
    assert len(one.segments) == one.segment_count == 3
    assert plain.segments is None
    assert [b.get("segments") for b in server.bodies] == [True, None, True, True]
    _assert_each_keeps_its_segments(texts, results)
