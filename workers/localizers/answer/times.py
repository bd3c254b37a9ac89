"""Reading times out of model answers: one value, a range in one field, ranges inside prose. Pure.

Qwen3-VL writes times every way it saw in training and in its cookbooks: numbers, "12.5",
"12.5s", "12.5 sec.", "12.5秒", "<12.5 seconds>", "mm:ss(.ff)", "hh:mm:ss(.ff)", "12:34.56s",
and ranges in one field ("31.0 - 40.5 seconds", "0:00-0:05", "from 3 to 5 s", "37.1秒到52.6秒",
"The event happens in 31.5 - 40.5 seconds"), or ``[start, end]`` pairs. No library reads this
mix, so the grammar is written out here as a few regular expressions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from workers.localizers.answer.keys import key_role, key_scale

Span = tuple[float, float]

MAX_TIME_TEXT = 40  # a single time is short; anything longer is prose, read with find_ranges
MAX_RANGE_TEXT = 2000  # prose searched for a range inside one field
MAX_PAIRS = 50  # [[a, b], [c, d], ...] under one key

# A clock (h:mm:ss.ff, m:ss.ff) or a plain decimal; never a sign (negative times are refused).
_TIME = r"(?:\d{1,3}:)?\d{1,3}:\d{1,2}(?:\.\d{1,6})?|\d{1,9}(?:\.\d{1,16})?|\.\d{1,16}"
# "s" counts only where no letter follows ("5 seconds" yes, "5 sheep" no).
_UNIT = r"(?:\s{0,4}(?:seconds?|secs?\.?|s(?![a-z])|秒钟?))?"
# Connectors: hyphen(s), en/em dash, tilde (ASCII and full-width), arrow, words, 到/至 ("to").
_CONNECT = r"\s{0,4}(?:-{1,2}>?|\u2013|\u2014|~|\uff5e|→|to|until|till|through|and|到|至)\s{0,4}"
_RANGE = re.compile(
    rf"(?<![\d.:])(?P<a>{_TIME})(?P<ua>{_UNIT}){_CONNECT}(?P<b>{_TIME})(?P<ub>{_UNIT})(?![\d:])",
    re.IGNORECASE,
)
_ONE = re.compile(rf"<?\s{{0,4}}(?P<t>{_TIME}){_UNIT}\s{{0,4}}>?", re.IGNORECASE)
_LEAD = re.compile(r"^\s{0,8}(?:from|between)\s{1,8}", re.IGNORECASE)

# Object keys that hold a whole span, in the order they are tried.
SPAN_KEYS = (
    "time",
    "timestamp",
    "timestamps",
    "time_range",
    "timerange",
    "range",
    "segment",
    "segments",
    "span",
    "interval",
    "period",
    "times",
    "window",
    "when",
    "duration",
)


def seconds(value: Any) -> float | None:
    """One time in seconds, or None for anything that is not exactly one finite, >= 0 time."""
    number: float | None = None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and len(value) <= MAX_TIME_TEXT:
        match = _ONE.fullmatch(value.strip())
        if match:
            number = clock_seconds(match.group("t"))
    if number is None or not math.isfinite(number) or number < 0:
        return None
    return number


def span_of(value: Any) -> Span | None:
    """A (start, end) from a ``[a, b]`` pair, a ``{"start": a, "end": b}`` object or a range
    written in one string (the first range in it, so a sentence around it is fine)."""
    spans = list(spans_of(value, limit=1))
    return spans[0] if spans else None


def spans_of(value: Any, *, limit: int = MAX_PAIRS) -> Iterator[Span]:
    """Every span ``value`` holds: one pair or range, or a list of them (``[[a, b], [c, d]]``)."""
    if isinstance(value, str):
        yield from find_ranges(value, limit=1)
        return
    if isinstance(value, dict):
        pair = _pair_from_mapping(value)
        if pair is not None:
            yield pair
        return
    if not isinstance(value, list) or not value:
        return
    if len(value) == 2 and not any(isinstance(v, list | dict) for v in value):
        pair = _pair(value[0], value[1])
        if pair is not None:
            yield pair
            return
    count = 0
    for element in value[:MAX_PAIRS]:
        if isinstance(element, list | dict | str):
            for span in spans_of(element, limit=1):
                yield span
                count += 1
                if count >= limit:
                    return


def find_ranges(text: str, *, limit: int = MAX_PAIRS) -> Iterator[Span]:
    """Ranges written in prose, in order: "31.5 - 40.5 seconds", "from 1:02 to 1:10", ..."""
    for span, _, _ in range_matches(text, limit=limit):
        yield span


def range_matches(text: str, *, limit: int = MAX_PAIRS) -> Iterator[tuple[Span, int, int]]:
    """``find_ranges`` with where each range is written: (span, first char, past last char)."""
    if not isinstance(text, str):
        return
    count = 0
    for match in _RANGE.finditer(text[:MAX_RANGE_TEXT]):
        start, end = clock_seconds(match.group("a")), clock_seconds(match.group("b"))
        if start is None or end is None or not (math.isfinite(start) and math.isfinite(end)):
            continue
        yield (start, end), match.start(), match.end()
        count += 1
        if count >= limit:
            return


def range_key(key: str) -> Span | None:
    """A span when a whole object key is a range ("00:23.00 - 00:48.00"), else None."""
    if not isinstance(key, str) or len(key) > 80:
        return None
    text = _LEAD.sub("", key.strip().strip("[]()<>").strip())
    match = _RANGE.fullmatch(text)
    if match is None:
        return None
    start, end = clock_seconds(match.group("a")), clock_seconds(match.group("b"))
    if start is None or end is None:
        return None
    return start, end


def _pair(a: Any, b: Any) -> Span | None:
    start, end = seconds(a), seconds(b)
    return None if start is None or end is None else (start, end)


def _pair_from_mapping(value: dict[str, Any]) -> Span | None:
    """``{"start": a, "end": b}`` under any start and end key names (``begin``/``finish``...)."""
    found: dict[str, float] = {}
    for key, item in list(value.items())[:MAX_PAIRS]:
        role = key_role(str(key))
        if role in ("start", "end") and role not in found:
            number = seconds(item)
            if number is not None:
                found[role] = number * key_scale(str(key))
    if "start" not in found or "end" not in found:
        return None
    return found["start"], found["end"]


def clock_seconds(text: str) -> float | None:
    """Seconds from "12.5", "1:02.5" (m:ss) or "1:02:03.5" (h:mm:ss)."""
    parts = text.split(":")
    try:
        if len(parts) == 1:
            return float(parts[0])
        *bigger, secs = parts
        total = float(secs)
        if total >= 60 and bigger:
            return None  # "1:75" is no time
        for scale, part in zip((60, 3600), reversed(bigger), strict=False):
            total += int(part) * scale
        return total
    except ValueError:
        return None
