"""What every deployment does the same way: settings from Serve args, the served model card."""

from __future__ import annotations

from typing import Any

from samo_serve.core.model_card import served_card
from samo_serve.settings import Settings

__all__ = ["served_card", "settings_from_args"]


def settings_from_args(args: dict[str, Any]) -> Settings:
    return Settings(**args)
