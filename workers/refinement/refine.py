"""Boundary refinement, the running half: decode each bracket small, let the pixels speak, then
ask the model about the rest a few frames at a time, many boundaries per request.

Runs inside the job while its temporary copy of the video still exists. The search itself is
pure (``workers.refinement.search``); this module decodes frames, computes the colour evidence,
groups each round's frames into requests within the image cap and sends them. Refinement
frames go out at the smallest size the model reads (``refine_plan.look_size``), its tokens
are counted apart from the coarse pass.

Memory stays bounded whatever the video's length or its number of boundaries: the colour
evidence is measured in batches of brackets (``evidence_batch`` instants per decode), each frame
reduced to its histogram as it arrives and then dropped; a round's frames are decoded a wave of
requests at a time (at most ``max_held_frames`` frames, or one request's worth), sent, and
released before the next wave is decoded.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from workers.frames.evidence import Histogram, colour_histogram, histogram_distance, progress_of
from workers.frames.plan import parts_for
from workers.model.tokens import image_tokens
from workers.refinement.boundaries import Boundary, Side, apply_moves, look_size
from workers.refinement.search import Search, open_search, plan_searches, read_visibility
from workers.types import (
    Chunk,
    DetectedEvent,
    FrameSample,
    FrameSource,
    Localizer,
    LocalizeRequest,
    TokenTally,
)

log = logging.getLogger(__name__)

# Refinement requests get chunk indexes far above any coarse chunk, so logs tell them apart.
REFINE_CHUNK_BASE = 1_000_000
MAX_ROUNDS = 12  # bisection over 2 s at 60 fps needs 7; a flickering answer cannot loop
_EPS = 1e-3
# Decoded refinement frames held at once (each ``look_size``, about 200 KB): a round's requests
# are decoded and sent in waves within this (a request larger than it goes alone).
MAX_HELD_FRAMES = 128
# Instants whose colour histograms (512 B each) are kept at once: brackets are measured in
# batches of about this many, one decode per batch (a bracket larger than it goes alone).
EVIDENCE_BATCH = 512


@dataclass(frozen=True)
class RefineOutcome:
    events: tuple[DetectedEvent, ...]
    usage: TokenTally
    boundaries: int  # boundaries refined (by pixels or by asking)
    moved: int  # boundaries that moved
    frames: int  # frames sent (at ``look_size``)
    settled_by_pixels: int = 0  # boundaries the colour evidence settled without asking
    rounds: int = 0  # rounds of requests


def choose_within_cap(boundaries: Sequence[Boundary], max_frames: int | None) -> list[Boundary]:
    """The widest brackets first (most to gain) while the frame cap allows (the dense plan of
    ``workers.refinement.boundaries``, kept for cost estimates)."""
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
    max_held_frames: int = MAX_HELD_FRAMES,
    evidence_batch: int = EVIDENCE_BATCH,
    held: threading.Semaphore | None = None,
) -> RefineOutcome:
    """Refine every boundary of ``events`` to a frame of the ``fps`` grid.

    ``max_frames`` counts frames of ``size`` (the coarse frames' budget); refinement's smaller
    frames are charged by their tokens, so the same budget buys more of them. When it runs out
    the remaining boundaries keep their best estimate (the strongest colour step left in their
    bracket) instead of their coarse time.

    ``held`` is the worker's budget of decoded chunks shared by its jobs: each wave of frames
    takes a slot while it is decoded and asked about, like a chunk of the coarse pass.
    """
    if max_images < 1:
        raise ValueError(f"max_images must be >= 1, got {max_images}")
    if max_held_frames < 1 or evidence_batch < 1:
        raise ValueError(
            f"max_held_frames and evidence_batch must be >= 1, got {max_held_frames}, "
            f"{evidence_batch}"
        )
    searches = plan_searches(
        events, coarse_times, fps=fps, window_s=window_s, duration_s=request.video_duration_s
    )
    if not searches:
        return RefineOutcome(tuple(events), TokenTally(), 0, 0, 0)
    look = look_size(*size)
    searches = [
        measured
        for batch in _batches(searches, evidence_batch)
        for measured in _with_evidence(batch, source, path, look)
    ]
    budget = None
    if max_frames is not None:
        budget = max_frames * image_tokens(*size) // image_tokens(*look)

    usage, sent, rounds, counter = TokenTally(), 0, 0, 0
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="refine") as pool:
        for round_index in range(MAX_ROUNDS):
            wanted = {s.key: s.probes(round_index) for s in searches if not s.done}
            if budget is not None:
                wanted = _within(wanted, budget - sent)
            times = sorted({round(t, 4) for probes in wanted.values() for t in probes})
            if not times:
                break
            parts = [times[a:b] for a, b in parts_for(len(times), max_images)]
            labels_of: dict[float, set[str]] = {t: set() for t in times}
            for s in searches:
                for t in wanted.get(s.key, ()):
                    labels_of[round(t, 4)].add(s.label)

            numbered = list(range(counter, counter + len(parts)))
            counter += len(parts)
            answers: list[tuple[dict[str, dict[float, bool]], TokenTally]] = []
            for wave in _waves(
                list(zip(parts, numbered, strict=True)), concurrency, max_held_frames
            ):
                # Only this wave's frames are alive: decoded, sent, released by ``_send_all``.
                with held if held is not None else contextlib.nullcontext():
                    wave_times = [t for part, _ in wave for t in part]
                    frames = _decode(source, path, wave_times, look)
                    by_time = {t: f for t, f in zip(wave_times, frames, strict=True)}
                    del frames
                    asks = [
                        _Ask(
                            [by_time[t] for t in part],
                            tuple(sorted(set().union(*(labels_of[t] for t in part)))),
                            n,
                        )
                        for part, n in wave
                    ]
                    del by_time
                    answers.extend(_send_all(pool, asks, localizer, request))
            seen: dict[str, dict[float, bool]] = {}
            for visibility, used in answers:
                usage += used
                for label, per_time in visibility.items():
                    seen.setdefault(label, {}).update(per_time)
            sent += len(times)
            rounds += 1
            searches = [
                s.observe(seen.get(s.label, {})) if s.key in wanted else s for s in searches
            ]
    moves: dict[tuple[int, Side], float] = {s.key: s.estimate() for s in searches}
    refined = apply_moves(events, moves)
    moved = sum(1 for s in searches if abs(moves[s.key] - s.t_s) > 1e-6)
    settled = sum(1 for s in searches if s.settled_by_pixels)
    log.info(
        "refinement: %d boundaries (%d settled by pixels) with %d frames in %d rounds, "
        "%d moved, %d prompt tokens",
        len(searches),
        settled,
        sent,
        rounds,
        moved,
        usage.prompt_tokens,
    )
    return RefineOutcome(refined, usage, len(searches), moved, sent, settled, rounds)


@dataclass(frozen=True)
class _Ask:
    """One refinement request: its frames and the labels asked about them."""

    frames: list[FrameSample]
    labels: tuple[str, ...]
    number: int

    def send(
        self, localizer: Localizer, request: LocalizeRequest
    ) -> tuple[dict[str, dict[float, bool]], TokenTally]:
        times = tuple(f.t_s for f in self.frames)
        chunk = Chunk(REFINE_CHUNK_BASE + self.number, times[0], times[-1], times)
        result = localizer.localize(chunk, self.frames, replace(request, labels=self.labels))
        return read_visibility(result.events, self.labels, times), result.usage


def _send_all(
    pool: ThreadPoolExecutor, asks: list[_Ask], localizer: Localizer, request: LocalizeRequest
) -> list[tuple[dict[str, dict[float, bool]], TokenTally]]:
    """Every ask's answer, in order. The pool's tasks reach the asks through ``asks``, emptied
    once they are answered, so no thread keeps a frame alive past its wave."""
    try:
        return list(pool.map(lambda k: asks[k].send(localizer, request), range(len(asks))))
    finally:
        asks.clear()


def _within(
    wanted: dict[tuple[int, Side], tuple[float, ...]], left: int
) -> dict[tuple[int, Side], tuple[float, ...]]:
    """The probes that fit in ``left`` frames, in event order."""
    out: dict[tuple[int, Side], tuple[float, ...]] = {}
    for key, probes in wanted.items():
        if len(probes) <= left:
            out[key] = probes
            left -= len(probes)
    return out


def _waves(
    parts: list[tuple[list[float], int]], concurrency: int, max_held_frames: int
) -> list[list[tuple[list[float], int]]]:
    """Consecutive requests grouped so that a group keeps the pool busy (up to ``concurrency``
    requests) while its frames stay within ``max_held_frames`` (a larger request goes alone)."""
    waves: list[list[tuple[list[float], int]]] = []
    held = 0
    for part in parts:
        if (
            waves
            and len(waves[-1]) < max(1, concurrency)
            and held + len(part[0]) <= max_held_frames
        ):
            waves[-1].append(part)
            held += len(part[0])
        else:
            waves.append([part])
            held = len(part[0])
    return waves


def _instants(s: Search) -> set[float]:
    """The instants whose pictures the colour evidence of ``s`` needs."""
    return {round(t, 4) for t in (max(s.lo_s, 0.0), *s.candidates, s.hi_s)}


def _batches(searches: Sequence[Search], limit: int) -> list[list[Search]]:
    """Consecutive searches grouped so that a group needs at most ``limit`` instants (a larger
    bracket goes alone): neighbouring brackets share frames and a decoder's seeks."""
    batches: list[list[Search]] = []
    wanted: set[float] = set()
    for s in searches:
        needs = _instants(s)
        if batches and len(wanted | needs) <= limit:
            batches[-1].append(s)
            wanted |= needs
        else:
            batches.append([s])
            wanted = needs
    return batches


def _with_evidence(
    searches: list[Search], source: FrameSource, path: str, size: tuple[int, int]
) -> list[Search]:
    """Each search on the frames the video really has (the grid snapped to decoded frames) and
    with its colour steps, which may settle it. One decode for the batch's brackets."""
    wanted: set[float] = set()
    for s in searches:
        wanted |= _instants(s)
    times = sorted(wanted)
    hists: dict[float, Histogram] = {}
    actual: dict[float, float] = {}
    for t, (t_s, hist) in zip(times, _histograms(source, path, times, size), strict=True):
        hists[t] = hist
        actual[t] = t_s
    out = []
    for s in searches:
        near, far = round(max(s.lo_s, 0.0), 4), round(s.hi_s, 4)
        # Distinct real frames strictly between the bracket's ends (a grid finer than the
        # video's frame rate asks for one frame twice; the ends are already known).
        keys: list[float] = []
        for t in (round(c, 4) for c in s.candidates):
            if abs(actual[t] - actual[far]) <= _EPS:
                continue
            if s.lo_s >= 0 and abs(actual[t] - actual[near]) <= _EPS:
                continue
            if keys and abs(actual[keys[-1]] - actual[t]) <= _EPS:
                continue
            keys.append(t)
        # The ends are the frames the coarse pass really saw (a sample between two frames
        # shows the nearest one): a boundary past every candidate is that far frame.
        lo_s = actual[near] if s.lo_s >= 0 else s.lo_s
        fresh = open_search(
            s.event_index, s.side, s.label, s.t_s, lo_s, actual[far], [actual[k] for k in keys]
        )
        if len(fresh.candidates) != len(keys):
            continue  # a decoder gave times outside the bracket: leave this boundary be
        if not keys:
            continue
        chain = [hists[near], *(hists[k] for k in keys), hists[far]]
        novelty = [histogram_distance(a, b) for a, b in itertools.pairwise(chain)]
        out.append(fresh.with_progress(progress_of(chain), novelty))
    return out


def _histograms(
    source: FrameSource, path: str, times: Sequence[float], size: tuple[int, int]
) -> list[tuple[float, Histogram]]:
    """:func:`_decode`, each frame reduced to (true time, colour histogram) as it arrives, so
    only one decoded frame is alive at a time."""
    seen = [(f.t_s, colour_histogram(f.pixels())) for f in source.frames(path, times, size)]
    if len(seen) == len(times):
        return seen
    return [min(seen, key=lambda s: abs(s[0] - t)) for t in times]


def _decode(
    source: FrameSource, path: str, times: Sequence[float], size: tuple[int, int]
) -> list[FrameSample]:
    """One frame per requested time, in order (a source may serve one frame for two times)."""
    frames = list(source.frames(path, times, size))
    if len(frames) == len(times):
        return frames
    return [min(frames, key=lambda f: abs(f.t_s - t)) for t in times]
