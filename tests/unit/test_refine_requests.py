"""Refinement requests within the image cap: 20 fps over 4 s windows never exceeds it (the dense
plan of ``workers.refinement.boundaries``, which cost estimates use, and the search refinement
runs)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from workers.refinement.boundaries import Boundary, plan_boundaries, plan_requests
from workers.refinement.refine import RefineOutcome, refine_events
from workers.types import (
    Chunk,
    ChunkResult,
    DetectedEvent,
    FrameSample,
    LocalizeRequest,
    TokenTally,
    VideoInfo,
)

FPS = 20.0
WINDOW_S = 4.0
COARSE = tuple(0.5 + 5.0 * k for k in range(12))  # adaptive floor: one sample per 5 s
TRUTH = (DetectedEvent("red circle", 12.37, 31.62),)  # the model's real start and end
COARSE_EVENT = (DetectedEvent("red circle", 15.5, 30.5, source="vlm"),)  # what coarse saw


def _boundaries() -> list[Boundary]:
    return plan_boundaries(COARSE_EVENT, COARSE, fps=FPS, window_s=WINDOW_S, duration_s=60.0)


def test_the_windows_hold_more_frames_than_a_server_allows() -> None:
    assert [len(b.times) for b in _boundaries()] == [79, 79]  # 20 fps x ~4 s each


@pytest.mark.parametrize("cap", [64, 50, 16, 7, 1])
def test_no_request_holds_more_than_the_cap_and_none_is_lost(cap: int) -> None:
    boundaries = _boundaries()
    requests = plan_requests(boundaries, cap)
    assert all(0 < len(r.times) <= cap for r in requests)
    for b in boundaries:
        mine = [r for r in requests if b in r.boundaries]
        assert sorted(t for r in mine for t in r.times) == list(b.times)
        # Spans run from the bracket's start to its end, each part's from its first frame to
        # the next part's; every frame lies inside the span its request states.
        assert mine[0].lo_s == b.lo_s and mine[-1].hi_s == b.hi_s
        assert all(a.hi_s == c.lo_s == c.times[0] for a, c in itertools.pairwise(mine))
        assert all(r.lo_s <= r.times[0] and r.times[-1] <= r.hi_s for r in mine)
        sizes = [len(r.times) for r in mine]
        assert max(sizes) - min(sizes) <= 1  # even parts, no 64 + 15


def test_both_boundaries_share_one_request_when_they_fit() -> None:
    boundaries = _boundaries()
    (request,) = plan_requests(boundaries, 200)
    assert set(request.boundaries) == set(boundaries) and len(request.times) == 158
    assert (request.lo_s, request.hi_s) == (boundaries[0].lo_s, boundaries[1].hi_s)


class Source:
    name = "fake"

    def probe(self, path: str) -> VideoInfo:
        return VideoInfo(60.0, 20.0, 64, 36, "h264")

    def frames(
        self, path: str, times: Sequence[float], size: tuple[int, int]
    ) -> Iterator[FrameSample]:
        for t in times:
            yield FrameSample(t, np.zeros((size[1], size[0], 3), dtype=np.uint8))


class SeeingLocalizer:
    """Sees the truth on every frame it is shown; records how many frames each request had."""

    name = "vlm"

    def __init__(self) -> None:
        self.sent: list[int] = []

    def localize(
        self, chunk: Chunk, frames: Sequence[FrameSample], request: LocalizeRequest
    ) -> ChunkResult:
        self.sent.append(len(frames))
        seen = [f.t_s for f in frames if any(e.start_s <= f.t_s < e.end_s for e in TRUTH)]
        events = (DetectedEvent("red circle", min(seen), max(seen)),) if seen else ()
        return ChunkResult(chunk.index, events, TokenTally(10 * len(frames), 5, 1))


def refine_black_clip(localizer: SeeingLocalizer, **limits: int) -> RefineOutcome:
    """The coarse event of the black 60 s clip refined at FPS over WINDOW_S windows."""
    return refine_events(
        COARSE_EVENT,
        COARSE,
        source=Source(),
        path="video.mp4",
        size=(64, 36),
        localizer=localizer,
        request=LocalizeRequest(labels=("red circle",), video_duration_s=60.0),
        fps=FPS,
        window_s=WINDOW_S,
        **limits,
    )


@pytest.mark.parametrize("cap", [64, 16, 1])
def test_refinement_at_20_fps_over_4_s_windows_stays_within_the_cap(cap: int) -> None:
    localizer = SeeingLocalizer()
    outcome = refine_black_clip(localizer, max_images=cap)
    assert localizer.sent and max(localizer.sent) <= cap
    assert sum(localizer.sent) == outcome.frames
    # Black frames give no colour evidence: a bisection of each 79-frame window, one frame
    # per boundary and round, both boundaries in one request when the cap allows.
    assert outcome.settled_by_pixels == 0
    assert outcome.frames <= 2 * 7 and outcome.rounds <= 7
    if cap >= 2:
        assert len(localizer.sent) == outcome.rounds
    # Boundaries land on the first frame with the event and the first frame without it.
    (event,) = outcome.events
    assert event.start_s == pytest.approx(12.4, abs=1e-6)
    assert event.end_s == pytest.approx(31.65, abs=1e-6)
    assert outcome.moved == 2


def test_a_frame_budget_stops_asking_and_keeps_a_best_estimate() -> None:
    localizer = SeeingLocalizer()
    # max_frames counts frames of 64x36; refinement's own frames cost the same here.
    outcome = refine_black_clip(localizer, max_frames=3)
    assert outcome.frames == 3
    (event,) = outcome.events
    # Not exact, but each in the middle of what its looks left unknown: the start after two
    # halvings of its 4 s window (within 0.5 s), the end after one (within 1 s); the coarse
    # boundaries were 3.1 s and 1.1 s off.
    assert abs(event.start_s - 12.37) <= 0.5
    assert abs(event.end_s - 31.62) <= 1.0
