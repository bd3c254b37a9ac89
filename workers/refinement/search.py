"""Boundary refinement as a search (pure): few frames per boundary, many boundaries per request.

After the coarse pass a boundary lies between two coarse frames whose answers are known: the
last one in the "before" state and the first in the "after" state (a start: without the label,
then with it; an end: with it, then without). The frames between them (``candidates``, on the
refinement grid) are unknown. The boundary is the first candidate in the "after" state, or the
bracket's far side when none is. The search narrows the unknown range ``(known_before,
known_after)`` of candidate indexes:

* pixel evidence first (``workers.frames.evidence``): when one colour step in the bracket
  explains the change alone, it settles the boundary without asking;
* otherwise each round shows the model one or two frames: the two around the strongest
  remaining step (when the evidence is right, one round decides), else the middle one
  (bisection). Each answer moves one end of the range; a boundary is done when the range
  holds no unknown frame. The coarse frames at the bracket's ends are never shown again.

A boundary starts as one :class:`Search`; ``probes`` says what to show next, ``observe`` reads
the answer, ``estimate`` is the best time so far (also when a budget stops the search early).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from workers.frames.evidence import CLEAN_LEVEL, OTHER_CHANGE_MAX, clean_step, strongest_step
from workers.localizers.registry import source_is_refinable
from workers.types import DetectedEvent

Side = Literal["start", "end"]
_EPS = 1e-3  # decoders report times as float32: 79.8 comes back as 79.800003


@dataclass(frozen=True)
class Search:
    """One boundary being narrowed. Indexes refer to ``candidates``; ``before`` is the last
    index known to be in the "before" state (-1: the bracket's near side), ``after`` the first
    known in the "after" state (``len(candidates)``: the bracket's far side)."""

    event_index: int
    side: Side
    label: str
    t_s: float  # the coarse boundary
    lo_s: float  # the bracket's near side (a coarse frame, or the video's start)
    hi_s: float  # the bracket's far side (a coarse frame, or the video's end)
    candidates: tuple[float, ...]
    before: int = -1
    after: int = -1  # set to len(candidates) by ``open_search``
    # Pixel evidence: how far [near side, *candidates, far side] have gone from the near
    # side's picture (0) to the far side's (1); empty when not measured.
    progress: tuple[float, ...] = ()
    # Colour mass moved between neighbours of that chain (``evidence.step_profile``).
    novelty: tuple[float, ...] = ()
    settled_by_pixels: bool = False
    rounds: int = 0

    @property
    def done(self) -> bool:
        return self.after - self.before <= 1

    @property
    def key(self) -> tuple[int, Side]:
        return self.event_index, self.side

    def estimate(self) -> float:
        """The boundary: the first frame in the "after" state. While frames are still unknown,
        the first one after the strongest remaining step (else the middle one)."""
        n = len(self.candidates)
        if self.done:
            return self.candidates[self.after] if self.after < n else self.hi_s
        hint = self._hint()
        index = hint if hint is not None else (self.before + self.after + 1) // 2
        return self.candidates[index] if index < n else self.hi_s

    def _hint(self) -> int | None:
        """Candidate index just after the strongest rise of the progress inside the unknown
        range (``len(candidates)``: the far side itself)."""
        if len(self.progress) != len(self.candidates) + 2:
            return None
        steps = [b - a for a, b in itertools.pairwise(self.progress)]
        # steps[k] lies between candidate k - 1 and candidate k (-1: the near side).
        k = strongest_step(steps, self.before + 1, self.after + 1)
        return None if k is None or steps[k] <= 0 else k

    def _clean_before(self, h: int) -> bool:
        """Every frame before candidate ``h`` looks like the near side, and nothing else
        changed among them."""
        quiet = all(d < OTHER_CHANGE_MAX for d in self.novelty[:h])
        return (
            bool(self.progress) and quiet and all(p <= CLEAN_LEVEL for p in self.progress[: h + 1])
        )

    def _clean_after(self, h: int) -> bool:
        """Candidate ``h`` and every frame after it look like the far side, and nothing else
        changed among them."""
        quiet = all(d < OTHER_CHANGE_MAX for d in self.novelty[h + 1 :])
        return (
            bool(self.progress)
            and quiet
            and all(p >= 1 - CLEAN_LEVEL for p in self.progress[h + 1 :])
        )

    def probes(self, round_index: int) -> tuple[float, ...]:
        """Frames to show next. First round: around the strongest rise of the progress, only
        the frame on the side the pixels leave in doubt when the other side is clean (one
        frame then decides), else the frames on both sides. Later rounds: the middle of what
        is still unknown."""
        if self.done:
            return ()
        hint = self._hint() if round_index == 0 else None
        if hint is not None:
            sides = [hint - 1, hint]
            if self._clean_after(hint) and not self._clean_before(hint):
                sides = [hint - 1]
            elif self._clean_before(hint) and not self._clean_after(hint):
                sides = [hint]
            pair = [i for i in sides if self.before < i < self.after]
            if pair:
                return tuple(self.candidates[i] for i in pair)
        middle = (self.before + self.after) // 2
        if not self.before < middle < self.after:
            middle = self.before + 1
        return (self.candidates[middle],)

    def observe(self, shown: dict[float, bool]) -> Search:
        """Narrow with what the model saw: ``shown`` maps a frame time to whether the label
        was visible on it. Frames that contradict what is already known are ignored."""
        before, after = self.before, self.after
        for i, t in enumerate(self.candidates):
            if not before < i < after:
                continue
            seen = _lookup(shown, t)
            if seen is None:
                continue
            is_after = seen if self.side == "start" else not seen
            if is_after:
                after = i
            else:
                before = i
        if after <= before:  # a flicker the bracket cannot hold: keep the earlier knowledge
            before, after = self.before, self.after
        out = replace(self, before=before, after=after, rounds=self.rounds + 1)
        if out.done or not self.progress:
            return out
        # The model confirmed one side of a rise whose other side the pixels show clean.
        if out._clean_after(before + 1) and out._hint() == before + 1:
            return replace(out, after=before + 1)
        if out._clean_before(after) and out._hint() == after:
            return replace(out, before=after - 1)
        return out

    def with_progress(self, progress: Sequence[float], novelty: Sequence[float] = ()) -> Search:
        """Attach the pixel evidence for ``[near side, *candidates, far side]``: ``progress``
        from the near side's picture (0) to the far side's (1), as
        ``workers.frames.evidence.progress_profile`` measures it, and the ``novelty`` of each
        step (``evidence.step_profile``). One clean step, with nothing else changing in the
        bracket, settles the boundary; otherwise the evidence guides which frames to show."""
        if len(progress) != len(self.candidates) + 2:
            raise ValueError(f"{len(progress)} values for {len(self.candidates)} candidates")
        if novelty and len(novelty) != len(progress) - 1:
            raise ValueError(f"{len(novelty)} steps for {len(progress)} frames")
        out = replace(self, progress=tuple(progress), novelty=tuple(novelty))
        k = clean_step(progress)
        # progress[k] is candidate k - 1: the first frame in the "after" state.
        if k is None or not (out._clean_before(k - 1) and out._clean_after(k - 1)):
            return out
        return replace(out, before=k - 2, after=k - 1, settled_by_pixels=True)


def _lookup(shown: dict[float, bool], t: float) -> bool | None:
    for when, seen in shown.items():
        if abs(when - t) <= _EPS:
            return seen
    return None


def open_search(
    event_index: int,
    side: Side,
    label: str,
    t_s: float,
    lo_s: float,
    hi_s: float,
    candidates: Sequence[float],
) -> Search:
    cands = tuple(sorted(t for t in candidates if lo_s + _EPS < t < hi_s - _EPS))
    return Search(event_index, side, label, t_s, lo_s, hi_s, cands, -1, len(cands))


def candidate_grid(
    lo_s: float, hi_s: float, fps: float, *, include_lo: bool = False
) -> list[float]:
    """Instants on the ``fps`` grid (multiples of ``1 / fps``) strictly inside ``(lo_s, hi_s)``;
    with ``include_lo`` also ``lo_s`` itself (a bracket opening at the video's start, where
    no coarse frame was seen)."""
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    first = math.floor(lo_s * fps + _EPS) + 1
    out = [lo_s] if include_lo else []
    k = first
    while k / fps < hi_s - _EPS:
        out.append(k / fps)
        k += 1
    return out


def plan_searches(
    events: Sequence[DetectedEvent],
    coarse_times: Sequence[float],
    *,
    fps: float,
    window_s: float,
    duration_s: float,
) -> list[Search]:
    """A search for each boundary of each model event that frames on the ``fps`` grid could
    move. An event seen on a single coarse frame (start = end) has two boundaries too: its
    start before that frame and its end after it."""
    ts = sorted(coarse_times)
    out: list[Search] = []
    for index, ev in enumerate(events):
        if ev.end_s < ev.start_s or not source_is_refinable(ev.source):
            continue
        # Start: from the last coarse frame before it (or the video's start) to the event's
        # first coarse frame.
        # The model names the frames it saw by their real times, which may sit up to a frame
        # from the planned instants: a coarse instant within ``tol`` of a boundary is its own.
        tol = 1.0 / fps
        i = bisect.bisect_left(ts, ev.start_s - tol)
        lo = ts[i - 1] if i > 0 else 0.0
        lo = max(lo, ev.start_s - window_s)
        opens_video = i == 0 and lo <= _EPS
        grid = candidate_grid(lo, ev.start_s, fps, include_lo=opens_video)
        # No coarse frame before the video's first: frame 0 itself is unknown, so the near
        # side is a virtual instant before it.
        near = -1.0 if opens_video else lo
        out.append(open_search(index, "start", ev.label, ev.start_s, near, ev.start_s, grid))
        # End: from the event's last coarse frame to the next one (or the video's end).
        j = bisect.bisect_right(ts, ev.end_s + tol)
        hi = ts[j] if j < len(ts) else duration_s
        hi = min(hi, ev.end_s + window_s)
        grid = candidate_grid(ev.end_s, hi, fps)
        out.append(open_search(index, "end", ev.label, ev.end_s, ev.end_s, hi, grid))
    return [s for s in out if s.candidates]


def read_visibility(
    answer: Sequence[DetectedEvent], labels: Sequence[str], times: Sequence[float]
) -> dict[str, dict[float, bool]]:
    """Per label, whether the model saw it on each shown frame: on a frame when one of its
    reported occurrences covers that frame's time."""
    from workers.types import normalise_label

    out: dict[str, dict[float, bool]] = {}
    for label in labels:
        name = normalise_label(label)
        spans = [
            (e.start_s, e.end_s)
            for e in answer
            if normalise_label(e.label) == name and e.end_s >= e.start_s
        ]
        out[label] = {t: any(a - _EPS <= t <= b + _EPS for a, b in spans) for t in times}
    return out
