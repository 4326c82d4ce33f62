"""GoEmotions TSV loading (csv + numpy only): the one reader for training, evaluation, the model bench,
the load tester's ``.tsv`` corpus and the bench scripts' texts.

The files have no header and three tab-separated columns (text, comma-separated label ids, comment id).
About 2% of texts are CSV-quoted with doubled inner quotes, so they are read with the ``csv`` module,
never with ``line.split('\\t')`` (which would keep the quote characters).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["SPLITS", "Split", "read_groups", "read_labels", "read_split", "read_texts", "unique_texts"]

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Split:
    texts: list[str]
    targets: np.ndarray  # float32 [n, n_labels] multi-hot
    ids: list[str]


def read_labels(data_dir: Path) -> list[str]:
    return (data_dir / "emotions.txt").read_text(encoding="utf-8").split()


def _records(path: Path) -> Iterator[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        yield from csv.reader(f, delimiter="\t")


def read_texts(path: Path) -> list[str]:
    """The text column (the first) of a GoEmotions-format TSV file, in file order, blank texts left out."""
    return [record[0] for record in _records(path) if record and record[0].strip()]


def unique_texts(data_dir: Path, splits: tuple[str, ...] = ("test", "dev", "train")) -> list[str]:
    """Distinct texts of the given splits, in that order (test first: the texts the model never trained on)."""
    return list(dict.fromkeys(text for split in splits for text in read_texts(data_dir / f"{split}.tsv")))


def read_split(data_dir: Path, split: str, n_labels: int, limit: int | None = None) -> Split:
    """Read one split; ``limit`` keeps the first N rows (used by the CI smoke test)."""
    path = data_dir / f"{split}.tsv"
    texts: list[str] = []
    rows: list[list[int]] = []
    ids: list[str] = []
    for record in _records(path):
        if len(record) != 3:
            raise ValueError(f"{path}: expected 3 columns, got {len(record)}: {record!r}")
        text, label_ids, comment_id = record
        texts.append(text)
        rows.append([int(x) for x in label_ids.split(",")])
        ids.append(comment_id)
        if limit is not None and len(texts) >= limit:
            break
    targets = np.zeros((len(texts), n_labels), dtype=np.float32)
    for i, row in enumerate(rows):
        for label_id in row:
            if not 0 <= label_id < n_labels:
                raise ValueError(f"{path}: label id {label_id} out of range on row {i}")
            targets[i, label_id] = 1.0
    return Split(texts=texts, targets=targets, ids=ids)


def read_groups(data_dir: Path, labels: list[str]) -> dict[str, dict[str, str]]:
    """Ekman and sentiment group of every label, from the dataset's mapping files.

    Neither file mentions ``neutral``; it gets its own group ``neutral`` in both.
    """
    ekman_raw = json.loads((data_dir / "ekman_mapping.json").read_text(encoding="utf-8"))
    sentiment_raw = json.loads((data_dir / "sentiment_dict.json").read_text(encoding="utf-8"))
    groups: dict[str, dict[str, str]] = {"ekman": {}, "sentiment": {}}
    for kind, raw in (("ekman", ekman_raw), ("sentiment", sentiment_raw)):
        for group, members in raw.items():
            for label in members:
                groups[kind][label] = group
        for label in labels:
            groups[kind].setdefault(label, "neutral")
    return groups
