"""What the model path says about one text: the value every cache level stores and the pipeline returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CachedResult"]


@dataclass(frozen=True)
class CachedResult:
    scores: np.ndarray  # float32 [n_labels]
    truncated: bool
