"""The model client paces itself with the worker's shared rate limiter: a 429 seen by one job
holds back every other job's next request, and requests per minute are spread out."""

from __future__ import annotations

import httpx
import pytest
from test_model_client import BASE, MESSAGES, Script, ok

from vidloc.errors import ModelRateLimited
from workers.model.client import ModelClient
from workers.model.ratelimit import BURST_S, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def client_for(
    script: Script, limiter: RateLimiter, clock: Clock, *, retries: int
) -> tuple[ModelClient, list[float]]:
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    client = ModelClient(
        BASE,
        "m",
        "key",
        {},
        httpx.Client(transport=httpx.MockTransport(script)),
        max_retries=retries,
        sleep=sleep,
        limiter=limiter,
    )
    return client, slept


def test_a_429_of_one_job_holds_back_the_next_request_of_another() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    refused = Script(
        httpx.Response(429, headers={"Retry-After": "5"}, json={"error": {"message": "slow"}})
    )
    first, _ = client_for(refused, limiter, clock, retries=0)
    with pytest.raises(ModelRateLimited):
        first.complete(MESSAGES, None)
    answered = Script(ok())
    second, slept = client_for(answered, limiter, clock, retries=0)
    second.complete(MESSAGES, None)
    assert slept == [pytest.approx(5.0)]
    assert len(answered.requests) == 1


def test_requests_per_minute_spread_requests_beyond_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(requests_per_min=60, clock=clock)
    burst = int(BURST_S)
    script = Script(*[ok() for _ in range(burst + 2)])
    client, slept = client_for(script, limiter, clock, retries=0)
    for _ in range(burst + 2):
        client.complete(MESSAGES, None)
    assert slept == [pytest.approx(1.0), pytest.approx(1.0)]
