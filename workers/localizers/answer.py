"""Turning a model's answer text into events, defensively and without I/O.

Models wrap JSON in fences and prose, run out of tokens mid-object, invent labels, reverse or
overshoot times, and repeat themselves. ``parse_answer`` keeps whatever is usable, counts what it
drops and says why, and never raises on model output: deciding to ask again is the caller's job.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workers.types import Chunk, DetectedEvent

MAX_INPUT_CHARS = 256 * 1024
MAX_EVENTS = 200
MAX_DEPTH = 16  # the contract is 3 deep; anything far deeper is garbage (and json recurses)
MAX_CANDIDATES = 16  # JSON start positions tried inside prose before giving up
EDGE_SLACK_S = 1.0  # models round to the next frame; allow that much past the chunk edges
MAX_LABEL_CHARS = 120
MAX_DESCRIPTION_CHARS = 500
SOURCE = "vlm"

_START_KEYS = ("start_s", "start", "start_time", "begin", "from")
_END_KEYS = ("end_s", "end", "end_time", "stop", "to")
_POINT_KEYS = ("t_s", "time", "timestamp", "time_s")
_LABEL_KEYS = ("label", "name", "event", "object")

_SIGNIFICANT = re.compile(r'["\\{}\[\]]')
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_CLOCK = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)")
_UNIT = re.compile(r"\s*(?:seconds|second|secs|sec|s)$")
_CLOSER = {"{": "}", "[": "]"}


@dataclass(frozen=True)
class ParsedAnswer:
    events: tuple[DetectedEvent, ...]
    rejected: int
    problems: tuple[str, ...]
    found_json: bool = True  # False: no JSON answer at all, so asking again may help


def parse_answer(
    content: str,
    finish_reason: str,
    *,
    chunk: Chunk,
    video_duration_s: float,
    labels: Sequence[str],
) -> ParsedAnswer:
    notes = _Notes()
    try:
        items = _extract_items(content if isinstance(content, str) else "", finish_reason, notes)
        if items is None:
            notes.reject("no JSON answer found")
            return notes.result((), found_json=False)
        events = _events_from(items, chunk, video_duration_s, labels, notes)
    except (RecursionError, MemoryError, ValueError, TypeError, OverflowError) as exc:
        # Defence in depth: a parser bug must cost one chunk's answer, not the job.
        notes.reject(f"answer parser failed: {type(exc).__name__}")
        return notes.result((), found_json=False)
    return notes.result(tuple(events))


class _Notes:
    def __init__(self) -> None:
        self.rejected = 0
        self.reasons: Counter[str] = Counter()

    def note(self, reason: str, count: int = 1) -> None:
        self.reasons[reason] += count

    def reject(self, reason: str, count: int = 1) -> None:
        self.rejected += count
        self.note(reason, count)

    def result(self, events: tuple[DetectedEvent, ...], *, found_json: bool = True) -> ParsedAnswer:
        problems = tuple(r if n == 1 else f"{r} (x{n})" for r, n in self.reasons.items())
        return ParsedAnswer(events, self.rejected, problems, found_json)


# ---- finding the JSON ---------------------------------------------------------------------


def _extract_items(content: str, finish_reason: str, notes: _Notes) -> list[Any] | None:
    if not content.strip():
        notes.note("empty answer")
        return None
    if len(content) > MAX_INPUT_CHARS:
        notes.note(f"answer over {MAX_INPUT_CHARS // 1024} KiB was cut")
        content = content[:MAX_INPUT_CHARS]
    content = _THINK.sub("", content)
    for text in _search_texts(content):
        value = _first_json_value(text, finish_reason, notes)
        if value is not None:
            return _items_of(value, notes)
    return None


def _search_texts(content: str) -> list[str]:
    """Inside code fences first (the model's own framing), then the whole text."""
    texts = []
    pieces = content.split("```")
    for inside in pieces[1::2]:  # odd pieces sit between fences; an unclosed one runs to the end
        inside = re.sub(r"^[A-Za-z]*\s*", "", inside, count=1)  # drop a "json" language tag
        if "{" in inside or "[" in inside:
            texts.append(inside)
    texts.append(content)
    return texts


def _first_json_value(text: str, finish_reason: str, notes: _Notes) -> Any:
    starts = [m.start() for m in re.finditer(r"[{\[]", text)][:MAX_CANDIDATES]
    for pos in starts:
        end, stack_at_closes, too_deep = _scan(text, pos)
        if too_deep:
            notes.note("JSON nested too deeply")
            return None  # every later candidate starts inside the same deep structure
        if end is not None:
            snippet = text[pos:end]
            value = _loads(snippet)
            if value is None:
                value = _loads(_TRAILING_COMMA.sub(r"\1", snippet))
            if value is not None:
                return value
            continue
        # Unclosed: output stopped mid-JSON. Cut after the last complete object, close the rest.
        value = _repair(text, pos, stack_at_closes)
        if value is not None:
            reason = "length" if finish_reason == "length" else f"finish_reason={finish_reason}"
            notes.note(f"answer truncated ({reason}); kept complete events")
            return value
    return None


def _scan(text: str, pos: int) -> tuple[int | None, list[tuple[int, str]], bool]:
    """Bracket-match from ``pos``: (end or None if unclosed, [(cut, open stack)], too deep)."""
    stack: list[str] = []
    closes: list[tuple[int, str]] = []
    in_string = False
    escaped_at = -1
    for match in _SIGNIFICANT.finditer(text, pos):
        i = match.start()
        char = match.group()
        if i == escaped_at:
            continue
        if in_string:
            if char == "\\":
                escaped_at = i + 1
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "{[":
            stack.append(char)
            if len(stack) > MAX_DEPTH:
                return None, closes, True
        elif char in "}]":
            if not stack or _CLOSER[stack[-1]] != char:
                return None, closes, False  # mismatched: not repairable from here
            stack.pop()
            if not stack:
                return i + 1, closes, False
            if char == "}":
                closes.append((i + 1, "".join(stack)))
                del closes[:-8]  # only the last few cut points are ever tried
    return None, closes, False


def _repair(text: str, pos: int, closes: list[tuple[int, str]]) -> Any:
    for cut, stack in reversed(closes):
        tail = "".join(_CLOSER[c] for c in reversed(stack))
        value = _loads(text[pos:cut] + tail)
        if value is not None:
            return value
    return None


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:  # JSONDecodeError, or an integer too long to convert
        return None


def _items_of(value: Any, notes: _Notes) -> list[Any]:
    if isinstance(value, list):
        return value
    if not isinstance(value, dict):
        notes.note("answer is not an object or list")
        return []
    events = value.get("events")
    if isinstance(events, list):
        return events
    if isinstance(events, dict):
        return [events]
    if any(key in value for key in (*_LABEL_KEYS, *_START_KEYS)):
        return [value]  # a single bare event
    for other in value.values():
        if isinstance(other, list) and other and all(isinstance(x, dict) for x in other):
            notes.note("events found under another key")
            return other
    notes.note("no events list in answer")
    return []


# ---- checking each event ------------------------------------------------------------------


def _events_from(
    items: list[Any],
    chunk: Chunk,
    duration_s: float,
    labels: Sequence[str],
    notes: _Notes,
) -> list[DetectedEvent]:
    if len(items) > MAX_EVENTS:
        notes.reject(f"over {MAX_EVENTS} events in one answer", len(items) - MAX_EVENTS)
        items = items[:MAX_EVENTS]
    allowed = {_plain(_norm(label)): label for label in labels}
    low = max(0.0, chunk.start_s - EDGE_SLACK_S)
    high = chunk.end_s + EDGE_SLACK_S
    if duration_s > 0 and math.isfinite(duration_s):
        high = min(high, duration_s)
    high = max(high, low)
    seen: set[tuple[str, float, float]] = set()
    events: list[DetectedEvent] = []
    for item in items:
        event = _event_from(item, low, high, allowed, notes)
        if event is None:
            continue
        key = (event.label, round(event.start_s, 2), round(event.end_s, 2))
        if key in seen:
            notes.reject("duplicate event")
            continue
        seen.add(key)
        events.append(event)
    return events


def _event_from(
    item: Any, low: float, high: float, allowed: dict[str, str], notes: _Notes
) -> DetectedEvent | None:
    if not isinstance(item, dict):
        notes.reject("event is not an object")
        return None
    raw_label = _first(item, _LABEL_KEYS)
    if not isinstance(raw_label, str) or not _norm(raw_label):
        notes.reject("event without a label")
        return None
    label = _norm(raw_label)[:MAX_LABEL_CHARS]
    if allowed:
        canonical = allowed.get(_plain(label))
        if canonical is None:
            notes.reject("label not asked for")
            return None
        label = canonical
    start = _seconds(_first(item, _START_KEYS))
    end = _seconds(_first(item, _END_KEYS))
    if start is None and end is None:
        start = end = _seconds(_first(item, _POINT_KEYS))
    if start is None or end is None:
        notes.reject("missing, negative or non-finite time")
        return None
    if end < start:
        notes.note("reversed times swapped")
        start, end = end, start
    if end < low or start > high:
        notes.reject("event outside the chunk")
        return None
    if start < low or end > high:
        notes.note("times clamped to the chunk")
        start, end = max(start, low), min(end, high)
    description = item.get("description")
    return DetectedEvent(
        label=label,
        start_s=start,
        end_s=end,
        description=description[:MAX_DESCRIPTION_CHARS] if isinstance(description, str) else "",
        confidence=_confidence(item.get("confidence")),
        source=SOURCE,
    )


def _first(item: dict[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if key in item:
            return item[key]
    return None


def _norm(label: str) -> str:
    return " ".join(re.sub(r"[_\-]+", " ", label).lower().split())


def _plain(label: str) -> str:
    # "red circles" asked as "red circle": match singular and plural alike
    return label[:-1] if label.endswith("s") and len(label) > 3 else label


def _seconds(value: Any) -> float | None:
    """Seconds from 12.5, "12.5", "12.5s", "<12.5 seconds>", "1:02.5" or "00:01:02.5"."""
    number: float | None = None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and len(value) <= 40:
        text = _UNIT.sub("", value.strip().strip("<>").strip().lower())
        clock = _CLOCK.fullmatch(text)
        if clock:
            hours, minutes, secs = clock.groups()
            number = int(hours or 0) * 3600 + int(minutes) * 60 + float(secs)
        elif _NUMBER.fullmatch(text):
            number = float(text)
    if number is None or not math.isfinite(number) or number < 0:
        return None
    return number


def _confidence(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip().rstrip("%")
        value = float(text) if _NUMBER.fullmatch(text) else None
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    if value > 1:
        value = value / 100 if value <= 100 else None  # "90" or "90%" means 0.9
    return None if value is None else float(value)
