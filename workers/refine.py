"""Boundary refinement, the running half: decode each boundary's window, ask, move.

Runs inside the job while its temporary copy of the video still exists. Each boundary is one
small model request (frames at the refinement rate inside the coarse bracket, the event's label
only), so refinement tokens are counted apart from the coarse pass.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from workers.localizers.capped import stitch
from workers.refine_plan import (
    Boundary,
    RefineRequest,
    Side,
    apply_moves,
    plan_boundaries,
    plan_requests,
    refined_time,
)
from workers.types import (
    Chunk,
    ChunkResult,
    DetectedEvent,
    FrameSample,
    FrameSource,
    Localizer,
    LocalizeRequest,
    Usage,
)

log = logging.getLogger(__name__)

# Refinement requests get chunk indexes far above any coarse chunk, so logs tell them apart.
REFINE_CHUNK_BASE = 1_000_000


@dataclass(frozen=True)
class RefineOutcome:
    events: tuple[DetectedEvent, ...]
    usage: Usage
    boundaries: int  # boundaries re-asked (both of one event go in one request)
    moved: int  # boundaries that moved
    frames: int  # frames sent


def choose_within_cap(boundaries: Sequence[Boundary], max_frames: int | None) -> list[Boundary]:
    """The widest brackets first (most to gain) while the frame cap allows."""
    if max_frames is None:
        return list(boundaries)
    chosen, used = [], 0
    for b in sorted(boundaries, key=lambda b: (-(b.hi_s - b.lo_s), b.event_index, b.side)):
        if used + len(b.times) <= max_frames:
            chosen.append(b)
            used += len(b.times)
    return sorted(chosen, key=lambda b: (b.event_index, b.side))


def refine_events(
    events: Sequence[DetectedEvent],
    coarse_times: Sequence[float],
    *,
    source: FrameSource,
    path: str,
    size: tuple[int, int],
    localizer: Localizer,
    request: LocalizeRequest,
    fps: float,
    window_s: float,
    concurrency: int = 1,
    max_frames: int | None = None,
    max_images: int = 64,
) -> RefineOutcome:
    planned = plan_boundaries(
        events, coarse_times, fps=fps, window_s=window_s, duration_s=request.video_duration_s
    )
    boundaries = choose_within_cap(planned, max_frames)
    if len(boundaries) < len(planned):
        log.info("refinement: budget allows %d of %d boundaries", len(boundaries), len(planned))
    if not boundaries:
        return RefineOutcome(tuple(events), Usage(), 0, 0, 0)

    # Usually one request per event with both its boundaries' windows, within the image cap.
    requests = plan_requests(boundaries, max_images)

    def ask(
        numbered: tuple[int, RefineRequest],
    ) -> tuple[RefineRequest, ChunkResult, tuple[float, ...]]:
        n, req = numbered
        frames = _distinct(list(source.frames(path, req.times, size)))
        chunk = Chunk(REFINE_CHUNK_BASE + n, req.lo_s, req.hi_s, tuple(f.t_s for f in frames))
        ask_for = replace(request, labels=(req.boundaries[0].label,))
        return req, localizer.localize(chunk, frames, ask_for), chunk.times

    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="refine") as pool:
        answers = list(pool.map(ask, enumerate(requests)))
    seen: dict[tuple[int, Side], list[tuple[tuple[DetectedEvent, ...], tuple[float, ...]]]] = {}
    usage = Usage()
    frames = 0
    for req, result, shown in answers:
        usage += result.usage
        frames += len(shown)
        for b in req.boundaries:
            seen.setdefault((b.event_index, b.side), []).append((result.events, shown))
    moves: dict[tuple[int, Side], float] = {}
    for b in boundaries:
        # A window split over several requests is read as one: pieces joined across the seams.
        parts = sorted(seen[(b.event_index, b.side)], key=lambda part: part[1][:1])
        shown_all = sorted(t for _, shown in parts for t in shown)
        answer = stitch(parts) if len(parts) > 1 else parts[0][0]
        moves[(b.event_index, b.side)] = refined_time(b, answer, shown_all)
    refined = apply_moves(events, moves)
    moved = sum(1 for b in boundaries if abs(moves[(b.event_index, b.side)] - b.t_s) > 1e-6)
    log.info(
        "refinement: %d boundaries re-asked with %d frames, %d moved, %d prompt tokens",
        len(boundaries),
        frames,
        moved,
        usage.prompt_tokens,
    )
    return RefineOutcome(refined, usage, len(boundaries), moved, frames)


def _distinct(frames: list[FrameSample]) -> list[FrameSample]:
    out: list[FrameSample] = []
    for f in frames:
        if not out or round(f.t_s, 4) != round(out[-1].t_s, 4):
            out.append(f)
    return out
