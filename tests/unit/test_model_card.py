"""Model cards: the shipped card's integrity, checksum verification, validation, variants, save/load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from samo_serve.core.model_card import (
    CARD_FILE,
    ModelCard,
    load_card,
    make_version,
    save_card,
    sha256_file,
    with_variant,
)


def _copy_model(model_dir: Path, card: ModelCard, dest: Path) -> Path:
    """card.json, the served ONNX file and the tokenizer (not the large fp32/fp16 files)."""
    dest.mkdir()
    for name in (CARD_FILE, card.onnx_file, card.tokenizer_file):
        shutil.copy2(model_dir / name, dest / name)
    return dest


def _minimal_card(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "m",
        "version": "m-000000000000",
        "labels": ["a", "b", "c"],
        "thresholds": [0.5, 0.5, 0.5],
        "onnx_file": "model.onnx",
        "onnx_sha256": "0" * 64,
    }
    data.update(overrides)
    return data


def test_shipped_card_checksum_matches(model_dir: Path, card: ModelCard) -> None:
    assert sha256_file(model_dir / card.onnx_file) == card.onnx_sha256


def test_shipped_card_invariants(model_dir: Path, card: ModelCard) -> None:
    assert card.version == make_version(card.name, card.onnx_sha256)
    assert len(card.labels) == 28
    assert len(card.thresholds) == len(card.labels)
    assert all(0.0 <= t <= 1.0 for t in card.thresholds)
    assert len(set(card.labels)) == len(card.labels)
    assert card.activation in ("sigmoid", "softmax")
    assert (model_dir / card.tokenizer_file).is_file()
    assert "neutral" in card.labels


def test_shipped_card_variants_agree_with_the_served_file(card: ModelCard) -> None:
    """The variant entry naming the served file carries the same checksum as the card itself.

    (fp32/fp16 files are rebuilt locally and not shipped, so their bytes are not checked here.)
    """
    for variant in card.variants.values():
        assert set(variant) >= {"file", "sha256"}
        if variant["file"] == card.onnx_file:
            assert variant["sha256"] == card.onnx_sha256


def test_corrupted_onnx_fails_verification(model_dir: Path, card: ModelCard, tmp_path: Path) -> None:
    copy = _copy_model(model_dir, card, tmp_path / "model")
    onnx = copy / card.onnx_file
    data = bytearray(onnx.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4] = bytes(b ^ 0xFF for b in data[middle : middle + 4])
    onnx.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        load_card(copy, verify=True)
    # Without verification the (corrupt) file is not read at all.
    assert load_card(copy, verify=False).onnx_file == card.onnx_file


def test_intact_copy_verifies(model_dir: Path, card: ModelCard, tmp_path: Path) -> None:
    copy = _copy_model(model_dir, card, tmp_path / "model")
    assert load_card(copy, verify=True) == card


def test_missing_onnx_file(model_dir: Path, card: ModelCard, tmp_path: Path) -> None:
    copy = _copy_model(model_dir, card, tmp_path / "model")
    (copy / card.onnx_file).unlink()
    with pytest.raises(FileNotFoundError):
        load_card(copy, verify=False)


def test_missing_card(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_card(tmp_path)


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "",
        "[]",
        json.dumps(_minimal_card(thresholds=[0.5, 0.5])),
        json.dumps(_minimal_card(labels=["a", "a", "b"])),
        json.dumps(_minimal_card(max_length=4)),
        json.dumps(_minimal_card(activation="relu")),
        json.dumps({k: v for k, v in _minimal_card().items() if k != "onnx_sha256"}),
    ],
    ids=[
        "not-json",
        "empty-file",
        "json-list",
        "threshold-count",
        "duplicate-labels",
        "max-length-too-small",
        "unknown-activation",
        "missing-sha",
    ],
)
def test_invalid_card_is_a_value_error(tmp_path: Path, content: str) -> None:
    (tmp_path / CARD_FILE).write_text(content, encoding="utf-8")
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match="validation error for ModelCard"):
        load_card(tmp_path, verify=False)


def test_verify_uses_the_real_checksum(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"tiny model")
    digest = sha256_file(tmp_path / "model.onnx")
    save_card(ModelCard(**_minimal_card(onnx_sha256=digest)), tmp_path)
    assert load_card(tmp_path, verify=True).onnx_sha256 == digest
    (tmp_path / "model.onnx").write_bytes(b"tiny modem")
    with pytest.raises(ValueError, match="does not match the card"):
        load_card(tmp_path, verify=True)


def test_save_load_round_trip(card: ModelCard, tmp_path: Path) -> None:
    path = save_card(card, tmp_path)
    assert path == tmp_path / CARD_FILE
    (tmp_path / card.onnx_file).write_bytes(b"")
    assert load_card(tmp_path, verify=False) == card


def test_make_version() -> None:
    assert make_version("name", "abcdef0123456789" * 4) == "name-abcdef012345"


def test_sha256_file_of_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_with_variant_switches_file_and_version(tmp_path: Path) -> None:
    sha = "ab" * 32
    card = ModelCard(**_minimal_card(variants={"fp32": {"file": "model.fp32.onnx", "sha256": sha}}))
    (tmp_path / "model.fp32.onnx").write_bytes(b"")
    other = with_variant(card, "fp32", tmp_path)
    assert other.onnx_file == "model.fp32.onnx"
    assert other.onnx_sha256 == sha
    assert other.version == make_version(card.name, sha)
    assert other.labels == card.labels
    assert card.onnx_file == "model.onnx"  # the original card is unchanged


def test_with_variant_unknown_precision(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no 'fp16' variant"):
        with_variant(ModelCard(**_minimal_card()), "fp16", tmp_path)


def test_with_variant_missing_file(tmp_path: Path) -> None:
    card = ModelCard(**_minimal_card(variants={"fp32": {"file": "model.fp32.onnx", "sha256": "0" * 64}}))
    with pytest.raises(FileNotFoundError):
        with_variant(card, "fp32", tmp_path)


def test_shipped_variants_give_distinct_versions(model_dir: Path, card: ModelCard) -> None:
    versions = set()
    for precision, variant in card.variants.items():
        if (model_dir / variant["file"]).exists():
            versions.add(with_variant(card, precision, model_dir).version)
    distinct_shas = {v["sha256"] for v in card.variants.values() if (model_dir / v["file"]).exists()}
    assert len(versions) == len(distinct_shas)
