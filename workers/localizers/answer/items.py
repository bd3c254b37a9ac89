"""Every shape of answer Qwen3-VL gives, read into raw events (label, times, text). Pure.

Shapes (see ``shared/QWEN3VL.md``): the contract ``{"events": [...]}``; a bare list; one bare
event; events under another key; events with times in ``start_s``/``end_s``, in one range field
(``"time": "31.0 - 40.5 seconds"``) or as ``[start, end]`` pairs under any key; objects keyed by
time ranges (the cookbook's ``{"00:23.00 - 00:48.00": "trim the fat ..."}``); objects keyed by
label (``{"red circle": [2, 5]}``); and, with no JSON at all, ranges written in prose.
Checking labels and times against the request is ``answer.py``'s job, not this module's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from workers.localizers.answer.json_blocks import Notes
from workers.localizers.answer.times import (
    SPAN_KEYS,
    find_ranges,
    range_key,
    seconds,
    span_of,
    spans_of,
)

MAX_EVENTS = 200
MAX_TEXT_CHARS = 2000

START_KEYS = ("start_s", "start", "start_time", "starttime", "begin", "from", "start_sec")
END_KEYS = ("end_s", "end", "end_time", "endtime", "stop", "to", "end_sec")
POINT_KEYS = ("t_s", "time", "timestamp", "time_s", "at", "t")
LABEL_KEYS = ("label", "name", "event", "object", "action", "activity", "class", "category")
DESCRIPTION_KEYS = ("description", "desc", "caption", "text", "details", "summary", "content")
_EVENT_KEYS = frozenset((*START_KEYS, *END_KEYS, *POINT_KEYS, *LABEL_KEYS, *SPAN_KEYS))
_NOT_TIMES = frozenset((*LABEL_KEYS, *DESCRIPTION_KEYS, "confidence", "score", "id"))
# Where a sentence ends: a line break, ; ! ? (also full-width), 。, or a period before a space.
_SENTENCE_END = re.compile(r"[\n;!?。\uff01\uff1f\uff1b]|\.(?=\s|$)")


@dataclass(frozen=True)
class RawEvent:
    """One event as the answer wrote it. ``label`` None: find the label in ``text``."""

    label: str | None
    start: float | None
    end: float | None
    text: str = ""
    description: str = ""
    confidence: Any = None


def events_from_json(value: Any, notes: Notes) -> tuple[list[RawEvent], bool]:
    """(raw events, whether the answer is a readable events container at all)."""
    if isinstance(value, list):
        return _from_list(value, notes), True
    if not isinstance(value, dict):
        notes.note("answer is not an object or list")
        return [], False
    if not value:
        return [], True  # {}: an object with nothing in it says nothing happened
    lowered = {str(k).lower(): v for k, v in value.items()}
    events = lowered.get("events")
    if isinstance(events, list):
        return _from_list(events, notes), True
    if isinstance(events, dict):
        return _from_mapping(events, notes) or [], True
    if isinstance(events, str):
        return events_from_prose(events, notes), True
    found = _from_mapping(value, notes)
    if found is not None:
        return found, True
    notes.note("no events list in answer")
    return [], False


def events_from_prose(text: str, notes: Notes) -> list[RawEvent]:
    """Ranges written in sentences ("The event happens in 31.5 - 40.5 seconds"), one event each;
    the sentence is the text its label is looked for in."""
    out: list[RawEvent] = []
    for sentence in _SENTENCE_END.split(text[: MAX_TEXT_CHARS * 8]):
        line = sentence.strip()
        for start, end in find_ranges(line):
            out.append(RawEvent(None, start, end, line, line[:MAX_TEXT_CHARS]))
            if len(out) >= MAX_EVENTS:
                return out
    if out:
        notes.note("times read from prose", len(out))
    return out


def _from_list(items: list[Any], notes: Notes) -> list[RawEvent]:
    if len(items) > MAX_EVENTS:
        notes.reject(f"over {MAX_EVENTS} events in one answer", len(items) - MAX_EVENTS)
        items = items[:MAX_EVENTS]
    out: list[RawEvent] = []
    for item in items:
        if isinstance(item, dict):
            expanded = _from_mapping(item, notes)
            if expanded is None:
                out.extend(_from_event(item))  # no times: rejected with a reason later
            else:
                out.extend(expanded)
        elif isinstance(item, str) and span_of(item) is not None:
            out.extend(events_from_prose(item, notes))
        else:
            notes.reject("event is not an object")
    if len(out) > MAX_EVENTS:
        notes.reject(f"over {MAX_EVENTS} events in one answer", len(out) - MAX_EVENTS)
        out = out[:MAX_EVENTS]
    return out


def _from_mapping(value: dict[str, Any], notes: Notes) -> list[RawEvent] | None:
    """One object: a single event, time-keyed, events under another key, or label-keyed."""
    lowered = {str(k).lower() for k in value}
    if lowered & _EVENT_KEYS:
        return _from_event(value)
    by_time = [(span, v) for k, v in value.items() if (span := range_key(str(k))) is not None]
    if by_time:
        notes.note("object keyed by time ranges")
        return [_time_keyed(span, v) for span, v in by_time[:MAX_EVENTS]]
    for other in value.values():
        if isinstance(other, list) and other and all(isinstance(x, dict) for x in other):
            notes.note("events found under another key")
            return _from_list(other, notes)
    by_label = [
        RawEvent(str(k), start, end, str(k))
        for k, v in value.items()
        if isinstance(v, list | dict | str)
        for start, end in spans_of(v)
    ]
    if by_label:
        notes.note("object keyed by label")
        return by_label[:MAX_EVENTS]
    return None


def _time_keyed(span: tuple[float, float], value: Any) -> RawEvent:
    if isinstance(value, dict):
        label = _label(value)
        text = _description(value) or (label or "")
        return RawEvent(label, span[0], span[1], text, text, value.get("confidence"))
    if isinstance(value, list):
        value = "; ".join(str(v) for v in value if isinstance(v, str | int | float))
    text = str(value)[:MAX_TEXT_CHARS] if isinstance(value, str | int | float) else ""
    return RawEvent(None, span[0], span[1], text, text)


def _from_event(item: dict[str, Any]) -> list[RawEvent]:
    """One event object; several when it holds several spans (``"segments": [[1, 2], [5, 6]]``)."""
    lowered = {str(k).lower(): v for k, v in item.items()}
    label = _label(item)
    description = _description(item)
    confidence = lowered.get("confidence", lowered.get("score"))

    def make(start: float | None, end: float | None) -> RawEvent:
        return RawEvent(label, start, end, description, description, confidence)

    start_value = _first(lowered, START_KEYS)
    end_value = _first(lowered, END_KEYS)
    if start_value is not None or end_value is not None:
        if end_value is None and isinstance(start_value, str | list):
            span = span_of(start_value)  # "start": "3 - 5" holds both
            if span is not None:
                return [make(*span)]
        return [make(seconds(start_value), seconds(end_value))]
    for key in SPAN_KEYS:
        spans = list(spans_of(lowered.get(key)))
        if spans:
            return [make(*span) for span in spans]
    for key, value in lowered.items():  # [start, end] pairs under any key
        if key not in _NOT_TIMES and isinstance(value, list | dict):
            spans = list(spans_of(value))
            if spans:
                return [make(*span) for span in spans]
    point = seconds(_first(lowered, POINT_KEYS))
    if point is not None:
        return [make(point, point)]
    spans = list(find_ranges(description)) if description else []
    if spans:
        return [make(*span) for span in spans]
    return [make(None, None)]


def _label(item: dict[str, Any]) -> str | None:
    lowered = {str(k).lower(): v for k, v in item.items()}
    value = _first(lowered, LABEL_KEYS)
    return value if isinstance(value, str) and value.strip() else None


def _description(item: dict[str, Any]) -> str:
    lowered = {str(k).lower(): v for k, v in item.items()}
    value = _first(lowered, DESCRIPTION_KEYS)
    return value[:MAX_TEXT_CHARS] if isinstance(value, str) else ""


def _first(item: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in item and item[key] is not None:
            return item[key]
    return None
