"""The offline ``cv`` localizer: cuts, black and frozen segments from the frames already decoded.

It never opens the video: the worker hands it each chunk's :class:`FrameSample` list (true times,
small RGB images) and it answers with three kinds of events:

* ``cut``    an instant at the first sampled frame after a hard cut (PySceneDetect's
             ContentDetector on our frames). Shots are derived from the merged cuts with
             :func:`workers.localizers.shots.shots_from_cuts`.
* ``black``  a segment whose frames are (nearly) all dark pixels.
* ``frozen`` a segment whose consecutive frames are nearly identical (and not black: a black
             segment is reported as black only).

Segments run from the first sampled frame in the state to the first sampled frame out of it,
the same "first frame that shows the change" rule as cuts, so each boundary is late by less than
one sampling period. A segment still running at the chunk's last frame ends there; the
neighbouring chunk, which overlaps, reports the rest and ``merge_events`` joins the two (same
label, overlapping). A frozen or black segment never runs across a cut: two stills either side
of a cut touch at it and merge into one, so the job splits merged segments at the merged cuts
(:func:`workers.localizers.shots.split_at_cuts`). Each chunk is handled on its own, with no
state across calls: the minimum durations are applied to what one chunk sees, which loses
nothing as long as they are at most the chunk overlap plus one sampling period (a segment
crossing into the overlap is then long enough in the earlier chunk, or entirely seen by the
later one).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from workers.frames.cuts import (
    DEFAULT_CHROMA_GATE,
    DEFAULT_CUT_THRESHOLD,
    detect_cuts,
    ordered_frames,
    scored_cuts,
)
from workers.localizers.kind import LocalizerKind
from workers.localizers.shots import cut_event, shots_from_cuts, split_at_cuts
from workers.types import (
    Chunk,
    ChunkResult,
    DetectedEvent,
    FrameSample,
    LocalizeRequest,
    normalise_label,
)

log = logging.getLogger(__name__)

__all__ = ["CvLocalizer", "CvParams", "detect_cuts", "frame_stats", "shots_from_cuts"]

CV_LABELS = ("cut", "black", "frozen")


@dataclass(frozen=True)
class CvParams:
    cut_threshold: float = DEFAULT_CUT_THRESHOLD
    cut_chroma_gate: float = DEFAULT_CHROMA_GATE
    # ffmpeg blackdetect's defaults: a pixel is dark below 10% luma, a frame is black when 98%
    # of its pixels are; a small logo or noise does not make a black frame "not black".
    black_pixel_luma: float = 0.10 * 255
    black_ratio: float = 0.98
    min_black_s: float = 1.0
    # Mean absolute grey-level difference (0-255) below which two sampled frames are "the same".
    # Re-encoded frozen pictures differ by well under 1; the sensor noise of a static camera and
    # slow motion are above it.
    frozen_max_diff: float = 1.0
    min_frozen_s: float = 2.0


@dataclass(frozen=True)
class FrameStats:
    t_s: float
    dark_ratio: float  # share of pixels darker than black_pixel_luma
    diff_prev: float | None  # mean abs grey difference to the previous frame; None for the first


def frame_stats(frames: Sequence[FrameSample], black_pixel_luma: float) -> list[FrameStats]:
    """Per-frame numbers the black and frozen rules need, for frames in time order."""
    out: list[FrameStats] = []
    prev: np.ndarray | None = None
    for f in frames:
        grey = cv2.cvtColor(f.pixels(), cv2.COLOR_RGB2GRAY)
        dark = float(np.count_nonzero(grey < black_pixel_luma)) / grey.size
        diff = None
        if prev is not None and prev.shape == grey.shape:
            diff = float(cv2.absdiff(grey, prev).mean())
        out.append(FrameStats(f.t_s, dark, diff))
        prev = grey
    return out


def _runs(flags: Sequence[bool]) -> Iterator[tuple[int, int]]:
    """Maximal ``[i, j]`` (inclusive) index ranges where ``flags`` is true."""
    i = 0
    while i < len(flags):
        if flags[i]:
            j = i
            while j + 1 < len(flags) and flags[j + 1]:
                j += 1
            yield i, j
            i = j + 1
        else:
            i += 1


def _segment_end(times: Sequence[float], last: int, video_end_s: float | None) -> float:
    """The first sampled time out of a run ending at index ``last``.

    At the chunk's last frame nothing later is known: the run ends there, unless this is the end
    of the video, where it lasts to the end.
    """
    if last + 1 < len(times):
        return times[last + 1]
    return video_end_s if video_end_s is not None else times[last]


def _video_end(times: Sequence[float], duration_s: float) -> float | None:
    """The video's duration if the chunk's last frame is also the video's last sample."""
    if duration_s <= 0 or len(times) < 2:
        return None
    step = float(np.median(np.diff(times)))
    return duration_s if times[-1] + step >= duration_s - 1e-6 else None


def black_segments(
    stats: Sequence[FrameStats], params: CvParams, video_end_s: float | None = None
) -> list[DetectedEvent]:
    times = [s.t_s for s in stats]
    flags = [s.dark_ratio >= params.black_ratio for s in stats]
    out: list[DetectedEvent] = []
    for i, j in _runs(flags):
        start, end = times[i], _segment_end(times, j, video_end_s)
        if end - start < params.min_black_s:
            continue
        worst = min(s.dark_ratio for s in stats[i : j + 1])
        span = 1.0 - params.black_ratio
        conf = 1.0 if span <= 0 else 0.5 + 0.5 * (worst - params.black_ratio) / span
        out.append(
            DetectedEvent(
                label="black",
                start_s=start,
                end_s=end,
                description=f"black frames (at least {math.floor(worst * 100)}% of pixels dark)",
                confidence=round(conf, 3),
                source="cv",
            )
        )
    return out


def frozen_segments(
    stats: Sequence[FrameStats], params: CvParams, video_end_s: float | None = None
) -> list[DetectedEvent]:
    times = [s.t_s for s in stats]
    black = [s.dark_ratio >= params.black_ratio for s in stats]
    # same[k]: frame k shows the same non-black picture as frame k-1.
    same = [
        s.diff_prev is not None
        and s.diff_prev < params.frozen_max_diff
        and not (black[k] or black[k - 1])
        for k, s in enumerate(stats)
    ]
    out: list[DetectedEvent] = []
    for k, m in _runs(same):
        first = k - 1  # the frame the picture froze on
        start, end = times[first], _segment_end(times, m, video_end_s)
        if end - start < params.min_frozen_s:
            continue
        worst = max(s.diff_prev or 0.0 for s in stats[k : m + 1])
        conf = 0.5 + 0.5 * (1.0 - worst / params.frozen_max_diff)
        out.append(
            DetectedEvent(
                label="frozen",
                start_s=start,
                end_s=end,
                description=f"frozen picture (frame-to-frame change {worst:.2f} of 255 at most)",
                confidence=round(conf, 3),
                source="cv",
            )
        )
    return out


class CvLocalizer:
    """``cv`` localizer: offline, deterministic, no model. See the module docstring."""

    name = "cv"  # the name registered for it (KIND below)

    def __init__(self, params: CvParams | None = None) -> None:
        self.params = params or CvParams()

    def localize(
        self, chunk: Chunk, frames: Sequence[FrameSample], request: LocalizeRequest
    ) -> ChunkResult:
        ordered = ordered_frames(frames)
        p = self.params
        times = [f.t_s for f in ordered]
        video_end = _video_end(times, request.video_duration_s)
        stats = frame_stats(ordered, p.black_pixel_luma)
        cuts = scored_cuts(ordered, threshold=p.cut_threshold, chroma_gate=p.cut_chroma_gate)
        events = [cut_event(c, p.cut_threshold) for c in cuts]
        events += black_segments(stats, p, video_end)
        events += frozen_segments(stats, p, video_end)
        wanted = {normalise_label(x) for x in request.labels} & set(CV_LABELS)
        if wanted:
            events = [e for e in events if e.label in wanted]
        elif request.labels:
            # The user asked for things only a model can see; say so rather than return nothing.
            log.info(
                "cv localizer knows only %s; ignoring requested labels %s",
                ", ".join(CV_LABELS),
                ", ".join(request.labels),
            )
        log.debug(
            "chunk %d: %d frames %.1f-%.1f s -> %d events",
            chunk.index,
            len(ordered),
            times[0] if times else chunk.start_s,
            times[-1] if times else chunk.end_s,
            len(events),
        )
        return ChunkResult(chunk_index=chunk.index, events=tuple(events))


def shots_after_merge(
    merged: Sequence[DetectedEvent], duration_s: float
) -> tuple[DetectedEvent, ...]:
    """Shots come from the merged cuts of the whole video (merging shots would glue touching
    ones together), and a cut ends a frozen or black stretch that merging joined across it."""
    cuts = [e.start_s for e in merged if e.label == "cut"]
    return (*split_at_cuts(merged, cuts), *shots_from_cuts(cuts, duration_s))


KIND = LocalizerKind(
    name="cv",
    # Per job: it keeps per-chunk state only, and is cheap to make.
    build=lambda deps: CvLocalizer(),
    joins_instants=False,
    reports_labels=CV_LABELS,
    after_merge=shots_after_merge,
)
