"""Fold one segment of a live stream into the stream's growing timeline (pure).

The worker localizes a segment like a short video; its events come back on the segment's own
clock. This module moves them onto the stream's clock and joins them with what the stream has
already reported: an event still visible when the previous segment ended, seen again at the
start of this one, is the same event continuing, so it keeps its id and its end moves (reported
once, extended as it continues). Source drops become ``gap`` events of their own; segments not
localized (skip-to-live) become skipped spans. Fed plain values, returns plain values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from contracts.common import SourceObject
from contracts.stream import (
    MAX_SEGMENTS_INDEXED,
    MAX_SPANS,
    SegmentPlace,
    StreamSegment,
    StreamSpan,
    StreamState,
)
from contracts.timeline import TimelineEvent
from workers.types import normalise_label

GAP_LABEL = "gap"
STREAM_SOURCE = "stream"  # TimelineEvent.source of events the stream itself makes (gaps)
# Clock jitter between a segment's announced start and where the previous one ended that is
# still "no gap": keyframe-cut segments end a frame or two off their nominal length.
CONTIGUOUS_SLACK_S = 0.5


@dataclass(frozen=True)
class Fold:
    events: tuple[TimelineEvent, ...]
    state: StreamState
    new_ids: tuple[str, ...] = ()
    extended_ids: tuple[str, ...] = ()
    duplicate: bool = False  # the segment was folded in before (a redelivery): nothing changed


def event_id(number: int) -> str:
    return f"s-{number:05d}"


def fold_segment(
    events: Sequence[TimelineEvent],
    state: StreamState | None,
    segment: StreamSegment,
    pieces: Sequence[TimelineEvent],
    *,
    join_s: float,
    lag_s: float,
    skipped: bool = False,
    source: SourceObject | None = None,
) -> Fold:
    """The stream timeline after ``segment``; ``pieces`` are its events on the segment's clock.

    ``join_s``: how close to a segment edge an event must reach to count as running across it
    (about one sample period: the last sample of a segment is that far before its end).
    ``source``: the segment's object, placed on the stream clock in
    ``state.segments_index`` so a clip can be cut from it later (skipped segments too: their
    media exists, it was only not localized).
    """
    if state is not None and segment.seq <= state.last_seq:
        return Fold(tuple(events), state, duplicate=True)
    if state is None:
        state = StreamState(
            stream_id=segment.stream_id, last_seq=0, policy=segment.policy, covered_s=0.0
        )
        first = True
    else:
        first = False
    out = list(events)
    number = state.next_event
    new_ids: list[str] = []
    extended: list[str] = []
    gaps = list(state.gaps)
    skips = list(state.skipped)

    lost_from = state.covered_s
    gap = not first and (
        segment.gap_before_s > 0 or segment.start_s > lost_from + CONTIGUOUS_SLACK_S
    )
    if first and segment.start_s > CONTIGUOUS_SLACK_S:
        gap = True  # the stream's opening segments never arrived (or were cut before start)
    if gap:
        end = max(segment.start_s, lost_from)
        gaps.append(StreamSpan(start_s=lost_from, end_s=end, reason="source_drop"))
        out.append(
            TimelineEvent(
                id=event_id(number),
                label=GAP_LABEL,
                start_s=lost_from,
                end_s=end,
                description="no video from the source",
                source=STREAM_SOURCE,
            )
        )
        new_ids.append(event_id(number))
        number += 1

    seg_start = segment.start_s
    seg_end = segment.start_s + segment.duration_s
    if skipped and segment.duration_s > 0:
        skips.append(_extend_span(skips, seg_start, seg_end, "skip_to_live"))
    # An event may continue only across an edge with nothing lost on it.
    continues = not gap and not first and not _ends_skipped(state)
    for piece in sorted(pieces, key=lambda p: (p.start_s, p.end_s)):
        start, end = seg_start + piece.start_s, seg_start + piece.end_s
        target = None
        if continues and piece.start_s <= join_s:
            target = _open_event(out, piece.label, lost_from, join_s)
        if target is None:
            # Also join pieces of this segment that merge left apart within join_s.
            target = _open_in_segment(out, new_ids, piece.label, start, join_s)
        if target is not None:
            current = out[target]
            if end > current.end_s:
                out[target] = current.model_copy(update={"end_s": end})
                if current.id not in new_ids and current.id not in extended:
                    extended.append(current.id)
            continue
        ident = event_id(number)
        number += 1
        out.append(piece.model_copy(update={"id": ident, "start_s": start, "end_s": end}))
        new_ids.append(ident)

    new_state = state.model_copy(
        update={
            "last_seq": segment.seq,
            "segments": state.segments + 1,
            "covered_s": max(state.covered_s, seg_end),
            "ended": segment.end_of_stream,
            "policy": segment.policy,
            "lag_s": max(0.0, lag_s),
            "gaps": gaps[-MAX_SPANS:],
            "skipped": skips[-MAX_SPANS:],
            "next_event": number,
            "segments_index": _placed(state.segments_index, segment, source),
        }
    )
    out.sort(key=lambda e: (e.start_s, e.id))
    return Fold(tuple(out), new_state, tuple(new_ids), tuple(extended))


def _placed(
    index: Sequence[SegmentPlace] | None,
    segment: StreamSegment,
    source: SourceObject | None,
) -> list[SegmentPlace] | None:
    """The index with ``segment`` added, newest kept. A stream timeline written before segments
    were indexed starts its index here (the earlier segments stay unplaced)."""
    if source is None or segment.duration_s <= 0:
        return list(index) if index is not None else None
    place = SegmentPlace(
        seq=segment.seq,
        key=source.key,
        etag=source.etag,
        start_s=segment.start_s,
        duration_s=segment.duration_s,
    )
    return [*(index or ()), place][-MAX_SEGMENTS_INDEXED:]


def _open_event(
    events: Sequence[TimelineEvent], label: str, edge_s: float, join_s: float
) -> int | None:
    """The index of the stream's event of ``label`` still visible at ``edge_s``, if any."""
    wanted = normalise_label(label)
    best = None
    for i, e in enumerate(events):
        if e.source == STREAM_SOURCE or normalise_label(e.label) != wanted:
            continue
        if e.end_s >= edge_s - join_s and (best is None or e.end_s > events[best].end_s):
            best = i
    return best


def _open_in_segment(
    events: Sequence[TimelineEvent], new_ids: Sequence[str], label: str, start: float, join_s: float
) -> int | None:
    wanted = normalise_label(label)
    for i, e in enumerate(events):
        if e.id in new_ids and normalise_label(e.label) == wanted and e.end_s >= start - join_s:
            return i
    return None


def _ends_skipped(state: StreamState) -> bool:
    """Whether the stream's last folded segment was skipped (nothing seen up to its end)."""
    return bool(state.skipped) and state.skipped[-1].end_s >= state.covered_s - 1e-6


def _extend_span(spans: list[StreamSpan], start: float, end: float, reason: str) -> StreamSpan:
    """A span from ``start`` to ``end``, widened over the last one when they touch."""
    if spans and spans[-1].reason == reason and start - spans[-1].end_s <= CONTIGUOUS_SLACK_S:
        last = spans.pop()
        return StreamSpan(start_s=last.start_s, end_s=max(end, last.end_s), reason=reason)
    return StreamSpan(start_s=start, end_s=end, reason=reason)
