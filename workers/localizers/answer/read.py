"""Turning a model's answer text into events, defensively and without I/O.

Reading happens in three steps: find the final answer and the JSON in it (``json_blocks``);
find the events in it by what they are, a label-like text with two times (``items`` walks the
JSON at any depth; with no JSON, or none that states events, ``lines`` reads tables, sentences
and frame listings; times by ``times`` and ``prose``, key names by ``keys``); then check each
raw event against the request here: labels asked for, times inside the request's window (after
shifting times the model gave relative to the request's first frame), no duplicates.
``parse_answer`` keeps whatever is usable, counts what it drops and says why, and never raises
on model output: deciding to ask again is the caller's job. An answer in which nothing at all
can be read is not usable, loudly.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from workers.localizers.answer.items import (
    MAX_EVENTS,
    RawEvent,
    events_from_json,
    events_from_text,
)
from workers.localizers.answer.json_blocks import Notes, final_answer, find_json
from workers.localizers.answer.labels import labels_for, labels_in_text, norm_label, plain_label
from workers.types import Chunk, DetectedEvent

__all__ = [
    "MAX_EVENTS",
    "ParsedAnswer",
    "join_listed",
    "labels_in_text",
    "parse_answer",
    "relative_offset",
]

EDGE_SLACK_S = 1.0  # models round to the next frame; allow that much past the chunk edges
MAX_DESCRIPTION_CHARS = 500
SOURCE = "vlm"

_NUMBER = re.compile(r"[+-]?(?:\d{1,32}(?:\.\d{0,32})?|\.\d{1,32})(?:[eE][+-]?\d{1,4})?")


@dataclass(frozen=True)
class ParsedAnswer:
    events: tuple[DetectedEvent, ...]
    rejected: int
    problems: tuple[str, ...]
    readable: bool = True  # False: not one event anywhere (JSON, table, sentence or listing)
    relative_shifted: int = 0  # events whose times were relative to the request's first frame
    dropped: tuple[tuple[str, int], ...] = ()  # why events were rejected, with counts
    work: int = field(default=0, compare=False)  # characters and values read (bounded)

    @property
    def usable(self) -> bool:
        """Events came out, or the model said validly that nothing happened (``{"events": []}``).

        An answer that could not be read, or whose every event was rejected, is not usable.
        """
        return bool(self.events) or (self.readable and self.rejected == 0)

    @property
    def why_unusable(self) -> str:
        if self.usable:
            return ""
        if not self.readable:
            return "no JSON answer could be found in it"
        reasons = ", ".join(reason for reason, _ in self.dropped) or "unreadable events"
        return f"every event in it was rejected ({reasons})"


def parse_answer(
    content: str,
    finish_reason: str,
    *,
    chunk: Chunk,
    video_duration_s: float,
    labels: Sequence[str],
    frame_times: Sequence[float] | None = None,
) -> ParsedAnswer:
    """Events from one answer. ``frame_times``: the times of the frames this request showed
    (default: the chunk's), which is what times relative to the first frame are measured from."""
    notes = Notes()
    try:
        raw, readable = _read(content if isinstance(content, str) else "", finish_reason, notes)
        if not readable:
            notes.reject("no JSON answer found")
            return _result(notes, (), readable=False)
        times = list(frame_times) if frame_times else list(chunk.times)
        events, shifted = _check(raw, chunk, times, video_duration_s, labels, notes)
    except (RecursionError, MemoryError, ValueError, TypeError, OverflowError) as exc:
        # Defence in depth: a parser bug must cost one chunk's answer, not the job.
        notes.reject(f"answer parser failed: {type(exc).__name__}")
        return _result(notes, (), readable=False)
    return _result(notes, tuple(events), relative_shifted=shifted)


def _result(
    notes: Notes,
    events: tuple[DetectedEvent, ...],
    *,
    readable: bool = True,
    relative_shifted: int = 0,
) -> ParsedAnswer:
    return ParsedAnswer(
        events,
        notes.rejected,
        notes.problems(),
        readable,
        relative_shifted,
        tuple(notes.dropped.items()),
        notes.work,
    )


def _read(content: str, finish_reason: str, notes: Notes) -> tuple[list[RawEvent], bool]:
    if not content.strip():
        notes.note("empty answer")
        return [], False
    text = final_answer(content, notes)
    value = find_json(text, finish_reason, notes)
    if value is not None:
        raw, readable = events_from_json(value, notes)
        if readable:
            return raw, True
    # No JSON (or none that states events): tables, sentences and listings are still answers.
    raw = events_from_text(text, notes)
    return raw, bool(raw)


# ---- checking each event against the request ---------------------------------------------


def relative_offset(spans: Sequence[tuple[float, float]], frame_times: Sequence[float]) -> float:
    """How far to shift the answer's times: the first frame's time when they read as seconds
    since the request's first frame, else 0.

    Relative when the request starts well after 0 (past the edge slack), every time fits within
    [0, the request's span], and some time would fall before the request's window if read as
    absolute. An answer that could be either is read as absolute, as the prompt asks.
    """
    if not spans or not frame_times:
        return 0.0
    first, last = min(frame_times), max(frame_times)
    if first <= EDGE_SLACK_S:
        return 0.0
    span = last - first + EDGE_SLACK_S
    if any(min(s, e) < 0 or max(s, e) > span for s, e in spans):
        return 0.0
    if not any(min(s, e) < first - EDGE_SLACK_S for s, e in spans):
        return 0.0
    return first


def _check(
    raw: list[RawEvent],
    chunk: Chunk,
    frame_times: list[float],
    duration_s: float,
    labels: Sequence[str],
    notes: Notes,
) -> tuple[list[DetectedEvent], int]:
    allowed = {plain_label(norm_label(label)): label for label in labels if norm_label(label)}
    timed = [
        (r.start, r.end)
        for r in raw
        if r.start is not None and r.end is not None and math.isfinite(r.start + r.end)
    ]
    offset = relative_offset(timed, frame_times)
    shifted = 0
    if offset:
        shifted = len(timed)
        notes.note("times relative to the request's first frame shifted", shifted)
    first = min(frame_times) if frame_times else chunk.start_s
    low = max(0.0, min(chunk.start_s, first) - EDGE_SLACK_S)
    high = chunk.end_s + EDGE_SLACK_S
    if duration_s > 0 and math.isfinite(duration_s):
        high = min(high, duration_s)
    high = max(high, low)
    seen: set[tuple[str, float, float]] = set()
    events: list[DetectedEvent] = []
    listed: list[tuple[int, DetectedEvent]] = []
    for item in raw:
        for label in labels_for(item, allowed, notes):
            event = _event(item, label, offset, low, high, notes)
            if event is None:
                continue
            if item.run is not None:
                listed.append((item.run, event))
                continue
            if _keep(event, seen, events, notes) and len(events) >= MAX_EVENTS:
                return events, shifted
    for event in join_listed(listed):
        if _keep(event, seen, events, notes) and len(events) >= MAX_EVENTS:
            break
    return events, shifted


def _keep(
    event: DetectedEvent,
    seen: set[tuple[str, float, float]],
    events: list[DetectedEvent],
    notes: Notes,
) -> bool:
    key = (event.label, round(event.start_s, 2), round(event.end_s, 2))
    if key in seen:
        notes.reject("duplicate event")
        return False
    seen.add(key)
    events.append(event)
    return True


def join_listed(listed: Sequence[tuple[int, DetectedEvent]]) -> list[DetectedEvent]:
    """A frame-by-frame listing's moments joined into spans: a label's moments on consecutive
    lines of the listing are one event, from its first line's time to its last's."""
    by_label: dict[str, list[tuple[int, DetectedEvent]]] = {}
    for run, event in listed:
        by_label.setdefault(event.label, []).append((run, event))
    joined: list[DetectedEvent] = []
    for moments in by_label.values():
        moments.sort(key=lambda m: m[0])
        group = [moments[0][1]]
        for (previous, _), (run, event) in itertools.pairwise(moments):
            if run != previous + 1:
                joined.append(_spanning(group))
                group = []
            group.append(event)
        joined.append(_spanning(group))
    joined.sort(key=lambda e: (e.start_s, e.label))
    return joined


def _spanning(group: list[DetectedEvent]) -> DetectedEvent:
    start = min(e.start_s for e in group)
    return replace(group[0], start_s=start, end_s=max(e.end_s for e in group))


def _event(
    item: RawEvent, label: str, offset: float, low: float, high: float, notes: Notes
) -> DetectedEvent | None:
    start, end = item.start, item.end
    if start is None or end is None or not (math.isfinite(start) and math.isfinite(end)):
        notes.reject("missing, negative or non-finite time")
        return None
    start, end = start + offset, end + offset
    if end < start:
        notes.note("reversed times swapped")
        start, end = end, start
    if end < low or start > high:
        notes.reject("event outside the chunk")
        return None
    if start < low or end > high:
        notes.note("times clamped to the chunk")
        start, end = max(start, low), min(end, high)
    return DetectedEvent(
        label=label,
        start_s=start,
        end_s=end,
        description=item.description[:MAX_DESCRIPTION_CHARS],
        confidence=_confidence(item.confidence),
        source=SOURCE,
    )


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
