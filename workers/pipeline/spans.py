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


# The first spans are short: their reports bring the first partial timeline within about a
# chunk's time of the hand-off, while the rest keep the asked length.
LEAD_IN = (1, 2)


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


def plan_spans(chunks: Sequence[Chunk], duration_s: float, span_s: float) -> tuple[Span, ...]:
    """About ``duration_s / span_s`` spans of consecutive chunks, as even in chunks as can be,
    after the short lead-in spans of :data:`LEAD_IN` chunks when there are chunks enough.

    Even by chunk count, not by time: a chunk is the unit of model work, so spans of equal
    chunk counts take about equal time. Never more spans than chunks, never an empty span.
    """
    if not chunks:
        return ()
    wanted = math.ceil(duration_s / span_s) if span_s > 0 else 1
    count = max(1, min(len(chunks), wanted))
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
