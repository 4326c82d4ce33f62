"""Tokenizer deployment: one call encodes a whole ingress micro-batch."""

from __future__ import annotations

from typing import Any

from deployments.common import served_card, settings_from_args
from samo_serve.tokenizer import TextTokenizer, TokenBatch


class Tokenizer:
    def __init__(self, args: dict[str, Any]) -> None:
        settings = settings_from_args(args)
        card = served_card(settings, verify=False)
        self._tokenizer = TextTokenizer(settings.model_dir / card.tokenizer_file, card.max_length)

    def encode(self, texts: list[str]) -> TokenBatch:
        return self._tokenizer.encode_batch(texts)
