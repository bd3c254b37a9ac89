"""A long video's chunks split into spans any member of the group can take (pure).

Spans are runs of whole chunks: a chunk never straddles two spans, so every chunk is localized
(and checkpointed) by exactly one span, the overlap between chunks is what it is in a one-worker
job, and the merge sees the same chunk results either way. A span starts at its first chunk's
start, so its worker seeks there and never decodes the video before it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from workers.types import Chunk


@dataclass(frozen=True)
class Span:
    index: int
    count: int
    first_chunk: int  # chunk indices [first_chunk, end_chunk)
    end_chunk: int
    start_s: float
    end_s: float


def should_split(duration_s: float, span_s: float, chunks: int) -> bool:
    """Split when the video is longer than one span and has chunks to share."""
    return span_s > 0 and duration_s > span_s and chunks > 1


# The first span is one chunk, which the video's merging member runs itself (runs_at_merge):
# the first partial timeline comes about a chunk after the hand-off. One only: a second short
# span handed to the group made the member that took it run more chunks than the others.
LEAD_IN = (1,)
# Rounding the span count up (below) never makes spans shorter than this share of the asked
# length: each span pays a seek and a keyframe's decode, a report and a partial merge.
SHORTEST_SHARE = 4


def runs_at_merge(index: int, chunks: int) -> bool:
    """Whether span ``index`` of ``chunks`` chunks is the first lead-in span, which the video's
    merging member runs itself instead of handing it to the group.

    Any member would take it as soon as it is published, but a member with several orders in
    hand takes them in the order Kafka's fetches give them, not the video's: the one-chunk span
    then waits behind a full one, and the first partial timeline with it. The merging member
    reads the video's reports in order and publishes the partials, so the first one comes one
    chunk after the hand-off, with no hop in between.
    """
    return index == 0 and chunks <= LEAD_IN[0]


def span_count(duration_s: float, span_s: float, slots: int = 1) -> int:
    """How many spans (the lead-in aside): about ``duration_s / span_s``, rounded to the nearest
    multiple of ``slots``, the span orders the whole group runs at once (ties to fewer spans),
    while spans stay at least ``span_s / SHORTEST_SHARE`` long. So spans run between 3/4 and
    1.5 times the asked length, or shorter when the video is less than one round of the
    group's slots of spans that long.

    Why whole rounds: each member runs its orders a few at a time, and every span pays its
    start (seek, first decode) and its end (its last answers, while nothing of it is left to
    decode) with model slots idle. Four members of two slots, 60 minutes: 12 spans had every
    member run two spans side by side and then one alone; 16 spans two rounds of two, 1.35-1.40x
    the model floor; 8 spans (one round) 1.29-1.30x.
    """
    if span_s <= 0:
        return 1
    asked = math.ceil(duration_s / span_s)
    if slots <= 1:
        return asked
    rounds = max(1, math.ceil(duration_s / (span_s * slots) - 0.5))
    rounded = rounds * slots
    if rounded < asked:
        return rounded  # longer spans, at most 1.5x the asked length
    shortest = math.floor(duration_s * SHORTEST_SHARE / span_s)
    return max(asked, min(rounded, shortest))


def group_slots(owned: int, partitions: int, per_member: int) -> int:
    """The span orders the whole group runs at once, judged by one member from its share of
    ``video.spans``: the range assignor gives each of n members about ``partitions / n`` of
    them, so n is about ``partitions / owned`` (of 16 partitions: exact for 1-4, 8 or 16
    members, off for others: of 6 members, those owning 3 judge 5 and those owning 2 judge 8;
    16 partitions do not share out evenly among 6 anyway). A member owning none is one of more
    members than partitions."""
    members = max(1, round(partitions / owned)) if owned > 0 else partitions
    return members * max(1, per_member)


def plan_spans(
    chunks: Sequence[Chunk], duration_s: float, span_s: float, slots: int = 1
) -> tuple[Span, ...]:
    """:func:`span_count` spans of consecutive chunks, as even in chunks as can be, after the
    one-chunk lead-in span of :data:`LEAD_IN` when there are chunks enough.

    Even by chunk count, not by time: a chunk is the unit of model work, so spans of equal
    chunk counts take about equal time. Never more spans than chunks, never an empty span.
    """
    if not chunks:
        return ()
    asked = max(1, min(len(chunks), span_count(duration_s, span_s)))
    count = max(1, min(len(chunks), span_count(duration_s, span_s, slots)))
    if count > asked:
        # Rounded up: still never a span of fewer than two chunks.
        count = max(asked, min(count, len(chunks) // 2))
    lead = list(LEAD_IN)
    if len(chunks) - sum(lead) < count * (max(lead) + 1):
        lead = []  # too few chunks for a lead-in that would still be shorter than the rest
    rest = len(chunks) - sum(lead)
    sizes = lead + [round((i + 1) * rest / count) - round(i * rest / count) for i in range(count)]
    bounds = [0]
    for size in sizes:
        bounds.append(bounds[-1] + size)
    spans = []
    for i in range(len(sizes)):
        first, end = bounds[i], bounds[i + 1]
        spans.append(
            Span(
                index=i,
                count=len(sizes),
                first_chunk=chunks[first].index,
                end_chunk=chunks[end - 1].index + 1,
                start_s=chunks[first].start_s,
                end_s=_span_end(chunks, end, duration_s),
            )
        )
    return tuple(spans)


def _span_end(chunks: Sequence[Chunk], end: int, duration_s: float) -> float:
    """Where the next span starts; the last one ends with the video. (A chunk's window runs on
    by its overlap, so its own end would make neighbouring spans look overlapped.)"""
    if end < len(chunks):
        return chunks[end].start_s
    return max(chunks[end - 1].start_s, min(chunks[end - 1].end_s, duration_s))
