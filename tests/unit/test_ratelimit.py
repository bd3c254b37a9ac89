"""The shared rate limiter: requests and tokens per minute, and the endpoint's 429s obeyed by
every job of the worker (a fake clock; no sleeping)."""

from __future__ import annotations

import pytest

from workers.model.ratelimit import BURST_S, DEFAULT_PAUSE_S, MIN_SHARE, RateLimiter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_no_limits_never_wait() -> None:
    limiter = RateLimiter(clock=Clock())
    assert [limiter.reserve()[0] for _ in range(1000)] == [0.0] * 1000


def test_requests_per_minute_allow_a_burst_then_space_requests_out() -> None:
    clock = Clock()
    limiter = RateLimiter(requests_per_min=60, clock=clock)  # 1/s, burst of BURST_S
    waits = [limiter.reserve()[0] for _ in range(int(BURST_S) + 3)]
    assert waits[: int(BURST_S)] == [0.0] * int(BURST_S)
    # Reservations queue up: the next three go 1, 2 and 3 s from now.
    assert waits[int(BURST_S) :] == pytest.approx([1.0, 2.0, 3.0])
    clock.now += 60
    assert limiter.reserve()[0] == 0.0  # refilled


def test_tokens_are_reserved_at_the_running_average_and_settled_after() -> None:
    clock = Clock()
    limiter = RateLimiter(tokens_per_min=6000, clock=clock)  # 100/s, bucket of 600
    wait, reserved = limiter.reserve()
    assert (wait, reserved) == (0.0, 0.0)  # nothing known yet: the first request goes
    limiter.succeeded(reserved, 500)
    waits = []
    for _ in range(3):
        wait, reserved = limiter.reserve()
        waits.append(wait)
    # 600 - 500 (first) = 100 left; three reservations of 500 each: debt 1400 at 100/s.
    assert reserved == 500
    assert waits == pytest.approx([4.0, 9.0, 14.0])


def test_a_429_pauses_everyone_for_retry_after_and_halves_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(requests_per_min=600, clock=clock)
    limiter.rate_limited(7.0)
    assert limiter.reserve()[0] == pytest.approx(7.0)
    assert limiter.share == 0.5
    clock.now += 7.0
    assert limiter.reserve()[0] == 0.0


def test_a_429_without_retry_after_pauses_briefly_and_rates_have_a_floor() -> None:
    limiter = RateLimiter(requests_per_min=600, clock=Clock())
    for _ in range(20):
        limiter.rate_limited(None)
    assert limiter.reserve()[0] == pytest.approx(DEFAULT_PAUSE_S)
    assert limiter.share == MIN_SHARE
    assert limiter.rate_limited_count == 20


def test_successes_bring_the_rate_back_to_the_configured_one() -> None:
    limiter = RateLimiter(requests_per_min=600, clock=Clock())
    limiter.rate_limited(0.0)
    limiter.rate_limited(0.0)
    assert limiter.share == 0.25
    for _ in range(100):
        limiter.succeeded(0.0, 10)
    assert limiter.share == 1.0


def test_a_bucket_in_debt_is_settled_by_a_give_back() -> None:
    bucket = TokenBucket.per_minute(60, now=0.0)
    bucket.take(bucket.capacity + 2, now=0.0)
    assert bucket.take(0, now=0.0) == pytest.approx(2.0)
    bucket.give_back(2, now=0.0)
    assert bucket.take(0, now=0.0) == 0.0
