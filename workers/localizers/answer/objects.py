"""One event as an answer writes it, and how one object (or table row) is read as one. Pure.

An object is an event when it holds times under keys whose words say start, end or time
(``keys.key_role``); its label and description are the texts under label- and description-like
keys, or, when it has neither, its one other text. A value that itself holds events (a list of
labelled objects) is not a time: the walk over the answer (``items``) goes into it instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.localizers.answer.keys import Role, key_role, key_scale
from workers.localizers.answer.prose import stated_spans
from workers.localizers.answer.times import Span, find_ranges, seconds, span_of, spans_of

MAX_TEXT_CHARS = 2000
MAX_FIELDS = 64  # fields of one object that are looked at
TIME_ROLES = frozenset({"start", "end", "time"})


@dataclass(frozen=True)
class RawEvent:
    """One event as the answer wrote it. ``label`` None: find the label in ``text``, then in
    ``context`` (the key it was found under, or its whole sentence). ``run``: its line's place
    in a frame-by-frame listing, whose consecutive lines are joined into spans."""

    label: str | None
    start: float | None
    end: float | None
    text: str = ""
    description: str = ""
    confidence: Any = None
    context: str = ""
    run: int | None = None


Fields = list[tuple[str, Role | None, Any]]


def fields(item: dict[Any, Any]) -> Fields:
    """(key, role, value) of an object's first fields."""
    return [(str(k), key_role(str(k)), v) for k, v in list(item.items())[:MAX_FIELDS]]


def holds_events(value: Any) -> bool:
    """Whether ``value`` is a container of events rather than a time: a list holding labelled or
    described objects, or an object that is no ``{start, end}`` pair."""
    if isinstance(value, list):
        return any(isinstance(v, dict) and _says_what(v) for v in value[:MAX_FIELDS])
    if isinstance(value, dict):
        return span_of(value) is None and any(
            isinstance(v, list | dict) or role in ("label", "description")
            for _, role, v in fields(value)
        )
    return False


def is_event(item: dict[Any, Any], found: Fields | None = None) -> bool:
    """An object that holds no events and states times, or says what happened (an event
    without times is rejected later, with a reason). One that holds events is their container,
    whatever else it says ({"generated": "12:00:00", "detections": [...]})."""
    found = fields(item) if found is None else found
    if any(holds_events(v) for _, _, v in found):
        return False
    if any(role in TIME_ROLES and _time_like(v) for _, role, v in found):
        return True
    return any(role in ("label", "description") and isinstance(v, str) for _, role, v in found)


def label_of(item: dict[Any, Any], found: Fields | None = None) -> str | None:
    """The object's own label, when it has one."""
    label = _text(fields(item) if found is None else found, "label", "label")
    return label if isinstance(label, str) else None


def event_from_object(item: dict[Any, Any], context: str = "") -> list[RawEvent]:
    """The events one object states; one event without times when it states none (rejected
    later with a reason)."""
    found = [(k, role, v) for k, role, v in fields(item) if not holds_events(v)]
    label = _text(found, "label", "label")
    description = _text(found, "description", "description")
    if label is None and not description:
        description = _other_text(found)
    confidence = _first(found, "confidence", "confidence")

    def make(span: tuple[float | None, float | None]) -> RawEvent:
        return RawEvent(
            label, span[0], span[1], description, description, confidence, context=context
        )

    spans = _spans(found, description)
    return [make(span) for span in spans] if spans else [make((None, None))]


def _spans(found: Fields, description: str) -> list[tuple[float | None, float | None]]:
    starts = [(k, v) for k, role, v in found if role == "start" and v is not None]
    ends = [(k, v) for k, role, v in found if role == "end" and v is not None]
    if starts or ends:
        start_key, start_value = starts[0] if starts else ("", None)
        end_key, end_value = ends[0] if ends else ("", None)
        if end_value is None and isinstance(start_value, str | list):
            span = _span_in(start_value)  # "start": "3 - 5" holds both
            if span is not None:
                return [span]
        start = _scaled(start_value, start_key)
        end = _scaled(end_value, end_key)
        if end is None and start is not None:
            length = next((_scaled(v, k) for k, role, v in found if role == "duration"), None)
            end = None if length is None else start + length
        return [(start, end)]
    for key, role, value in found:
        if role == "time":
            spans = _spans_in(value, key)
            if spans:
                return spans
    for _, role, value in found:  # [start, end] pairs under any other key
        if role is None and isinstance(value, list | dict):
            pairs: list[tuple[float | None, float | None]] = list(spans_of(value))
            if pairs:
                return pairs
    for key, role, value in found:
        if role == "time" and (point := _scaled(value, key)) is not None:
            return [(point, point)]
    if description:
        return [s.span for s in stated_spans(description)] or list(find_ranges(description))
    return []


def _spans_in(value: Any, key: str) -> list[tuple[float | None, float | None]]:
    scale = key_scale(key)
    if isinstance(value, str):
        span = _span_in(value)
        return [] if span is None else [(span[0] * scale, span[1] * scale)]
    return [(a * scale, b * scale) for a, b in spans_of(value)]


def _span_in(value: Any) -> Span | None:
    span = span_of(value)
    if span is None and isinstance(value, str):
        stated = stated_spans(value)
        span = stated[0].span if stated else None
    return span


def _scaled(value: Any, key: str) -> float | None:
    number = seconds(value)
    return None if number is None else number * key_scale(key)


def _text(found: Fields, role: Role, preferred: str) -> Any:
    value = _first(found, role, preferred)
    if not isinstance(value, str) or not value.strip():
        return None if role == "label" else ""
    return value if role == "label" else value[:MAX_TEXT_CHARS]


def _first(found: Fields, role: Role, preferred: str) -> Any:
    values = [(k, v) for k, r, v in found if r == role and v is not None]
    exact = [v for k, v in values if k.strip().lower() == preferred]
    if exact:
        return exact[0]
    return values[0][1] if values else None


def _other_text(found: Fields) -> str:
    """The one text of an object that names no label or description field ("chapterSummary"
    is one; "timecode": "00:00-00:04" is a time, not a text)."""
    for _, role, value in found:
        if role is None and isinstance(value, str) and value.strip() and not _is_time(value):
            return value[:MAX_TEXT_CHARS]
    return ""


def _time_like(value: Any) -> bool:
    if isinstance(value, str):
        return _is_time(value)
    return seconds(value) is not None or any(True for _ in spans_of(value))


def _is_time(value: str) -> bool:
    return seconds(value) is not None or _span_in(value) is not None


def _says_what(item: dict[Any, Any]) -> bool:
    return any(
        role in ("label", "description") and isinstance(v, str) for _, role, v in fields(item)
    ) or any(isinstance(v, list | dict) for v in list(item.values())[:MAX_FIELDS])
