"""`vidloc init`'s waiting: transient failures are retried until the deadline, then reported."""

from __future__ import annotations

import pytest

from vidloc.cli.init import RETRY_EVERY_S, until_ready
from vidloc.errors import BusUnavailable, ConfigError


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_booting_service_is_retried_until_it_answers() -> None:
    clock = FakeClock()
    answers: list[str] = []

    def step() -> str:
        if clock.now < 3 * RETRY_EVERY_S:
            raise BusUnavailable("refused")
        answers.append("ok")
        return "ready"

    assert until_ready("kafka", step, 60.0, clock=clock, sleep=clock.sleep) == "ready"
    assert answers == ["ok"] and clock.now == 3 * RETRY_EVERY_S


def test_past_the_deadline_the_last_transient_error_is_raised() -> None:
    clock = FakeClock()
    calls = 0

    def step() -> None:
        nonlocal calls
        calls += 1
        raise BusUnavailable(f"refused #{calls}")

    with pytest.raises(BusUnavailable, match="refused #6"):
        until_ready("kafka", step, 10.0, clock=clock, sleep=clock.sleep)
    assert clock.now == 10.0


def test_a_permanent_error_is_not_retried() -> None:
    clock = FakeClock()

    def step() -> None:
        raise ConfigError("bad endpoint")

    with pytest.raises(ConfigError):
        until_ready("s3", step, 60.0, clock=clock, sleep=clock.sleep)
    assert clock.now == 0.0
