"""GoEmotions TSV reading (CSV-quoted texts, multi-label rows) and label groups, on small files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from samo_serve.modeling.goemotions import SPLITS, read_groups, read_labels, read_split, read_texts, unique_texts

LABELS = ["joy", "anger", "sadness", "neutral"]
# text \t label ids \t comment id; row 2 is CSV-quoted with doubled inner quotes and an inner tab
TSV = (
    "I am so happy today\t0\tid1\n"
    '"He said ""hello"" and\tleft"\t1,2\tid2\n'
    "Nothing much\t3\tid3\n"
    "Angry and sad 😡 مرحبا\t1,2,0\tid4\n"
)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    (tmp_path / "emotions.txt").write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    (tmp_path / "train.tsv").write_text(TSV, encoding="utf-8")
    (tmp_path / "ekman_mapping.json").write_text(
        json.dumps({"joy": ["joy"], "anger": ["anger"], "sadness": ["sadness"]})
    )
    (tmp_path / "sentiment_dict.json").write_text(json.dumps({"positive": ["joy"], "negative": ["anger", "sadness"]}))
    return tmp_path


def test_splits() -> None:
    assert SPLITS == ("train", "dev", "test")


def test_read_labels(data_dir: Path) -> None:
    assert read_labels(data_dir) == LABELS


def test_read_split(data_dir: Path) -> None:
    split = read_split(data_dir, "train", len(LABELS))
    assert split.texts == [
        "I am so happy today",
        'He said "hello" and\tleft',
        "Nothing much",
        "Angry and sad 😡 مرحبا",
    ]
    assert split.ids == ["id1", "id2", "id3", "id4"]
    assert split.targets.dtype == np.float32
    assert split.targets.tolist() == [
        [1, 0, 0, 0],
        [0, 1, 1, 0],
        [0, 0, 0, 1],
        [1, 1, 1, 0],
    ]


@pytest.mark.parametrize("limit", [1, 2, 4, 100], ids=["one", "two", "all", "over"])
def test_read_split_limit(data_dir: Path, limit: int) -> None:
    split = read_split(data_dir, "train", len(LABELS), limit=limit)
    assert len(split.texts) == len(split.ids) == split.targets.shape[0] == min(limit, 4)


def test_read_empty_split(data_dir: Path) -> None:
    (data_dir / "dev.tsv").write_text("", encoding="utf-8")
    split = read_split(data_dir, "dev", len(LABELS))
    assert split.texts == []
    assert split.targets.shape == (0, len(LABELS))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("only text\t0\n", "expected 3 columns"),
        ("a\t0\tid\textra\n", "expected 3 columns"),
        ("a\t4\tid\n", "out of range"),
        ("a\t-1\tid\n", "out of range"),
    ],
    ids=["two-columns", "four-columns", "label-too-big", "label-negative"],
)
def test_read_split_bad_rows(data_dir: Path, content: str, match: str) -> None:
    (data_dir / "test.tsv").write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        read_split(data_dir, "test", len(LABELS))


def test_read_split_non_numeric_label(data_dir: Path) -> None:
    (data_dir / "test.tsv").write_text("a\tjoy\tid\n", encoding="utf-8")
    with pytest.raises(ValueError, match="invalid literal"):
        read_split(data_dir, "test", len(LABELS))


def test_read_split_missing_file(data_dir: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_split(data_dir, "test", len(LABELS))


def test_read_texts_unquotes_and_keeps_order(data_dir: Path) -> None:
    (data_dir / "blank.tsv").write_text(" \t0\tid0\n" + TSV, encoding="utf-8")
    assert read_texts(data_dir / "blank.tsv") == read_split(data_dir, "train", len(LABELS)).texts


def test_unique_texts_test_split_first(data_dir: Path) -> None:
    (data_dir / "test.tsv").write_text("Nothing much\t3\tid9\nonly in test\t0\tid8\n", encoding="utf-8")
    (data_dir / "dev.tsv").write_text("", encoding="utf-8")
    texts = unique_texts(data_dir)
    assert texts[:2] == ["Nothing much", "only in test"]
    assert texts == list(dict.fromkeys(texts))
    assert set(texts) == {"only in test", *read_split(data_dir, "train", len(LABELS)).texts}
    with pytest.raises(FileNotFoundError):
        unique_texts(data_dir, ("test", "nope"))


def test_read_groups_adds_neutral(data_dir: Path) -> None:
    groups = read_groups(data_dir, LABELS)
    assert groups["ekman"] == {"joy": "joy", "anger": "anger", "sadness": "sadness", "neutral": "neutral"}
    assert groups["sentiment"] == {
        "joy": "positive",
        "anger": "negative",
        "sadness": "negative",
        "neutral": "neutral",
    }


def test_read_groups_every_label_gets_a_group(data_dir: Path) -> None:
    labels = [*LABELS, "unmapped"]
    groups = read_groups(data_dir, labels)
    for kind in ("ekman", "sentiment"):
        assert set(groups[kind]) >= set(labels)
        assert groups[kind]["unmapped"] == "neutral"
