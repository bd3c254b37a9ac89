"""Sampling plans: which instants to decode, how to group them into chunks, at what size.

Pure: fed durations and times, returns plain values. The decoders (``decord_source``,
``pyav_source``) turn a plan into frames; localizers see one :class:`Chunk` at a time.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from workers.model.tokens import FACTOR
from workers.types import Chunk

# Qwen3-VL sees 16 px patches merged 2x2, so one visual token covers a 32x32 px block; frames
# are sent at multiples of it (what they cost: workers.model.tokens).
TOKEN_PX = FACTOR


def plan_sample_times(
    duration_s: float,
    sample_fps: float,
    max_frames: int | None = None,
    start_s: float = 0.0,
) -> tuple[float, ...]:
    """Instants to sample in ``[start_s, duration_s)``, ascending.

    Sample ``i`` sits at ``start_s + (i + 0.5) / sample_fps``: the middle of its sampling
    interval, so a sample never lands on the very first frame (often a fade-in or a keyframe
    artefact) nor past the last one, and the samples are centred on the span they represent.
    Times at or past ``duration_s`` are dropped; a clip shorter than half an interval still
    gets one sample, in its middle. When ``max_frames`` caps the count, the capped number of
    samples is spread evenly (again at interval midpoints) over the whole span instead of
    truncating the tail.
    """
    if sample_fps <= 0:
        raise ValueError(f"sample_fps must be > 0, got {sample_fps}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    span = duration_s - start_s
    if not math.isfinite(span) or span <= 0:
        return ()
    step = 1.0 / sample_fps
    # Count of midpoints start + (i + 0.5) * step strictly below duration.
    count = max(1, math.ceil(span / step - 0.5))
    if max_frames is not None and count > max_frames:
        count = max_frames
        step = span / count
    elif count == 1:
        # A clip shorter than one step: its single sample goes in its middle.
        step = min(step, span)
    times = (start_s + (i + 0.5) * step for i in range(count))
    return tuple(t for t in times if t < duration_s)


def plan_chunks(
    times: Sequence[float],
    chunk_s: float,
    overlap_s: float,
    max_frames_per_chunk: int,
) -> tuple[Chunk, ...]:
    """Group sample times into consecutive windows for the localizer.

    Chunk ``k`` owns the times in ``[start_s, start_s + chunk_s)`` (its *core*) and also carries
    the times in the ``overlap_s`` after the core, so an event crossing a boundary is seen by
    both neighbours. ``Chunk.end_s`` is the end of that window, overlap included. Cores start
    on a ``chunk_s`` grid from 0 (or from the first time when it is negative); empty stretches
    produce no chunk.

    When a window would hold more than ``max_frames_per_chunk`` frames, its core is shortened
    to the most frames that still leave room for the whole overlap, and the next chunk starts
    where the shortened core ends (so later chunks leave the grid). Only when even a one-frame
    core plus its overlap would exceed the cap is the overlap itself truncated to fit.

    Guarantees: every (distinct) time is in at least one chunk, no chunk holds more than
    ``max_frames_per_chunk`` frames, chunks are ordered by ``index`` = position.
    """
    if chunk_s <= 0:
        raise ValueError(f"chunk_s must be > 0, got {chunk_s}")
    if overlap_s < 0:
        raise ValueError(f"overlap_s must be >= 0, got {overlap_s}")
    if max_frames_per_chunk < 1:
        raise ValueError(f"max_frames_per_chunk must be >= 1, got {max_frames_per_chunk}")
    ts = sorted(set(times))
    n = len(ts)
    chunks: list[Chunk] = []
    cursor = min(0.0, ts[0]) if ts else 0.0
    i = 0
    while i < n:
        if ts[i] >= cursor + chunk_s:
            # Skip empty grid cells rather than emitting empty chunks.
            cursor += math.floor((ts[i] - cursor) / chunk_s) * chunk_s
            # Floating point can leave ts[i] a hair outside the cell: step once more.
            if ts[i] >= cursor + chunk_s:
                cursor += chunk_s
        start = cursor
        core_end = start + chunk_s
        core_stop = bisect.bisect_left(ts, core_end)
        win_stop = bisect.bisect_left(ts, core_end + overlap_s)
        if win_stop - i > max_frames_per_chunk:
            core_stop, win_stop = _shrink_core(ts, i, core_stop, overlap_s, max_frames_per_chunk)
            core_end = ts[core_stop]  # the next chunk starts at the first time left out
        chunks.append(
            Chunk(
                index=len(chunks),
                start_s=start,
                end_s=core_end + overlap_s,
                times=tuple(ts[i:win_stop]),
            )
        )
        cursor = core_end
        i = core_stop
    return tuple(chunks)


def split_evenly(count: int, parts: int) -> list[tuple[int, int]]:
    """``[start, stop)`` index ranges of ``parts`` consecutive runs differing by at most one."""
    if count < 1 or parts < 1:
        raise ValueError(f"cannot split {count} items into {parts} parts")
    parts = min(parts, count)
    bounds = [count * k // parts for k in range(parts + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(parts)]


def parts_for(count: int, cap: int) -> list[tuple[int, int]]:
    """The fewest even runs of at most ``cap`` items each (one request per run)."""
    if cap < 1:
        raise ValueError(f"cap must be >= 1, got {cap}")
    return split_evenly(count, math.ceil(count / cap))


def _shrink_core(
    ts: Sequence[float], first: int, core_stop: int, overlap_s: float, cap: int
) -> tuple[int, int]:
    """Largest core ``ts[first:stop]`` whose overlap window still fits ``cap`` frames.

    Returns ``(core_stop, window_stop)``. The window of a core ending at ``ts[stop]`` holds
    the times before ``ts[stop] + overlap_s``, which grows with ``stop``: binary search.
    """
    lo, hi = 1, min(core_stop - first, cap)
    best = 0
    while lo <= hi:
        mid = (lo + hi) // 2
        stop = first + mid
        window = bisect.bisect_left(ts, ts[stop] + overlap_s) if stop < len(ts) else len(ts)
        if window - first <= cap:
            best = mid
            lo = mid + 1
        else:
            hi = mid - 1
    if best == 0:
        # Even one core frame plus the full overlap is over the cap: keep one core frame and
        # as much of the overlap as fits.
        return first + 1, first + cap
    stop = first + best
    window = bisect.bisect_left(ts, ts[stop] + overlap_s)
    return stop, window


def frame_size_for(width: int, height: int, long_side: int = 448) -> tuple[int, int]:
    """Model input size ``(w, h)``: aspect kept, each side a multiple of 32 px, at least 32.

    The long side becomes ``long_side`` (rounded down to a multiple of 32) but never more
    than the source's own long side rounded to 32: upscaling adds tokens, not information.
    1920x1080 -> 448x256.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"bad frame size {width}x{height}")
    if long_side < TOKEN_PX:
        raise ValueError(f"long_side must be >= {TOKEN_PX}, got {long_side}")
    source_long = max(width, height)
    target_long = min(
        (long_side // TOKEN_PX) * TOKEN_PX,
        max(TOKEN_PX, _round_to_token(source_long)),
    )
    scale = target_long / source_long
    w = max(TOKEN_PX, _round_to_token(width * scale))
    h = max(TOKEN_PX, _round_to_token(height * scale))
    return w, h


def _round_to_token(value: float) -> int:
    return math.floor(value / TOKEN_PX + 0.5) * TOKEN_PX
