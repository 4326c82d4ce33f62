"""The fine-tuned classifier: a sentence encoder, mean pooling, dropout and one linear layer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel

CHECKPOINT_WEIGHTS = "classifier.pt"
CHECKPOINT_CONFIG = "classifier.json"


class EmotionClassifier(nn.Module):
    """Encoder + masked mean pooling + Linear(hidden, n_labels); outputs logits."""

    def __init__(self, encoder: nn.Module, hidden_size: int, n_labels: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, n_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-6)
        logits: torch.Tensor = self.head(self.dropout(pooled))
        return logits


def from_base(base_path: Path, n_labels: int, dropout: float = 0.1, layers: int | None = None) -> EmotionClassifier:
    """The base encoder with a fresh head; ``layers``: keep only its first (bottom) layers, a smaller student.

    Dropping the top layers is the pruning that loses least after fine-tuning (Sajjad et al., "On the effect
    of dropping layers of pre-trained transformer models", 2023); the config records the new depth, so the
    checkpoint loads and exports as a model of that depth.
    """
    encoder: Any = AutoModel.from_pretrained(str(base_path))
    if layers is not None:
        if not 0 < layers <= encoder.config.num_hidden_layers:
            raise ValueError(f"layers must be 1..{encoder.config.num_hidden_layers}, got {layers}")
        encoder.encoder.layer = encoder.encoder.layer[:layers]
        encoder.config.num_hidden_layers = layers
    return EmotionClassifier(encoder, encoder.config.hidden_size, n_labels, dropout)


def save_checkpoint(model: EmotionClassifier, out_dir: Path, meta: dict[str, Any]) -> None:
    """Weights + the encoder config + training metadata (labels, thresholds, max_length...)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_dir / CHECKPOINT_WEIGHTS)
    encoder: Any = model.encoder
    encoder.config.save_pretrained(str(out_dir / "encoder"))
    (out_dir / CHECKPOINT_CONFIG).write_text(json.dumps(meta, indent=2), encoding="utf-8")


def load_checkpoint(ckpt_dir: Path) -> tuple[EmotionClassifier, dict[str, Any]]:
    meta = json.loads((ckpt_dir / CHECKPOINT_CONFIG).read_text(encoding="utf-8"))
    config = AutoConfig.from_pretrained(str(ckpt_dir / "encoder"))
    # Eager attention for export: the sdpa path traced with a baked-in mask decision (parity 1e-2).
    encoder = AutoModel.from_config(config, attn_implementation="eager")  # type: ignore[no-untyped-call]
    model = EmotionClassifier(encoder, config.hidden_size, len(meta["labels"]))
    model.load_state_dict(torch.load(ckpt_dir / CHECKPOINT_WEIGHTS, map_location="cpu"))
    model.eval()
    return model, meta


def is_own_checkpoint(path: Path) -> bool:
    return (path / CHECKPOINT_CONFIG).exists()
