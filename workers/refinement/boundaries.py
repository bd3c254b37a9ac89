"""Boundary refinement, the pure half: where to look again and what the answer means.

After the coarse pass an event boundary is only known to lie between two coarse samples: a
start between the last sample without the event and the first one with it, an end between the
last one with it and the next one without. Refinement shows the model frames at ``fps`` inside
that bracket (never further than ``window_s`` from the boundary) and moves the boundary to
where the model now sees the change. A bracket already narrower than one refinement step needs
no second look, so with adaptive sampling (which brackets changes tightly) refinement is cheap.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from workers.frames.plan import parts_for
from workers.model.tokens import MIN_PIXELS, smart_resize
from workers.types import DetectedEvent, normalise_label

Side = Literal["start", "end"]
_EPS = 1e-3  # decoders report times as float32: 79.8 comes back as 79.800003


@dataclass(frozen=True)
class Boundary:
    """One side of one event, and the bracket ``(lo_s, hi_s)`` it is known to lie in."""

    event_index: int
    side: Side
    label: str
    t_s: float
    lo_s: float
    hi_s: float
    times: tuple[float, ...]  # refinement instants strictly inside the bracket


def look_size(width: int, height: int) -> tuple[int, int]:
    """``(width, height)`` of the frames refinement shows: the smallest the server reads.

    A refinement look asks one thing about a label the coarse pass already found, so the
    smallest image the model takes is enough; the server scales anything below its minimum
    (65,536 px after ``smart_resize``) up to it and bills it as that, so sending smaller saves
    nothing. The frame keeps the video's aspect ratio.
    """
    scale = math.sqrt(MIN_PIXELS / max(1, width * height))
    h, w = smart_resize(max(1, round(height * scale)), max(1, round(width * scale)))
    return w, h


def grid_inside(lo_s: float, hi_s: float, fps: float) -> tuple[float, ...]:
    """Instants ``lo + k / fps`` strictly inside ``(lo_s, hi_s)``, none within a quarter step of
    ``hi_s`` (that frame is already known)."""
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    step = 1.0 / fps
    out = []
    k = 1
    while lo_s + k * step < hi_s - step / 4:
        out.append(lo_s + k * step)
        k += 1
    return tuple(out)


def plan_boundaries(
    events: Sequence[DetectedEvent],
    coarse_times: Sequence[float],
    *,
    fps: float,
    window_s: float,
    duration_s: float,
) -> list[Boundary]:
    """Every interval event's boundaries that a second look at ``fps`` could move."""
    ts = sorted(coarse_times)
    out: list[Boundary] = []
    for index, ev in enumerate(events):
        if ev.end_s <= ev.start_s:
            continue  # instants (cuts) are located by the cv pass, not by the model
        # Start: after the last coarse sample before it, up to the first at or after it.
        i = bisect.bisect_left(ts, ev.start_s - _EPS)
        lo = ts[i - 1] if i > 0 else 0.0
        hi = ts[i] if i < len(ts) else ev.start_s
        lo, hi = max(lo, ev.start_s - window_s), min(max(hi, ev.start_s), ev.start_s + window_s)
        out.append(Boundary(index, "start", ev.label, ev.start_s, lo, hi, grid_inside(lo, hi, fps)))
        # End: from the last coarse sample at or before it, up to the next one after it.
        j = bisect.bisect_right(ts, ev.end_s + _EPS)
        lo = ts[j - 1] if j > 0 else ev.end_s
        hi = ts[j] if j < len(ts) else duration_s
        lo, hi = max(min(lo, ev.end_s), ev.end_s - window_s), min(hi, ev.end_s + window_s)
        out.append(Boundary(index, "end", ev.label, ev.end_s, lo, hi, grid_inside(lo, hi, fps)))
    return [b for b in out if b.times]


@dataclass(frozen=True)
class RefineRequest:
    """One model request of the refinement: the boundaries it asks about, the instants it shows
    and the span ``(lo_s, hi_s)`` its prompt states."""

    boundaries: tuple[Boundary, ...]
    times: tuple[float, ...]
    lo_s: float
    hi_s: float


def plan_requests(boundaries: Sequence[Boundary], max_images: int) -> list[RefineRequest]:
    """The refinement's model requests, none showing more than ``max_images`` frames.

    Both boundaries of one event share a request when their frames fit in one together (the
    system prompt and question are a fixed cost per request). Otherwise each boundary goes
    alone, and a window with more frames than the cap (20 fps over a 4 s bracket is 80) goes
    out as consecutive requests of even size, each stating its own span: the first starts at
    the bracket's start, the others at their first frame, each ends where the next starts.
    """
    if max_images < 1:
        raise ValueError(f"max_images must be >= 1, got {max_images}")
    by_event: dict[int, list[Boundary]] = {}
    for b in boundaries:
        by_event.setdefault(b.event_index, []).append(b)
    out: list[RefineRequest] = []
    for group in by_event.values():
        times = sorted({t for b in group for t in b.times})
        if len(times) <= max_images:
            lo, hi = min(b.lo_s for b in group), max(b.hi_s for b in group)
            out.append(RefineRequest(tuple(group), tuple(times), lo, hi))
            continue
        for b in group:
            ranges = parts_for(len(b.times), max_images)
            for k, (first, stop) in enumerate(ranges):
                lo = b.lo_s if k == 0 else b.times[first]
                hi = b.hi_s if k == len(ranges) - 1 else b.times[ranges[k + 1][0]]
                out.append(RefineRequest((b,), b.times[first:stop], lo, hi))
    return out


def refined_time(
    boundary: Boundary, answer: Sequence[DetectedEvent], frame_times: Sequence[float] = ()
) -> float:
    """Where the model's answer puts ``boundary``, or its coarse time when the answer is silent.

    The bracket runs from "not yet" to "already" (a start) or from "still" to "no longer" (an
    end). A start moves to the latest start of the label the model reports inside the bracket
    (the occurrence that runs on to "already"); an end to the earliest end inside it. The answer
    may also cover the event's other boundary (one request asks about both), so occurrences
    whose edge falls outside this bracket say nothing about it. An end the model no longer sees
    on any frame of its bracket moves to the first of those frames.

    A refined end is then moved to the first frame shown (``frame_times``, else the bracket's
    far side) after the last one the model saw the event on: a frame stays on screen until the
    next one replaces it, so refined events are half-open ``[first frame with, first frame
    without)``, the same convention as the ground truth of the synthetic videos.
    """
    label = normalise_label(boundary.label)
    same = [e for e in answer if normalise_label(e.label) == label and e.end_s >= e.start_s]
    lo, hi = boundary.lo_s - _EPS, boundary.hi_s + _EPS
    if boundary.side == "start":
        starts = [e.start_s for e in same if lo <= e.start_s <= hi]
        return max(starts) if starts else boundary.t_s
    ends = [e.end_s for e in same if lo <= e.end_s <= hi]
    if not ends:
        # Not seen on any frame after the last coarse sight: it was gone by the first of them.
        shown = [t for t in frame_times if lo < t <= hi]
        return min(shown) if shown else boundary.t_s
    end = min(ends)
    after = [t for t in (*frame_times, boundary.hi_s) if end + _EPS < t <= boundary.hi_s + _EPS]
    return min(after) if after else end


def apply_moves(
    events: Sequence[DetectedEvent], moves: dict[tuple[int, Side], float]
) -> tuple[DetectedEvent, ...]:
    """Events with their refined boundaries; a move that would reverse an event is ignored."""
    out = []
    for index, ev in enumerate(events):
        start = moves.get((index, "start"), ev.start_s)
        end = moves.get((index, "end"), ev.end_s)
        if end < start:
            start, end = ev.start_s, ev.end_s
        tag = "+refined" if (start, end) != (ev.start_s, ev.end_s) else ""
        out.append(replace(ev, start_s=start, end_s=end, source=(ev.source or "vlm") + tag))
    return tuple(out)
