"""Documents through a real `samo-serve run` (issue 14): read to their end, sentence by sentence, cached per sentence.

Scores of a sentence inside a document and alone come from different micro-batches of the int8 model, so
they agree within its batch-neighbour bound (tests/unit/test_model_runner.py, INT8_ATOL): the primary is
compared where the sentence's top-2 margin is wider than twice that bound.
"""

from __future__ import annotations

import itertools
import time

import httpx
import numpy as np

from samo_serve.core.model_card import load_card
from samo_serve.core.model_runner import OrtModelRunner
from samo_serve.core.tokenizer import TextTokenizer
from samo_serve.settings import RunnerSettings, default_model_dir

INT8_ATOL = 0.08
_ids = itertools.count()

SENTENCES = [
    "I woke up early and made coffee before anyone else was awake.",
    "Then my boss yelled at me in front of the whole team and I am furious about it.",
    "My grandmother passed away last spring and I still miss her so much it hurts.",
    "Thank you so much to my friends who stayed with me tonight, I love you all!",
]


def unique(sentence: str) -> str:
    """The sentence, made new to every cache (a run id in words the model barely weighs)."""
    return f"{sentence[:-1]} (note {next(_ids)}-{time.monotonic_ns() % 100_000}){sentence[-1]}"


def test_a_sentence_in_a_document_gets_the_primary_it_gets_alone(client: httpx.Client) -> None:
    sentences = [unique(s) for s in SENTENCES]
    entry = " ".join(sentences)
    r = client.post("/predict", json={"text": entry, "segments": True, "all_scores": True})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["segment_count"], doc["truncated"], doc["cache"]) == (4, False, "miss")
    assert [entry[s["start"] : s["end"]] for s in doc["segments"]] == sentences

    model_dir = default_model_dir()
    card = load_card(model_dir, verify=False)
    runner = OrtModelRunner(model_dir / card.onnx_file, card.activation, RunnerSettings(device="cpu"))
    tokenizer = TextTokenizer.for_card(card, model_dir)
    for sentence, segment in zip(sentences, doc["segments"], strict=True):
        alone = runner.predict(tokenizer.encode_batch([sentence]))[0]
        served = np.array([segment["scores"][label] for label in card.labels])
        np.testing.assert_allclose(served, alone, atol=INT8_ATOL, rtol=0)
        top2 = np.sort(alone)[-2:]
        if top2[1] - top2[0] > 2 * INT8_ATOL:
            assert segment["primary"]["label"] == card.labels[int(alone.argmax())]
    # the default aggregation (max) keeps each sentence's strongest emotion in the document
    labels = {e["label"] for e in doc["emotions"]}
    assert {"anger", "sadness", "gratitude"} <= labels, labels


def test_a_repeated_sentence_is_a_cache_hit(client: httpx.Client) -> None:
    sentences = [unique(s) for s in SENTENCES]
    first = client.post("/predict", json={"text": " ".join(sentences)})
    assert first.status_code == 200, first.text
    assert first.json()["cache"] == "miss"
    alone = client.post("/predict", json={"text": sentences[2]})
    assert alone.json()["cache"] == "l1"  # the sentence was classified as a segment of the entry
    again = client.post("/predict", json={"text": " ".join(reversed(sentences))})
    assert again.json()["cache"] == "l1"  # every segment a hit: no model call
    assert again.json()["emotions"] == first.json()["emotions"]  # max does not care about order


def test_a_40000_character_entry_is_answered_to_its_end(client: httpx.Client) -> None:
    days = itertools.cycle(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"])
    ending = "In the end I am so grateful, thank you all for everything!"
    entry = ""
    while len(entry) < 40_000 - len(ending) - 100:
        entry += f"On {next(days)} number {len(entry)} I walked to the station and took the usual train. "
    entry += " " * (40_000 - len(entry) - len(ending)) + ending
    assert len(entry) == 40_000
    r = client.post("/predict", json={"text": entry, "segments": True}, timeout=120)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["truncated"] is False
    assert doc["segment_count"] == len(doc["segments"]) > 400
    last = doc["segments"][-1]
    assert entry[last["start"] : last["end"]] == ending
    assert last["primary"]["label"] == "gratitude"
    assert "gratitude" in {e["label"] for e in doc["emotions"]}  # the ending shows in the whole entry
