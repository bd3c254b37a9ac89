"""Requests within the endpoint's image limit: split before sending, and again when refused.

vLLM refuses a request with more images than ``--limit-mm-per-prompt`` allows (HTTP 400 "At
most 64 image(s) may be provided in one prompt."). Coarse chunks and refinement windows are
planned within ``VIDLOC_VLM_MAX_IMAGES_PER_REQUEST``; this wrapper holds every request to it
whatever built the request, and when a server names a lower limit it halves the refused request
and keeps to that limit from then on. Each part states its own time span, and the parts'
answers are stitched so that an event running across a split comes back as one event.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import replace

from vidloc.errors import ModelImageLimit
from workers.frames.plan import parts_for, split_evenly
from workers.types import (
    AnswerReport,
    Chunk,
    ChunkResult,
    DetectedEvent,
    FrameSample,
    Localizer,
    LocalizeRequest,
    TokenTally,
    normalise_label,
)

logger = logging.getLogger(__name__)

_SEAM_SLACK_S = 1e-3


def part_chunks(
    chunk: Chunk, times: Sequence[float], ranges: Sequence[tuple[int, int]]
) -> list[Chunk]:
    """One chunk per range of ``times``, each spanning from its first frame to the next part's.

    The first part keeps the chunk's start and the last its end, so together the parts cover
    what the chunk covered; the index stays the chunk's, since their answers make one result.
    """
    out = []
    for k, (lo, hi) in enumerate(ranges):
        start = chunk.start_s if k == 0 else times[lo]
        end = chunk.end_s if k == len(ranges) - 1 else times[ranges[k + 1][0]]
        out.append(Chunk(chunk.index, start, end, tuple(times[lo:hi])))
    return out


def stitch(
    answers: Sequence[tuple[Sequence[DetectedEvent], Sequence[float]]],
) -> tuple[DetectedEvent, ...]:
    """The events of consecutive parts of one request, as one request would have answered.

    ``answers`` holds each part's events with the frame times it showed. An event that reaches
    the last frame of one part and a same-label event that begins on the first frame of the
    next are one event seen across the seam (no frame between them said otherwise).
    """
    out: list[DetectedEvent] = []
    prev_last: float | None = None
    for events, shown in answers:
        if not shown:
            out.extend(events)
            continue
        first = min(shown)
        if prev_last is None:
            out.extend(events)
        else:
            slack = max(_SEAM_SLACK_S, (first - prev_last) / 2)
            for ev in events:
                k = _reaching(out, ev, prev_last - slack) if ev.start_s <= first + slack else None
                if k is None:
                    out.append(ev)
                else:
                    out[k] = _joined(out[k], ev)
        prev_last = max(shown)
    return tuple(out)


def _reaching(events: list[DetectedEvent], ev: DetectedEvent, at_s: float) -> int | None:
    label = normalise_label(ev.label)
    for k, other in enumerate(events):
        if normalise_label(other.label) == label and other.end_s >= at_s:
            return k
    return None


def _joined(a: DetectedEvent, b: DetectedEvent) -> DetectedEvent:
    known = [c for c in (a.confidence, b.confidence) if c is not None]
    return replace(
        a,
        start_s=min(a.start_s, b.start_s),
        end_s=max(a.end_s, b.end_s),
        confidence=max(known) if known else None,
    )


class ImageCapLocalizer:
    """Implements ``workers.types.Localizer`` around another, within an image limit per request."""

    def __init__(self, inner: Localizer, max_images: int) -> None:
        if max_images < 1:
            raise ValueError(f"max_images must be >= 1, got {max_images}")
        self.inner = inner
        self.name = inner.name
        self._cap = max_images
        self._lock = threading.Lock()

    @property
    def max_images(self) -> int:
        with self._lock:
            return self._cap

    def localize(
        self, chunk: Chunk, frames: Sequence[FrameSample], request: LocalizeRequest
    ) -> ChunkResult:
        cap = self.max_images
        if len(frames) > cap:
            return self._in_parts(chunk, frames, request, parts_for(len(frames), cap))
        try:
            return self.inner.localize(chunk, frames, request)
        except ModelImageLimit as exc:
            if len(frames) < 2:
                raise
            if exc.limit is not None and exc.limit >= 1:
                with self._lock:
                    self._cap = min(self._cap, exc.limit)
            logger.warning(
                "chunk %d: endpoint refused %d images in one request (limit %s); splitting it",
                chunk.index,
                len(frames),
                exc.limit if exc.limit is not None else "not named",
            )
            return self._in_parts(chunk, frames, request, split_evenly(len(frames), 2))

    def _in_parts(
        self,
        chunk: Chunk,
        frames: Sequence[FrameSample],
        request: LocalizeRequest,
        ranges: Sequence[tuple[int, int]],
    ) -> ChunkResult:
        times = [f.t_s for f in frames]
        results = [
            (part, self.localize(part, frames[lo:hi], request))
            for part, (lo, hi) in zip(part_chunks(chunk, times, ranges), ranges, strict=True)
        ]
        usage = TokenTally()
        answer = AnswerReport()
        for _, result in results:
            usage += result.usage
            answer += result.answer
        return ChunkResult(
            chunk_index=chunk.index,
            events=stitch([(r.events, part.times) for part, r in results]),
            usage=usage,
            rejected_events=sum(r.rejected_events for _, r in results),
            answer=answer,
        )
