from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidloc.backoff import compute_backoff, parse_retry_after


@pytest.mark.parametrize(
    ("attempt", "expected_ceiling"),
    [(0, 0.5), (1, 1.0), (2, 2.0), (5, 16.0), (6, 30.0), (50, 30.0), (10_000, 30.0)],
)
def test_ceiling_grows_exponentially_then_caps(attempt: int, expected_ceiling: float) -> None:
    assert compute_backoff(attempt, rand=lambda: 1.0) == pytest.approx(expected_ceiling)


def test_full_jitter_scales_the_ceiling() -> None:
    assert compute_backoff(3, rand=lambda: 0.25) == pytest.approx(1.0)
    assert compute_backoff(3, rand=lambda: 0.0) == 0.0


def test_retry_after_is_a_floor() -> None:
    assert compute_backoff(0, retry_after_s=7.0, rand=lambda: 1.0) == pytest.approx(7.0)
    # a jittered delay longer than Retry-After is kept
    assert compute_backoff(6, retry_after_s=2.0, rand=lambda: 1.0) == pytest.approx(30.0)


def test_retry_after_floor_is_capped() -> None:
    delay = compute_backoff(0, retry_after_s=10_000, max_retry_after_s=120, rand=lambda: 0.0)
    assert delay == pytest.approx(120.0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -5.0, 0.0])
def test_nonsense_retry_after_is_ignored(bad: float) -> None:
    assert compute_backoff(1, retry_after_s=bad, rand=lambda: 0.5) == pytest.approx(0.5)


@given(
    attempt=st.integers(min_value=-10, max_value=10**6),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    retry_after=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
)
def test_delay_is_always_bounded(attempt: int, jitter: float, retry_after: float | None) -> None:
    delay = compute_backoff(
        attempt, cap_s=30.0, retry_after_s=retry_after, max_retry_after_s=300.0, rand=lambda: jitter
    )
    assert 0.0 <= delay <= 300.0


NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("nan", None),
        ("soon", None),
        ("Wed, 01 Jan 2025 12:00:30 GMT", 30.0),
        ("Wed, 01 Jan 2025 11:59:00 GMT", 0.0),
        ("Wed, 01 Jan 2025 12:01:00 -0000", 60.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


def test_parse_retry_after_defaults_to_wall_clock() -> None:
    later = datetime.now(UTC) + timedelta(seconds=100)
    header = later.strftime("%a, %d %b %Y %H:%M:%S GMT")
    value = parse_retry_after(header)
    assert value is not None
    assert 95.0 <= value <= 100.0
