"""Tokenizer deployment: one call encodes a whole ingress micro-batch."""

from __future__ import annotations

from typing import Any

from deployments.common import served_card, settings_from_args
from samo_serve.tokenizer import TextTokenizer, TokenBatch


class Tokenizer:
    def __init__(self, args: dict[str, Any]) -> None:
        settings = settings_from_args(args)
        card = served_card(settings, verify=False)
        self._tokenizer = TextTokenizer.for_card(card, settings.model_dir)

    def encode(self, texts: list[str]) -> TokenBatch:
        return self._tokenizer.encode_batch(texts)
