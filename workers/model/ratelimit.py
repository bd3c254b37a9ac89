"""One rate limiter for the model endpoint, shared by every job of a worker (pure; fed a clock).

The hosted endpoint limits requests and tokens per minute. Several jobs at once would otherwise
storm it: each sends as fast as its own retries allow, all get 429s, all back off, all come back
together. So every request first *reserves* one request and the tokens it will probably use from
two token buckets (``VIDLOC_VLM_REQUESTS_PER_MIN``, ``VIDLOC_VLM_TOKENS_PER_MIN``; unset: no
bucket) and waits as long as the reservation says. The endpoint's word wins over the settings:

- a 429 blocks every request of the worker until its ``Retry-After`` (or a short pause) and
  halves the rates (never below ``MIN_SHARE`` of the configured ones);
- each success brings the rates back up by ``RECOVER_SHARE`` of the configured ones;
- tokens are reserved at the running average per request and the difference to the real usage is
  settled afterwards, so the token bucket tracks what the endpoint counts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MIN_SHARE = 0.1  # rates never fall below this share of the configured ones
RECOVER_SHARE = 0.05  # each success restores this share of the configured rate
DEFAULT_PAUSE_S = 1.0  # a 429 without Retry-After pauses everyone this long
BURST_S = 6.0  # a bucket holds this many seconds of its rate (a 10th of the minute)
_AVERAGE_WEIGHT = 0.2  # of the newest request in the running token average


@dataclass
class TokenBucket:
    """A bucket that may go into debt: ``take`` always reserves and says how long to wait."""

    rate_per_s: float
    capacity: float
    level: float
    updated: float

    @classmethod
    def per_minute(cls, per_min: float, now: float) -> TokenBucket:
        rate = per_min / 60.0
        capacity = max(1.0, rate * BURST_S)
        return cls(rate, capacity, capacity, now)

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.level = min(self.capacity, self.level + elapsed * self.rate_per_s)
        self.updated = now

    def take(self, amount: float, now: float) -> float:
        """Reserve ``amount``; seconds until the reservation is covered (0: go now)."""
        self._refill(now)
        self.level -= amount
        return 0.0 if self.level >= 0 else -self.level / self.rate_per_s

    def give_back(self, amount: float, now: float) -> None:
        """Settle a reservation that was too high (``amount`` > 0) or too low (< 0)."""
        self._refill(now)
        self.level = min(self.capacity, self.level + amount)

    def set_rate(self, rate_per_s: float, now: float) -> None:
        self._refill(now)
        self.rate_per_s = rate_per_s


class RateLimiter:
    """Thread-safe; one per worker, passed to the model client."""

    def __init__(
        self,
        requests_per_min: float | None = None,
        tokens_per_min: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        now = clock()
        self._lock = threading.Lock()
        self._nominal = (requests_per_min, tokens_per_min)
        self._share = 1.0  # of the configured rates, after 429s
        self._requests = TokenBucket.per_minute(requests_per_min, now) if requests_per_min else None
        self._tokens = TokenBucket.per_minute(tokens_per_min, now) if tokens_per_min else None
        self._blocked_until = now
        self._average_tokens = 0.0
        self.rate_limited_count = 0

    @property
    def share(self) -> float:
        return self._share

    def reserve(self) -> tuple[float, float]:
        """Reserve one request: (seconds to wait before sending it, tokens reserved for it)."""
        with self._lock:
            now = self._clock()
            wait = max(0.0, self._blocked_until - now)
            tokens = self._average_tokens
            if self._requests is not None:
                wait = max(wait, self._requests.take(1.0, now))
            if self._tokens is not None and tokens > 0:
                wait = max(wait, self._tokens.take(tokens, now))
            return wait, tokens

    def succeeded(self, reserved_tokens: float, used_tokens: int) -> None:
        with self._lock:
            now = self._clock()
            if self._tokens is not None:
                self._tokens.give_back(reserved_tokens - used_tokens, now)
            if self._average_tokens == 0:
                self._average_tokens = float(used_tokens)
            else:
                self._average_tokens += _AVERAGE_WEIGHT * (used_tokens - self._average_tokens)
            self._set_share(min(1.0, self._share + RECOVER_SHARE), now)

    def rate_limited(self, retry_after_s: float | None) -> None:
        """The endpoint said 429: everyone waits, and the rates go down."""
        with self._lock:
            now = self._clock()
            pause = retry_after_s if retry_after_s is not None else DEFAULT_PAUSE_S
            self._blocked_until = max(self._blocked_until, now + pause)
            self._set_share(max(MIN_SHARE, self._share / 2), now)
            self.rate_limited_count += 1

    def _set_share(self, share: float, now: float) -> None:
        self._share = share
        for bucket, nominal in (
            (self._requests, self._nominal[0]),
            (self._tokens, self._nominal[1]),
        ):
            if bucket is not None and nominal:
                bucket.set_rate(nominal / 60.0 * share, now)
