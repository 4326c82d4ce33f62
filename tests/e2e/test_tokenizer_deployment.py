"""The other topology: texts tokenized in a Tokenizer deployment (`tokenize_in: deployment`)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .conftest import Server, run_server


@pytest.fixture(scope="module")
def tokenizer_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from run_server(tmp_path_factory, {"SAMO_TOKENIZE_IN": "deployment"})


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
    assert batch[2]["truncated"] is True
