"""Per-client request rate limits: token buckets, fed the time (pure, no clock of their own).

A bucket holds up to ``burst`` tokens and refills at ``rate_per_s``; a request takes one. When
none is left the caller answers 429 with ``Retry-After`` = the seconds until one token is back.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class TokenBucket:
    rate_per_s: float
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate_per_s: float, burst: float, now: float) -> TokenBucket:
        return cls(rate_per_s, burst, burst, now)

    def take(self, now: float) -> float:
        """Take one token: 0.0 when granted, else the seconds to wait (nothing is taken)."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate_per_s)
        self.updated = max(self.updated, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate_per_s


def retry_after_header(wait_s: float) -> str:
    """Retry-After takes whole seconds; round up so a client that obeys it is served."""
    return str(max(1, math.ceil(wait_s)))


class RateLimiter:
    """One bucket per client name (a key id), the least recently used dropped past
    ``max_clients`` so unauthenticated names cannot grow memory without bound."""

    def __init__(self, rate_per_s: float, burst: float, *, max_clients: int = 10_000) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._max = max_clients
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str, now: float) -> float:
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is None:
                bucket = TokenBucket.full(self.rate_per_s, self.burst, now)
                self._buckets[client] = bucket
                if len(self._buckets) > self._max:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(client)
            return bucket.take(now)
