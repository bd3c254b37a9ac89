"""Reading times: single values, ranges in one field, ranges in prose, time-range keys."""

from __future__ import annotations

from typing import Any

import pytest

from workers.localizers.answer.times import find_ranges, range_key, seconds, span_of, spans_of


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(12.5, 12.5, id="float"),
        pytest.param(12, 12.0, id="int"),
        pytest.param("12.5", 12.5, id="numeric-string"),
        pytest.param("12.5s", 12.5, id="s"),
        pytest.param("12.5 s", 12.5, id="space-s"),
        pytest.param("12.5 sec.", 12.5, id="sec-dot"),
        pytest.param("12.5 secs", 12.5, id="secs"),
        pytest.param("12.5 seconds", 12.5, id="seconds"),
        pytest.param("1 second", 1.0, id="second"),
        pytest.param("12.5秒", 12.5, id="chinese-miao"),
        pytest.param("12.5 秒钟", 12.5, id="chinese-miaozhong"),
        pytest.param("<12.5 seconds>", 12.5, id="qwen-tag"),
        pytest.param("00:23", 23.0, id="mm:ss"),
        pytest.param("01:02.50", 62.5, id="mm:ss.ff"),
        pytest.param("1:02:03.5", 3723.5, id="h:mm:ss.f"),
        pytest.param("00:00:12.5", 12.5, id="hh:mm:ss.f"),
        pytest.param("12:34.56s", 754.56, id="mm:ss.ff-with-s"),
        pytest.param(" 3.0 ", 3.0, id="padded"),
        pytest.param(".5", 0.5, id="leading-dot"),
    ],
)
def test_one_time(value: Any, expected: float) -> None:
    assert seconds(value) == pytest.approx(expected)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(-1, id="negative"),
        pytest.param("-1", id="negative-string"),
        pytest.param(float("nan"), id="nan"),
        pytest.param(float("inf"), id="inf"),
        pytest.param(True, id="bool"),
        pytest.param(None, id="none"),
        pytest.param("soon", id="word"),
        pytest.param("12.5 sheep", id="not-a-unit"),
        pytest.param("1:75", id="seconds-over-59"),
        pytest.param("3 - 5", id="a-range-is-not-one-time"),
        pytest.param("1" * 50, id="too-long"),
        pytest.param([1], id="list"),
    ],
)
def test_not_one_time(value: Any) -> None:
    assert seconds(value) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("31.0 - 40.5 seconds", (31.0, 40.5), id="a-b-unit-after"),
        pytest.param("31.0s - 40.5s", (31.0, 40.5), id="a-b-units-each"),
        pytest.param("31-40", (31.0, 40.0), id="no-spaces"),
        pytest.param("3.2 to 7.5", (3.2, 7.5), id="to"),
        pytest.param("from 3.2 to 7.5 seconds", (3.2, 7.5), id="from-to"),
        pytest.param("between 3 and 5 s", (3.0, 5.0), id="between-and"),
        pytest.param("37.1秒到52.6秒", (37.1, 52.6), id="chinese-dao"),
        pytest.param("37.1秒至52.6秒", (37.1, 52.6), id="chinese-zhi"),
        pytest.param("0:00-0:05", (0.0, 5.0), id="clock-hyphen"),
        pytest.param("00:23.00 - 00:48.00", (23.0, 48.0), id="cookbook-clock"),
        pytest.param("1:02:03 - 1:02:09.5", (3723.0, 3729.5), id="hours"),
        pytest.param("3.0 \u2013 5.0 s", (3.0, 5.0), id="en-dash"),
        pytest.param("3.0~5.0", (3.0, 5.0), id="tilde"),
        pytest.param("3.0 -> 5.0", (3.0, 5.0), id="arrow"),
        pytest.param("The event happens in 31.5 - 40.5 seconds.", (31.5, 40.5), id="sentence"),
        pytest.param("<3.0 seconds> to <5.0 seconds>", None, id="tags-not-a-range"),
        pytest.param("3 circles and 5 squares", None, id="counts-not-times"),
        pytest.param("about 12 seconds", None, id="one-time"),
    ],
)
def test_range_in_one_field(text: str, expected: tuple[float, float] | None) -> None:
    span = span_of(text)
    assert span == (pytest.approx(expected) if expected else None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param([31.0, 40.5], [(31.0, 40.5)], id="pair"),
        pytest.param(["0:31", "0:40.5"], [(31.0, 40.5)], id="pair-of-clocks"),
        pytest.param(["31s", "40.5 seconds"], [(31.0, 40.5)], id="pair-with-units"),
        pytest.param([[1, 2], [5, 6]], [(1.0, 2.0), (5.0, 6.0)], id="list-of-pairs"),
        pytest.param(["1 - 2", "5 to 6"], [(1.0, 2.0), (5.0, 6.0)], id="list-of-range-strings"),
        pytest.param({"start": 1, "end": 2}, [(1.0, 2.0)], id="start-end-object"),
        pytest.param({"Start_S": "1s", "End_S": "2s"}, [(1.0, 2.0)], id="object-any-case"),
        pytest.param([1, 2, 3], [], id="three-numbers"),
        pytest.param([1, "x"], [], id="half-a-pair"),
        pytest.param([], [], id="empty"),
        pytest.param(7, [], id="a-number-is-no-span"),
    ],
)
def test_spans(value: Any, expected: list[tuple[float, float]]) -> None:
    assert list(spans_of(value)) == expected


def test_several_ranges_in_prose_in_order() -> None:
    text = "A red circle from 1 to 2 s, then again 5.5 - 6 seconds; 9:00-9:30 nothing."
    assert list(find_ranges(text)) == [(1.0, 2.0), (5.5, 6.0), (540.0, 570.0)]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        pytest.param("00:23.00 - 00:48.00", (23.0, 48.0), id="cookbook"),
        pytest.param("[0:00-0:05]", (0.0, 5.0), id="bracketed"),
        pytest.param("from 3 to 5 seconds", (3.0, 5.0), id="words"),
        pytest.param("12.5s-14s", (12.5, 14.0), id="units"),
        pytest.param("red circle", None, id="a-label"),
        pytest.param("events", None, id="events"),
        pytest.param("12.5", None, id="one-time"),
        pytest.param("between 3 and 5 s a red circle", None, id="key-with-prose"),
    ],
)
def test_range_keys(key: str, expected: tuple[float, float] | None) -> None:
    assert range_key(key) == expected
