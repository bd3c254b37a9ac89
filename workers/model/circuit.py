"""A circuit breaker for the model endpoint (pure: fed outcomes and a clock, no I/O).

Without it a dead endpoint turns every queued job into a retry loop that ends in the DLQ once
its deadline passes, one job after another. With it the worker notices the outage after
``failure_threshold`` jobs in a row failed on the model, stops taking work for ``cooldown_s``
(jobs are retried, never dead-lettered, meanwhile), then lets one job through as a probe:

::

    closed --N consecutive failures--> open --cool-down over--> half_open
       ^                                 ^                          |
       |                                 +------ probe failed ------+
       +--------------------------- probe succeeded ----------------+
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class CircuitState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures of one dependency; not thread-safe (one job at a time)."""

    def __init__(
        self,
        failure_threshold: int,
        cooldown_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if cooldown_s <= 0:
            raise ValueError("cooldown_s must be > 0")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self.times_opened = 0

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._clock() - self._opened_at >= self.cooldown_s:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """Whether a job may call the dependency now (closed, or half-open for the probe)."""
        return self.state is not CircuitState.OPEN

    def retry_in_s(self) -> float:
        """Seconds until the breaker lets a probe through; 0 when it already does."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.cooldown_s - (self._clock() - self._opened_at))

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None

    def record_failure(self) -> CircuitState:
        """Count one failure; a failed half-open probe re-opens for a full cool-down."""
        self._failures += 1
        if self._opened_at is not None or self._failures >= self.failure_threshold:
            if self.state is not CircuitState.OPEN:
                self.times_opened += 1
            self._opened_at = self._clock()
        return self.state
