"""The docs' sample responses are what the shipped model answers: each one is replayed in-process.

Every JSON sample in README.md and docs/API.md that holds model output (``emotions`` or ``results``) is
paired with the request just before it (a ``curl … -d '<json>'`` line or a JSON request body) and that
request goes through the real int8 model behind the real app (httpx.ASGITransport, no Ray). Labels,
their order, the model version and the flags must match; scores within 0.01 (int8 activations are
quantized per batch, so a neighbour in a micro-batch moves them slightly); ``latency_ms`` is ignored.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from samo_serve.core.model_runner import OrtModelRunner
from samo_serve.http.app import create_app
from samo_serve.service import EmotionService
from samo_serve.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "docs/API.md")
SCORE_TOLERANCE = 0.01
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
CURL_PATH = re.compile(r"^(?:https?://)?[\w.-]+:\d+(/\S*)$")


@dataclass(frozen=True)
class Example:
    doc: str
    line: int
    path: str  # the route, e.g. /predict
    request: dict[str, Any]
    response: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}"


def _curl_requests(block: str) -> list[tuple[str, dict[str, Any]]]:
    """``(path, body)`` of every ``curl URL … -d '<json>'`` in a shell block."""
    found = []
    for command in block.replace("\\\n", " ").splitlines():
        if not command.startswith("curl "):
            continue
        words = shlex.split(command, comments=True)
        if "-d" not in words:
            continue
        paths = [m.group(1) for w in words if (m := CURL_PATH.match(w))]
        found.append((paths[0], json.loads(words[words.index("-d") + 1])))
    return found


def _json_request(body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    if "text" in body:
        return "/predict", body
    if "texts" in body:
        return "/predict/batch", body
    return None


def examples(doc: str) -> list[Example]:
    text = (ROOT / doc).read_text(encoding="utf-8")
    found: list[Example] = []
    last: tuple[str, dict[str, Any]] | None = None
    for match in FENCE.finditer(text):
        lang, block = match.groups()
        line = text.count("\n", 0, match.start()) + 1
        if lang in ("bash", "sh", "shell"):
            if requests := _curl_requests(block):
                last = requests[-1]
            continue
        if lang != "json":
            continue
        try:
            body = json.loads(block)
        except json.JSONDecodeError as exc:
            if '"score"' in block:  # a sample of model output that could not be checked
                raise ValueError(f"{doc}:{line}: a sample with scores is not valid JSON") from exc
            continue  # e.g. "GET /analytics/…" followed by its answer
        if not isinstance(body, dict):
            continue
        if request := _json_request(body):
            last = request
        elif "emotions" in body or "results" in body:
            if last is None:
                raise ValueError(f"{doc}:{line}: a sample response with no request before it")
            found.append(Example(doc, line, last[0], last[1], body))
    return found


ALL = [example for doc in DOCS for example in examples(doc)]


def test_the_docs_have_model_samples() -> None:
    # the README's quickstart and the API reference both show a /predict answer
    assert {e.doc for e in ALL} == set(DOCS)


@pytest.fixture
def service(make_service: Callable[..., EmotionService], ort_runner: OrtModelRunner) -> EmotionService:
    return make_service(ort_runner, Settings())


@pytest.mark.parametrize("example", ALL, ids=str)
async def test_sample_response_is_the_shipped_models_answer(example: Example, service: EmotionService) -> None:
    app = create_app(Settings(), service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.post(example.path, json=example.request)
    assert r.status_code == 200, r.text
    real = r.json()
    if "results" in example.response:
        assert real["count"] == example.response["count"], example
        pairs = list(zip(example.response["results"], real["results"], strict=True))
    else:
        pairs = [(example.response, real)]
    for shown, answered in pairs:
        _assert_same_answer(shown, answered, str(example))


def _assert_same_answer(shown: dict[str, Any], answered: dict[str, Any], where: str) -> None:
    assert set(shown) == set(answered), f"{where}: fields {sorted(shown)} vs the service's {sorted(answered)}"
    for key in set(shown) - {"emotions", "primary", "scores", "latency_ms", "ekman", "sentiment", "segments"}:
        assert shown[key] == answered[key], f"{where}: {key} is {shown[key]!r}, the service says {answered[key]!r}"
    real = f"the service answers {json.dumps({k: answered[k] for k in ('emotions', 'primary')})}"
    assert [e["label"] for e in shown["emotions"]] == [e["label"] for e in answered["emotions"]], f"{where}: {real}"
    assert shown["primary"]["label"] == answered["primary"]["label"], f"{where}: {real}"
    for s, a in zip([*shown["emotions"], shown["primary"]], [*answered["emotions"], answered["primary"]], strict=True):
        assert abs(s["score"] - a["score"]) <= SCORE_TOLERANCE, f"{where}: {s['label']} {s['score']}; {real}"
    for group in ("ekman", "sentiment"):  # a document's summaries: scores, so within the tolerance too
        if group in shown:
            _assert_same_answer(
                {"emotions": shown[group], "primary": shown[group][0]},
                {"emotions": answered[group], "primary": answered[group][0]},
                f"{where} {group}",
            )
    for i, (s, a) in enumerate(zip(shown.get("segments", []), answered.get("segments", []), strict=True)):
        _assert_same_answer(s, a, f"{where} segments[{i}]")
    if "scores" in shown:
        assert shown["scores"].keys() == answered["scores"].keys(), where
        for label, score in shown["scores"].items():
            assert abs(score - answered["scores"][label]) <= SCORE_TOLERANCE, f"{where}: {label} {score}"
