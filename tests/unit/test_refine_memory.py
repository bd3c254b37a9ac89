"""Refinement holds a bounded number of decoded frames, whatever the video's length or its
number of boundaries, and bounding it does not change what it finds."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

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

DURATION_S = 1800.0  # a 30-minute video
FPS = 10.0
WINDOW_S = 2.0
# One event a minute, 10.3 s long, off the coarse grid. Even minutes: a red square the colours
# see (settled by pixels); odd minutes: something only the model sees (black frames throughout,
# so those boundaries are asked about, round after round).
TRUTH = tuple(
    DetectedEvent("thing", round(m * 60 + 5.35, 2), round(m * 60 + 15.65, 2))
    for m in range(int(DURATION_S // 60))
)
COARSE = tuple(float(t) for t in range(0, int(DURATION_S), 2))


def _visible(t: float) -> bool:
    return any(e.start_s <= t < e.end_s for e in TRUTH)


def _coloured(t: float) -> bool:
    return _visible(t) and int(t // 60) % 2 == 0


def _coarse_events() -> tuple[DetectedEvent, ...]:
    out = []
    for e in TRUTH:
        seen = [t for t in COARSE if e.start_s <= t < e.end_s]
        out.append(DetectedEvent("thing", seen[0], seen[-1]))
    return tuple(out)


class CountingSource:
    """Frames on the 10 fps grid of the video; counts how many of them are alive at once."""

    name = "counting"

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0
        self.served = 0
        self._lock = threading.Lock()  # a frame may be released on a localizer's thread

    def probe(self, path: str) -> VideoInfo:
        return VideoInfo(DURATION_S, FPS, 640, 360, "h264")

    def _released(self) -> None:
        with self._lock:
            self.live -= 1

    def frames(
        self, path: str, times: Sequence[float], size: tuple[int, int]
    ) -> Iterator[FrameSample]:
        for t in sorted(times):
            t_s = round(round(t * FPS) / FPS, 6)
            image = np.zeros((size[1], size[0], 3), dtype=np.uint8)
            if _coloured(t_s):
                image[: size[1] // 2, : size[0] // 2] = (220, 30, 30)
            weakref.finalize(image, self._released)
            with self._lock:
                self.live += 1
                self.served += 1
                self.peak = max(self.peak, self.live)
            yield FrameSample(t_s, image)


class SeeingLocalizer:
    """Sees the truth on every frame it is shown."""

    name = "vlm"

    def __init__(self) -> None:
        self.sent: list[int] = []

    def localize(
        self, chunk: Chunk, frames: Sequence[FrameSample], request: LocalizeRequest
    ) -> ChunkResult:
        self.sent.append(len(frames))
        events = tuple(DetectedEvent("thing", f.t_s, f.t_s) for f in frames if _visible(f.t_s))
        return ChunkResult(chunk.index, events, TokenTally(10 * len(frames), 5, 1))


def _refine(source: CountingSource, localizer: SeeingLocalizer, **bounds: int) -> RefineOutcome:
    return refine_events(
        _coarse_events(),
        COARSE,
        source=source,
        path="video.mp4",
        size=(64, 36),
        localizer=localizer,
        request=LocalizeRequest(labels=("thing",), video_duration_s=DURATION_S),
        fps=FPS,
        window_s=WINDOW_S,
        concurrency=4,
        max_images=8,
        **bounds,
    )


@pytest.mark.parametrize(("held", "batch"), [(16, 64), (8, 1), (1, 21)])
def test_frames_held_at_once_stay_within_the_cap_and_the_answer_does_not_change(
    held: int, batch: int
) -> None:
    unbounded_source = CountingSource()
    unbounded = _refine(
        unbounded_source, SeeingLocalizer(), max_held_frames=10**6, evidence_batch=10**6
    )
    source, localizer = CountingSource(), SeeingLocalizer()
    bounded = _refine(source, localizer, max_held_frames=held, evidence_batch=batch)

    assert bounded == unbounded
    # The cap counts the frames the refinement keeps; the source's generator may hold the one
    # it is about to hand over, and a request larger than the cap (8 images) goes alone.
    assert source.peak <= max(held, 8) + 1
    # The counting is real: with no bound a round's frames are all alive together.
    assert unbounded_source.peak > 16
    assert source.live == 0
    assert localizer.sent and max(localizer.sent) <= 8


def test_the_bounded_refinement_finds_every_boundary() -> None:
    source, localizer = CountingSource(), SeeingLocalizer()
    outcome = _refine(source, localizer, max_held_frames=16, evidence_batch=64)

    assert outcome.boundaries == 2 * len(TRUTH)
    assert outcome.settled_by_pixels == len(TRUTH)  # the coloured half, both sides each
    step = 1 / FPS
    for refined, truth in zip(outcome.events, TRUTH, strict=True):
        # Half-open on the 10 fps grid: the first frame with the event, the first without.
        assert truth.start_s <= refined.start_s < truth.start_s + step
        assert truth.end_s <= refined.end_s < truth.end_s + step


class CountingSlots:
    """A worker's shared budget of decoded chunks: counts the slots taken and the most held."""

    def __init__(self, size: int) -> None:
        self._slots = threading.Semaphore(size)
        self._lock = threading.Lock()
        self.taken = 0
        self.holding = 0
        self.most = 0

    def __enter__(self) -> None:
        self._slots.acquire()
        with self._lock:
            self.taken += 1
            self.holding += 1
            self.most = max(self.most, self.holding)

    def __exit__(self, *_: object) -> None:
        with self._lock:
            self.holding -= 1
        self._slots.release()


def test_each_wave_of_frames_takes_a_slot_of_the_workers_shared_budget() -> None:
    source, localizer = CountingSource(), SeeingLocalizer()
    slots = CountingSlots(1)
    unbudgeted = _refine(CountingSource(), SeeingLocalizer(), max_held_frames=16)
    outcome = _refine(source, localizer, max_held_frames=16, held=slots)  # type: ignore[arg-type]

    assert outcome == unbudgeted
    assert slots.taken >= 2 and slots.most == 1 and slots.holding == 0
    # Only the asked-about boundaries' frames are held in waves: the pixel-settled ones are
    # reduced to histograms as they arrive and take no slot.
    assert slots.taken <= len(localizer.sent)
