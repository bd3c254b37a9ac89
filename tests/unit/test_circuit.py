"""The model-endpoint circuit breaker, driven by a fake clock."""

from __future__ import annotations

import pytest

from workers.model.circuit import CircuitBreaker, CircuitState


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_only_after_the_threshold_of_consecutive_failures() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3, 10.0, clock=clock)
    assert breaker.record_failure() is CircuitState.CLOSED
    assert breaker.record_failure() is CircuitState.CLOSED
    assert breaker.allow()
    assert breaker.record_failure() is CircuitState.OPEN
    assert not breaker.allow()
    assert breaker.retry_in_s() == pytest.approx(10.0)
    assert breaker.times_opened == 1


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(2, 10.0, clock=Clock())
    breaker.record_failure()
    breaker.record_success()
    assert breaker.record_failure() is CircuitState.CLOSED
    assert breaker.consecutive_failures == 1


def test_half_open_after_the_cooldown_then_closes_on_a_good_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 5.0, clock=clock)
    breaker.record_failure()
    clock.now += 4.0
    assert breaker.state is CircuitState.OPEN and breaker.retry_in_s() == pytest.approx(1.0)
    clock.now += 1.0
    assert breaker.state is CircuitState.HALF_OPEN and breaker.allow()
    assert breaker.retry_in_s() == 0.0
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED and breaker.consecutive_failures == 0


def test_a_failed_probe_reopens_for_a_full_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(2, 5.0, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 6.0
    assert breaker.allow()
    assert breaker.record_failure() is CircuitState.OPEN  # one failure is enough when probing
    assert breaker.retry_in_s() == pytest.approx(5.0)
    assert breaker.times_opened == 2


@pytest.mark.parametrize(("threshold", "cooldown"), [(0, 1.0), (1, 0.0)])
def test_refuses_nonsense_configuration(threshold: int, cooldown: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(threshold, cooldown)
