"""Events found in an answer's JSON by what they are, at any depth. Pure.

The contract is ``{"events": [...]}``; models also answer with a bare list, one bare event,
events under another key or nested deeper (``{"result": {"detected_objects": [...]}}``),
objects keyed by time ranges (the cookbook's ``{"00:23.00 - 00:48.00": "trim the fat ..."}``) or
by label (``{"red circle": [2, 5]}``), a bare ``[start, end]`` pair, or a sentence under some key.
Rather than match those layouts, the walk goes through the whole value and takes every object
that states times (``objects.is_event``), every time-keyed or label-keyed entry, and every text
with ranges in it. The walk visits a bounded number of nodes (``Notes.spend``).
Checking labels and times against the request is ``read``'s job, not this module's.
"""

from __future__ import annotations

import re
from typing import Any

from workers.localizers.answer.json_blocks import Notes
from workers.localizers.answer.keys import key_role
from workers.localizers.answer.lines import events_from_text
from workers.localizers.answer.objects import (
    MAX_TEXT_CHARS,
    RawEvent,
    event_from_object,
    fields,
    holds_events,
    is_event,
    label_of,
)
from workers.localizers.answer.prose import whole_span
from workers.localizers.answer.times import range_key, seconds, spans_of

MAX_EVENTS = 200
MAX_TIME_KEY_CHARS = 80
_EVENTS_KEYS = ("events", "Events", "EVENTS")  # the contract's key, however it is capitalised
_TWO_NUMBERS = re.compile(r"\d\D{1,40}\d")

__all__ = ["MAX_EVENTS", "RawEvent", "events_from_json", "events_from_text"]


def events_from_json(value: Any, notes: Notes) -> tuple[list[RawEvent], bool]:
    """(raw events, whether the answer is a readable events container at all)."""
    walk = _Walk(notes)
    if isinstance(value, list):
        pair = _bare_pair(value)
        if pair is not None:
            notes.note("a bare [start, end] pair")
            return [RawEvent(None, pair[0], pair[1])], True
        return walk.event_list(value, ""), True
    if not isinstance(value, dict):
        notes.note("answer is not an object or list")
        return [], False
    if not value:
        return [], True  # {}: an object with nothing in it says nothing happened
    found = walk.mapping(value, "")
    if found or walk.container:
        return found[: MAX_EVENTS * 4], True
    notes.note("no events list in answer")
    return [], False


class _Walk:
    def __init__(self, notes: Notes) -> None:
        self.notes = notes
        self.container = False  # an events list (even an empty one) was seen somewhere

    def mapping(self, value: dict[Any, Any], context: str) -> list[RawEvent]:
        if not self.notes.spend(1 + len(value)):
            return []
        events = next((value[k] for k in _EVENTS_KEYS if k in value), None)
        if isinstance(events, list | dict | str):  # the contract's own key
            self.container = True
            if isinstance(events, list):
                return self.event_list(events, context)
            if isinstance(events, dict):
                return self.mapping(events, context) if events else []
            return events_from_text(events, self.notes)
        by_time = [(span, v) for k, v in value.items() if (span := _time_key(str(k))) is not None]
        if by_time:
            self.notes.note("object keyed by time ranges")
            return [_time_keyed(span, v) for span, v in by_time[:MAX_EVENTS]]
        found = fields(value)
        if is_event(value, found):
            return event_from_object(value, context)
        out: list[RawEvent] = []
        # {"label": "red circle", "occurrences": [...]}: its events are the label's
        context = label_of(value, found) or context
        for key, item in value.items():
            if len(out) >= MAX_EVENTS * 4:
                break
            if not _is_text(item):
                out.extend(self.entry(str(key), item, context))
        if not out:  # sentences only when nothing else holds events: a summary is no event
            for key, item in value.items():
                if _is_text(item) and len(out) < MAX_EVENTS * 4:
                    out.extend(self.entry(str(key), item, context))
        return out

    def entry(self, key: str, item: Any, context: str = "") -> list[RawEvent]:
        """What one key of an object that is no event holds: events, a label's times, a text."""
        if isinstance(item, dict):
            if is_event(item):
                found = event_from_object(item, key)
                # {"red circle": {"start": 1, "end": 2}}: the key is the label of what says none
                return [e if e.label or e.text else _labelled(e, key) for e in found]
            return self.mapping(item, key)
        if isinstance(item, list):
            if not item:
                self.container = True
                return []
            spans = [] if holds_events(item) else list(spans_of(item))
            if spans and key_role(key) not in ("label", "description"):
                # {"red circle": [2, 5]} or [[2, 5], [7, 9]]
                self.notes.note("object keyed by label")
                return [RawEvent(key, s, e, key) for s, e in spans[:MAX_EVENTS]]
            if not any(isinstance(v, list | dict) for v in item[:MAX_EVENTS]):
                # ["red circle", "blue square"]: names, or sentences, but no events list
                return self.loose_list(item, key)
            self.container = True
            self.notes.note("events found under another key")
            # under a field of a labelled object ("occurrences"), its events are the label's
            return self.loose_list(item, context if context and key_role(key) else key)
        if isinstance(item, str) and item.strip():
            span = _time_key(item)
            if span is not None:
                self.notes.note("object keyed by label")  # {"Blue Square": "16 - 18.5 s"}
                return [RawEvent(key, span[0], span[1], key)]
            found = events_from_text(item, self.notes)
            return [_in_context(e, key) for e in found]
        return []

    def event_list(self, items: list[Any], context: str) -> list[RawEvent]:
        """A list that is meant to hold events: what is not one is rejected with a reason."""
        if len(items) > MAX_EVENTS:
            self.notes.reject(f"over {MAX_EVENTS} events in one answer", len(items) - MAX_EVENTS)
            items = items[:MAX_EVENTS]
        out: list[RawEvent] = []
        for item in items:
            if not self.notes.spend():
                break
            if isinstance(item, dict):
                found = self.mapping(item, context)
                out.extend(found or event_from_object(item, context))
            elif isinstance(item, str) and (said := events_from_text(item, self.notes)):
                out.extend(said)
            elif isinstance(item, list) and (pair := _bare_pair(item)) is not None:
                out.append(RawEvent(None, pair[0], pair[1], context=context))
            else:
                self.notes.reject("event is not an object")
        if len(out) > MAX_EVENTS:
            self.notes.reject(f"over {MAX_EVENTS} events in one answer", len(out) - MAX_EVENTS)
            out = out[:MAX_EVENTS]
        return out

    def loose_list(self, items: list[Any], context: str) -> list[RawEvent]:
        """A list under some other key: its events are taken, anything else is passed over."""
        out: list[RawEvent] = []
        for item in items[:MAX_EVENTS]:
            if not self.notes.spend():
                break
            if isinstance(item, dict):
                out.extend(self.mapping(item, context))
            elif isinstance(item, list):
                out.extend(self.loose_list(item, context))
            elif isinstance(item, str):
                out.extend(_in_context(e, context) for e in events_from_text(item, self.notes))
        return out


def _is_text(value: Any) -> bool:
    """A string that is more than a time ("16 - 18.5 seconds" is a time, nothing more)."""
    return isinstance(value, str) and _time_key(value) is None


def _bare_pair(value: list[Any]) -> tuple[float, float] | None:
    if len(value) != 2:
        return None
    start, end = seconds(value[0]), seconds(value[1])
    return None if start is None or end is None else (start, end)


def _time_key(key: str) -> tuple[float, float] | None:
    if len(key) > MAX_TIME_KEY_CHARS or not _TWO_NUMBERS.search(key):
        return None  # a range holds two numbers; most keys do not and are passed over at once
    return range_key(key) or whole_span(key)


def _time_keyed(span: tuple[float, float], value: Any) -> RawEvent:
    if isinstance(value, dict):
        found = event_from_object(value)
        first = found[0] if found else RawEvent(None, None, None)
        text = first.description or (first.label or "")
        return RawEvent(first.label, span[0], span[1], text, text, first.confidence)
    if isinstance(value, list):
        value = "; ".join(str(v) for v in value if isinstance(v, str | int | float))
    text = str(value)[:MAX_TEXT_CHARS] if isinstance(value, str | int | float) else ""
    return RawEvent(None, span[0], span[1], text, text)


def _labelled(event: RawEvent, label: str) -> RawEvent:
    return RawEvent(
        label, event.start, event.end, event.text or label, event.description, event.confidence
    )


def _in_context(event: RawEvent, context: str) -> RawEvent:
    if event.context:
        return event
    return RawEvent(
        event.label,
        event.start,
        event.end,
        event.text,
        event.description,
        event.confidence,
        context=context,
        run=event.run,
    )
