"""The circuit breaker, on a fake clock."""

from __future__ import annotations

import pytest

from samo_serve.storage.circuit import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_opens_after_consecutive_failures_only(clock: Clock) -> None:
    breaker = CircuitBreaker(3, 5.0, clock)
    breaker.failure()
    breaker.failure()
    breaker.success()  # the run is broken
    breaker.failure()
    breaker.failure()
    assert breaker.state == "closed"
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.times_opened == 1


def test_half_open_lets_exactly_one_trial_through(clock: Clock) -> None:
    breaker = CircuitBreaker(1, 5.0, clock)
    breaker.failure()
    clock.now = 4.9
    assert not breaker.allow()
    clock.now = 5.0
    assert breaker.state == "half_open"
    assert breaker.allow()
    assert not breaker.allow()  # the others wait for the trial's outcome


def test_successful_trial_closes(clock: Clock) -> None:
    breaker = CircuitBreaker(1, 5.0, clock)
    breaker.failure()
    clock.now = 6
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed"
    assert breaker.allow()
    assert breaker.allow()


def test_failed_trial_opens_again_for_a_full_period(clock: Clock) -> None:
    breaker = CircuitBreaker(3, 5.0, clock)
    for _ in range(3):
        breaker.failure()
    clock.now = 5
    assert breaker.allow()
    breaker.failure()  # one failure is enough in half-open state
    assert breaker.state == "open"
    clock.now = 9.9
    assert not breaker.allow()
    clock.now = 10
    assert breaker.allow()
    assert breaker.times_opened == 2


def test_snapshot(clock: Clock) -> None:
    breaker = CircuitBreaker(2, 1.0, clock)
    breaker.failure()
    assert breaker.snapshot() == {"state": "closed", "consecutive_failures": 1, "opened": 0}


@pytest.mark.parametrize(("failures", "open_s"), [(0, 1.0), (1, 0.0)])
def test_rejects_nonsense(failures: int, open_s: float) -> None:
    with pytest.raises(ValueError, match="failures_to_open"):
        CircuitBreaker(failures, open_s)
