"""A small circuit breaker for optional dependencies (Redis, the request-log database).

Closed: calls go through. After ``failures_to_open`` consecutive failures it opens for ``open_s``
seconds: calls are skipped (the caller serves without the dependency). Then one trial call goes
through (half-open): success closes it, failure opens it again. No thread, no timer: state is
worked out from the clock when asked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

__all__ = ["CircuitBreaker"]

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(self, failures_to_open: int, open_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if failures_to_open < 1 or open_s <= 0:
            raise ValueError("failures_to_open must be >= 1 and open_s > 0")
        self.failures_to_open = failures_to_open
        self.open_s = open_s
        self._clock = clock
        self._consecutive_failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False
        self.times_opened = 0

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.open_s:
            return "open"
        return "half_open"

    def allow(self) -> bool:
        """Whether to try the dependency now. In half-open state only one caller gets a trial."""
        state = self.state
        if state == "closed":
            return True
        if state == "open" or self._trial_in_flight:
            return False
        self._trial_in_flight = True
        return True

    def success(self) -> None:
        self._consecutive_failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def failure(self) -> None:
        self._consecutive_failures += 1
        trial_failed = self._trial_in_flight
        self._trial_in_flight = False
        if trial_failed or self._consecutive_failures >= self.failures_to_open:
            if self._opened_at is None or trial_failed:
                self.times_opened += 1
            self._opened_at = self._clock()

    def snapshot(self) -> dict[str, object]:
        return {"state": self.state, "consecutive_failures": self._consecutive_failures, "opened": self.times_opened}
