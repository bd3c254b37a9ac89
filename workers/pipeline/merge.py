"""Merge the events of overlapping chunks into one timeline (pure: plain values in and out).

Chunks overlap (each also covers a couple of seconds after its end), so an event that continues
across a chunk boundary comes back as two pieces, e.g. ``25-30`` from chunk 0 and ``30-41`` from
chunk 1, or ``25-32`` and ``30-41``. Both must come out once, as ``25-41``.

Rules, per normalised label (case-folded, whitespace collapsed):

* **Intervals** (``end_s > start_s``) whose gap is at most ``gap_s`` are joined: start = min,
  end = max, description of the longest piece, confidence = max. The gap tolerance bridges the
  holes of sampling: a state seen at frames 25..30 and again from 31 is one state, not two.
  Joining is transitive (a chain of close pieces becomes one event), so the result does not
  depend on input order and merging twice changes nothing.
* **Instants** (``start_s == end_s``, e.g. the ``cut`` events of the cv localizer) are joined only
  with the *same* instant (to the millisecond) or absorbed by an interval that contains them. They
  never use the gap tolerance: two hard cuts one sample apart are two cuts, while the copy of a cut
  that both chunks saw in their overlap sits on the very same sample time.
* Distinct labels are never joined.

``min_iou_same`` > 0 is a stricter mode for model answers: two *overlapping* intervals are then
only joined when their intersection-over-union reaches it (pieces that merely touch or sit within
``gap_s`` are still joined). In that mode outputs of one label may overlap by design.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace

from workers.types import DetectedEvent, normalise_label

# Instants closer than this are the same instant (float noise from time arithmetic).
_INSTANT_KEY_DIGITS = 3


def _sort_key(e: DetectedEvent) -> tuple[float, str, float, str, float, str, str]:
    # A total order over every field, so that ties never depend on input order.
    conf = -1.0 if e.confidence is None else e.confidence
    return (e.start_s, normalise_label(e.label), e.end_s, e.label, conf, e.description, e.source)


def _rank(e: DetectedEvent) -> tuple[float, float]:
    return (e.end_s - e.start_s, -1.0 if e.confidence is None else e.confidence)


def _representative(pieces: list[DetectedEvent]) -> DetectedEvent:
    """The piece whose description/label/source stands for the merged event: the longest, then
    the most confident, then the first in the total order (so ties never depend on input order)."""
    best = max(_rank(p) for p in pieces)
    return min((p for p in pieces if _rank(p) == best), key=_sort_key)


def _max_conf(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _collapse(pieces: list[DetectedEvent]) -> DetectedEvent:
    return replace(
        _representative(pieces),
        start_s=min(p.start_s for p in pieces),
        end_s=max(p.end_s for p in pieces),
        confidence=_max_conf(p.confidence for p in pieces),
    )


def _iou(a_start: float, a_end: float, b: DetectedEvent) -> float:
    inter = min(a_end, b.end_s) - max(a_start, b.start_s)
    union = max(a_end, b.end_s) - min(a_start, b.start_s)
    return inter / union if union > 0 else 1.0


def _cluster_intervals(
    pieces: list[DetectedEvent], gap_s: float, min_iou_same: float
) -> list[list[DetectedEvent]]:
    # Sweep in start order; a piece joins the current cluster when it starts within gap_s of the
    # cluster's end. Consecutive clusters therefore end up more than gap_s apart.
    clusters: list[list[DetectedEvent]] = []
    cur_start = cur_end = 0.0
    for piece in sorted(pieces, key=_sort_key):
        if clusters:
            gap = piece.start_s - cur_end
            if gap <= gap_s and (
                gap >= 0 or min_iou_same <= 0 or _iou(cur_start, cur_end, piece) >= min_iou_same
            ):
                clusters[-1].append(piece)
                cur_end = max(cur_end, piece.end_s)
                continue
        clusters.append([piece])
        cur_start, cur_end = piece.start_s, piece.end_s
    return clusters


def _merge_label(
    intervals: list[DetectedEvent], instants: list[DetectedEvent], gap_s: float, min_iou_same: float
) -> list[DetectedEvent]:
    clusters = _cluster_intervals(intervals, gap_s, min_iou_same)
    spans = [(min(p.start_s for p in c), max(p.end_s for p in c)) for c in clusters]
    same_instant: dict[float, list[DetectedEvent]] = defaultdict(list)
    for inst in instants:
        # An interval that contains the instant absorbs it (lending it its confidence only).
        host = next((i for i, (s, e) in enumerate(spans) if s <= inst.start_s <= e), None)
        if host is None:
            same_instant[round(inst.start_s, _INSTANT_KEY_DIGITS)].append(inst)
        else:
            clusters[host].append(inst)
    out = [_collapse(c) for c in clusters]
    out.extend(_collapse(group) for group in same_instant.values())
    return out


def merge_events(
    events: Iterable[DetectedEvent], *, gap_s: float = 1.0, min_iou_same: float = 0.0
) -> tuple[DetectedEvent, ...]:
    """One timeline from the pieces every chunk reported; sorted by (start_s, label).

    Same output for any permutation of the input; ``merge_events(merge_events(x)) ==
    merge_events(x)`` (with the default ``min_iou_same``).
    """
    if gap_s < 0:
        raise ValueError("gap_s must be >= 0")
    groups: dict[str, tuple[list[DetectedEvent], list[DetectedEvent]]] = defaultdict(
        lambda: ([], [])
    )
    for ev in events:
        if ev.end_s < ev.start_s:
            # A reversed piece is a parser bug upstream; treat it as the interval it spans.
            ev = replace(ev, start_s=ev.end_s, end_s=ev.start_s)
        intervals, instants = groups[normalise_label(ev.label)]
        (instants if ev.end_s == ev.start_s else intervals).append(ev)

    merged: list[DetectedEvent] = []
    for intervals, instants in groups.values():
        merged.extend(_merge_label(intervals, instants, gap_s, min_iou_same))
    return tuple(sorted(merged, key=_sort_key))


def event_id(video_id: str, event: DetectedEvent) -> str:
    """A stable id: the same video, label and times give the same id on every run."""
    basis = "|".join(
        (
            video_id,
            normalise_label(event.label),
            f"{event.start_s:.3f}",
            f"{event.end_s:.3f}",
        )
    )
    return "evt-" + hashlib.sha256(basis.encode()).hexdigest()[:12]


def assign_event_ids(
    events: Iterable[DetectedEvent], video_id: str
) -> list[tuple[str, DetectedEvent]]:
    """Pair each event with a stable id, in timeline order.

    Ids hash the video id, label and times (not the position), so a replayed job overwrites the
    same ids and inserting one event does not renumber the others. Exact duplicates (which
    ``merge_events`` never produces) get ``-2``, ``-3`` ... suffixes to stay unique.
    """
    seen: dict[str, int] = {}
    out: list[tuple[str, DetectedEvent]] = []
    for ev in sorted(events, key=_sort_key):
        base = event_id(video_id, ev)
        n = seen.get(base, 0) + 1
        seen[base] = n
        out.append((base if n == 1 else f"{base}-{n}", ev))
    return out
