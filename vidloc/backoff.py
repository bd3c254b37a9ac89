"""Retry delays for calls to flaky services: pure, so the schedule itself is tested, not slept."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# A server may ask for any Retry-After; past this we stop obeying blindly, because a worker
# thread parked for an hour holds its Kafka partition hostage. Callers that see a longer
# Retry-After should give up and let the job be retried later instead.
MAX_RETRY_AFTER_S = 300.0


def compute_backoff(
    attempt: int,
    *,
    base_s: float = 0.5,
    cap_s: float = 30.0,
    retry_after_s: float | None = None,
    max_retry_after_s: float = MAX_RETRY_AFTER_S,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 = the first retry).

    Capped exponential backoff with full jitter (a uniform draw in ``[0, min(cap, base*2^n)]``),
    which spreads a fleet of workers hitting the same rate limit instead of having them retry
    in lockstep. A server-sent Retry-After is a floor: we never come back sooner than asked,
    but the floor itself is capped at ``max_retry_after_s``.
    """
    attempt = max(0, attempt)
    # min() before the power would still overflow for huge attempts; bound the exponent.
    ceiling = min(cap_s, base_s * math.pow(2.0, min(attempt, 64)))
    jitter = min(max(rand(), 0.0), 1.0)
    delay = max(0.0, ceiling * jitter)
    if retry_after_s is not None and math.isfinite(retry_after_s) and retry_after_s > 0:
        delay = max(delay, min(retry_after_s, max_retry_after_s))
    return delay


def parse_retry_after(header: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date.

    Returns None when the header is absent or unreadable, and 0 for a date in the past.
    ``now`` is injectable so tests need no clock.
    """
    if header is None:
        return None
    value = header.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            return None
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT even when the zone is spelled "-0000"
        when = when.replace(tzinfo=UTC)
    reference = now if now is not None else datetime.now(UTC)
    if reference.tzinfo is None:
        reference = reference.replace(tzinfo=UTC)
    return max(0.0, (when - reference).total_seconds())
