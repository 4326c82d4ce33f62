"""The model card: everything serving needs to know about a model artifact, in one JSON file.

A model directory holds ``card.json``, the ONNX file(s) it names and ``tokenizer.json``. The card's
``version`` (name + short sha256 of the served ONNX file) is part of every cache key, so a new model
never serves an old model's cached result.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, model_validator

if TYPE_CHECKING:
    from samo_serve.settings import Settings

CARD_FILE = "card.json"


class ModelCard(BaseModel):
    name: str
    version: str
    labels: list[str]
    thresholds: list[float]
    global_threshold: float = 0.5
    max_length: int = Field(default=64, ge=8, le=4096)
    activation: Literal["sigmoid", "softmax"] = "sigmoid"
    onnx_file: str
    onnx_sha256: str
    variants: dict[str, dict[str, str]] = Field(default_factory=dict)  # precision -> {file, sha256}
    tokenizer_file: str = "tokenizer.json"
    groups: dict[str, dict[str, str]] = Field(default_factory=dict)  # ekman/sentiment: label -> group
    metrics: dict[str, Any] = Field(default_factory=dict)
    credits: list[dict[str, str]] = Field(default_factory=list)
    created_at: str = ""
    recipe: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_shapes(self) -> ModelCard:
        if len(self.thresholds) != len(self.labels):
            raise ValueError(f"{len(self.thresholds)} thresholds for {len(self.labels)} labels")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must be unique")
        return self


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_version(name: str, sha256: str) -> str:
    return f"{name}-{sha256[:12]}"


def load_card(model_dir: Path, verify: bool = True) -> ModelCard:
    """Read and validate ``card.json``; with ``verify`` the ONNX file's sha256 must match the card.

    Raises:
        FileNotFoundError: no card or no ONNX file in ``model_dir``.
        ValueError: the card is invalid or the ONNX file does not match its checksum.
    """
    card = ModelCard.model_validate_json((model_dir / CARD_FILE).read_text(encoding="utf-8"))
    onnx_path = model_dir / card.onnx_file
    if not onnx_path.exists():
        raise FileNotFoundError(f"model file {onnx_path} named by {model_dir / CARD_FILE} is missing")
    if verify:
        actual = sha256_file(onnx_path)
        if actual != card.onnx_sha256:
            raise ValueError(f"{onnx_path}: sha256 {actual[:12]} does not match the card ({card.onnx_sha256[:12]})")
    return card


def save_card(card: ModelCard, model_dir: Path) -> Path:
    path = model_dir / CARD_FILE
    path.write_text(json.dumps(card.model_dump(), indent=2) + "\n", encoding="utf-8")
    return path


def with_variant(card: ModelCard, precision: str, model_dir: Path) -> ModelCard:
    """The same card serving another exported precision (``fp32``, ``int8``, ``fp16``) of the model."""
    variant = card.variants.get(precision)
    if variant is None:
        raise ValueError(f"model {card.name} has no {precision!r} variant (has: {sorted(card.variants)})")
    if not (model_dir / variant["file"]).exists():
        raise FileNotFoundError(f"{model_dir / variant['file']} is not there: run `samo-serve model export`")
    return card.model_copy(
        update={
            "onnx_file": variant["file"],
            "onnx_sha256": variant["sha256"],
            "version": make_version(card.name, variant["sha256"]),
        }
    )


def served_card(settings: Settings, verify: bool) -> ModelCard:
    """The card of the variant ``settings.runner.precision`` names (``default``: the card's own file)."""
    card = load_card(settings.model_dir, verify=verify)
    if settings.runner.precision != "default":
        card = with_variant(card, settings.runner.precision, settings.model_dir)
    return card
