"""What every deployment does the same way: settings from Serve args, the served model card."""

from __future__ import annotations

from typing import Any

from samo_serve.core.model_card import ModelCard, load_card, with_variant
from samo_serve.settings import Settings


def settings_from_args(args: dict[str, Any]) -> Settings:
    return Settings(**args)


def served_card(settings: Settings, verify: bool) -> ModelCard:
    card = load_card(settings.model_dir, verify=verify)
    if settings.runner.precision != "default":
        card = with_variant(card, settings.runner.precision, settings.model_dir)
    return card
