"""What every deployment does the same way: settings from Serve args, the served model card."""

from __future__ import annotations

from typing import Any

from samo_serve.core.model_card import served_card
from samo_serve.observability.logs import log_to_stderr
from samo_serve.settings import Settings

__all__ = ["served_card", "settings_from_args"]


def settings_from_args(args: dict[str, Any]) -> Settings:
    """A replica's settings; called first by every deployment, so it also sends our log records to the
    replica's real stderr (not, line by line, into Serve's buffered logger: samo_serve.observability.logs)."""
    log_to_stderr()
    return Settings(**args)
