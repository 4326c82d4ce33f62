"""An evaluation that shares no code with samo_serve: ORT + tokenizers + csv + numpy, the card's thresholds.

It must reproduce the card's test macro-F1 within 0.005 (the model card is not allowed to flatter).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "goemotions-minilm"


def test_card_test_macro_f1_is_reproduced_independently(goemotions_dir: Path) -> None:
    card = json.loads((MODEL_DIR / "card.json").read_text())
    tok = Tokenizer.from_file(str(MODEL_DIR / card["tokenizer_file"]))
    tok.no_padding()
    tok.enable_truncation(card["max_length"])
    session = ort.InferenceSession(str(MODEL_DIR / card["onnx_file"]), providers=["CPUExecutionProvider"])
    with (goemotions_dir / "test.tsv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    n_labels = len(card["labels"])
    targets = np.zeros((len(rows), n_labels))
    for i, row in enumerate(rows):
        targets[i, [int(x) for x in row[1].split(",")]] = 1
    scores = np.zeros((len(rows), n_labels))
    for start in range(0, len(rows), 32):  # file order, fixed batches: no length bucketing
        enc = [e.ids for e in tok.encode_batch([r[0] for r in rows[start : start + 32]])]
        width = max(map(len, enc))
        ids = np.array([e + [0] * (width - len(e)) for e in enc], dtype=np.int64)
        mask = np.array([[1] * len(e) + [0] * (width - len(e)) for e in enc], dtype=np.int64)
        logits = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        scores[start : start + len(enc)] = 1 / (1 + np.exp(-logits.astype(np.float64)))
    predicted = (scores >= np.array(card["thresholds"])).astype(float)
    empty = predicted.sum(axis=1) == 0
    predicted[empty, scores[empty].argmax(axis=1)] = 1
    tp = (predicted * targets).sum(0)
    fp = (predicted * (1 - targets)).sum(0)
    fn = ((1 - predicted) * targets).sum(0)
    f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0)
    assert abs(f1.mean() - card["metrics"]["test"]["macro_f1"]) <= 0.005, f1.mean()
    assert card["metrics"]["test"]["macro_f1"] >= 0.46
