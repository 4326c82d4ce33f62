"""The other topology: texts tokenized in a Tokenizer deployment (`tokenize_in: deployment`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import httpx
import pytest

from samo_serve.storage.request_log.hashing import TextHasher, load_or_create_key

from .conftest import Server, run_server


@pytest.fixture(scope="module")
def tokenizer_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Rows stay queued (no timed flush), so stopping the server is what has to write them.
    env = {"SAMO_TOKENIZE_IN": "deployment", "SAMO_REQUEST_LOG__FLUSH_INTERVAL_MS": "3600000"}
    yield from run_server(tmp_path_factory, env)


def test_tokenizer_deployment_serves_the_same_answers(tokenizer_server: Server, client: httpx.Client) -> None:
    texts = ["Thank you so much, I love it!", "This makes me so angry.", "so happy today " * 100]
    with httpx.Client(base_url=tokenizer_server.url, timeout=60) as other:
        assert other.get("/readyz").status_code == 200
        batch = other.post("/predict/batch", json={"texts": texts, "all_scores": True}).json()["results"]
    ingress_tokenized = client.post("/predict/batch", json={"texts": texts, "all_scores": True}).json()["results"]
    for a, b in zip(batch, ingress_tokenized, strict=True):
        assert a["truncated"] == b["truncated"]
        assert a["primary"]["label"] == b["primary"]["label"]
        for label, score in a["scores"].items():
            assert b["scores"][label] == pytest.approx(score, abs=0.08)  # int8 batch noise (docs/MODEL.md)
    assert batch[2]["truncated"] is False  # a long text is read to its end in windows (docs/API.md, Documents)
    assert batch[2]["segment_count"] == ingress_tokenized[2]["segment_count"] > 1


def test_sigterm_with_rows_queued_loses_none(tokenizer_server: Server) -> None:
    texts = [f"queued row {i}" for i in range(40)]
    with httpx.Client(base_url=tokenizer_server.url, timeout=60) as other:
        sent = sum(other.post("/predict", json={"text": t}).status_code == 200 for t in texts)
        pending = other.get("/stats").json()["replica"]["request_log"]["rows"]["pending"]
    assert sent == 40
    assert pending > 0  # still in the queue when the signal arrives
    assert tokenizer_server.stop() == 0
    assert tokenizer_server.data_dir is not None
    hasher = TextHasher(load_or_create_key(tokenizer_server.data_dir / "request-log.key"))  # the key the server made
    hashes = [hasher.text_hash(t) for t in texts]
    with sqlite3.connect(tokenizer_server.data_dir / "requests.sqlite3") as db:
        sql = f"SELECT count(*) FROM emotion_requests WHERE text_hash IN ({','.join('?' * len(hashes))})"
        (stored,) = db.execute(sql, hashes).fetchone()
    assert stored == sent
