"""What the model path says about one text: the value every cache level stores and the pipeline returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CachedResult"]


@dataclass(frozen=True)
class CachedResult:
    scores: np.ndarray  # float32 [n_labels]
    truncated: bool
    #: what is derived from the scores alone, kept with them: an L1 hit is the same object again, so its
    #: rendered emotions (per set of options) and its log row's scores JSON are made once, not per request
    derived: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)
