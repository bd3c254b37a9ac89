"""The cv localizer on in-memory frames with known cuts, black and frozen segments.

"Within one sampled frame" means: an event boundary at true time T is reported at the first
sampled time at or after T, so ``0 <= reported - T < sampling period``. The tests assert that
exact sample (which implies the tolerance) and the tolerance itself.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np
import pytest

from workers.localizers.cv import CvLocalizer, CvParams, detect_cuts, shots_from_cuts
from workers.pipeline.merge import merge_events
from workers.types import Chunk, DetectedEvent, FrameSample, Localizer, LocalizeRequest

W, H = 448, 256
PAN_PX_PER_S = 3.0


@cache
def texture(seed: int, grey: bool = False) -> np.ndarray:
    """A random field of coloured rectangles, twice the frame size so it can pan."""
    rng = np.random.default_rng(seed)
    img = np.zeros((H * 2, W * 2, 3), np.uint8)
    img[:] = rng.integers(40, 220, 3)
    for _ in range(25):
        x, y = (int(v) for v in rng.integers(0, W * 2, 2))
        w, h = (int(v) for v in rng.integers(20, 120, 2))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.rectangle(img, (x, y), (x + w, y + h), colour, -1)
    if grey:
        img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    return img


def shot_frame(seed: int, t: float, *, grey: bool = False, sigma: float = 4.0) -> np.ndarray:
    """A slowly panning shot with fresh sensor noise in every frame."""
    dx = int(t * PAN_PX_PER_S)
    img = texture(seed, grey)[20 : 20 + H, dx : dx + W].astype(np.int16)
    noise_rng = np.random.default_rng(int(t * 1000) + seed * 7919)
    img += noise_rng.normal(0, sigma, img.shape).astype(np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def black_frame(t: float) -> np.ndarray:
    rng = np.random.default_rng(int(t * 1000))
    img = rng.integers(0, 12, (H, W, 3), dtype=np.uint8)
    cv2.putText(img, "TV", (W - 60, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (200, 200, 200), 2)
    return img


@dataclass(frozen=True)
class Segment:
    """From ``start`` until the next segment: a shot, black, or the shot frozen at ``start``."""

    start: float
    kind: str  # "shot" | "black" | "frozen"
    seed: int = 0
    grey: bool = False


def render(times: Sequence[float], script: Sequence[Segment]) -> list[FrameSample]:
    starts = [s.start for s in script]
    frames = []
    for t in times:
        seg = script[bisect.bisect_right(starts, t) - 1]
        if seg.kind == "black":
            img = black_frame(t)
        elif seg.kind == "frozen":
            img = shot_frame(seg.seed, seg.start, grey=seg.grey)
        else:
            img = shot_frame(seg.seed, t, grey=seg.grey)
        frames.append(FrameSample(t, img))
    return frames


def first_sample_at_or_after(times: Sequence[float], t: float) -> float:
    return times[bisect.bisect_left(times, t)]


def assert_within_one_frame(reported: float, true_t: float, times: Sequence[float]) -> None:
    period = max(b - a for a, b in itertools.pairwise(times))
    assert reported == first_sample_at_or_after(times, true_t)
    assert 0 <= reported - true_t < period


def at_1fps(n: int) -> list[float]:
    return [float(i) for i in range(n)]


def vfr_times(n: int) -> list[float]:
    # Irregular true times, as a variable-frame-rate file gives them.
    rng = random.Random(5)
    return [round(i + rng.uniform(-0.3, 0.3), 3) if i else 0.0 for i in range(n)]


def localize_all(
    frames: list[FrameSample], duration: float = 0.0, params: CvParams | None = None
) -> tuple[DetectedEvent, ...]:
    chunk = Chunk(0, frames[0].t_s, frames[-1].t_s, tuple(f.t_s for f in frames))
    result = CvLocalizer(params).localize(chunk, frames, LocalizeRequest(video_duration_s=duration))
    assert result.chunk_index == 0
    return result.events


def of(events: Sequence[DetectedEvent], label: str) -> list[tuple[float, float]]:
    return [(e.start_s, e.end_s) for e in events if e.label == label]


CUT_SCRIPTS = [
    pytest.param(
        at_1fps(40),
        [Segment(0, "shot", 0), Segment(12.3, "shot", 1), Segment(20.0, "shot", 2),
         Segment(27.6, "shot", 3)],
        id="colour-1fps",
    ),
    pytest.param(
        at_1fps(30),
        [Segment(0, "shot", 7, True), Segment(9.5, "shot", 8, True),
         Segment(18.2, "shot", 9, True)],
        id="grey-footage-1fps",
    ),
    pytest.param(
        vfr_times(40),
        [Segment(0, "shot", 4), Segment(8.1, "shot", 5), Segment(25.5, "shot", 6)],
        id="colour-vfr",
    ),
    pytest.param(
        [i / 2 for i in range(60)],
        [Segment(0, "shot", 1), Segment(11.2, "shot", 3), Segment(11.9, "shot", 2)],
        id="two-cuts-one-sample-apart-2fps",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("times", "script"), CUT_SCRIPTS)
def test_cuts_found_within_one_sampled_frame(times: list[float], script: list[Segment]) -> None:
    frames = render(times, script)
    cuts = detect_cuts(frames)
    true_cuts = [s.start for s in script[1:]]
    assert len(cuts) == len(true_cuts), cuts
    for reported, true_t in zip(cuts, true_cuts, strict=True):
        assert_within_one_frame(reported, true_t, times)
    # The localizer reports the same cuts as instants, and merging keeps each of them.
    events = merge_events(localize_all(frames))
    assert [s for s, _ in of(events, "cut")] == cuts
    assert all(s == e for s, e in of(events, "cut"))


@pytest.mark.parametrize(
    "script",
    [
        pytest.param([Segment(0, "shot", 1)], id="colour-pan"),
        pytest.param([Segment(0, "shot", 7, True)], id="grey-pan"),
    ],
)
def test_no_false_cuts_on_a_noisy_slowly_moving_shot(script: list[Segment]) -> None:
    frames = render(at_1fps(30), script)
    events = localize_all(frames)
    assert detect_cuts(frames) == []
    assert events == ()  # no cut, and noise keeps it from looking frozen or black


def test_black_segment_boundaries() -> None:
    times = at_1fps(30)
    frames = render(
        times, [Segment(0, "shot", 1), Segment(10.4, "black"), Segment(14.2, "shot", 2)]
    )
    events = localize_all(frames)
    [(start, end)] = of(events, "black")
    assert_within_one_frame(start, 10.4, times)
    assert_within_one_frame(end, 14.2, times)
    [black] = [e for e in events if e.label == "black"]
    assert black.description.startswith("black frames")
    assert black.confidence is not None and 0.5 <= black.confidence <= 1.0
    # Cutting into and out of black are cuts too; a black stretch is never also "frozen".
    assert [s for s, _ in of(events, "cut")] == [11.0, 15.0]
    assert of(events, "frozen") == []


def test_frozen_segment_boundaries() -> None:
    times = vfr_times(40)
    script = [Segment(0, "shot", 3), Segment(20.5, "frozen", 3), Segment(26.0, "shot", 3)]
    frames = render(times, script)
    events = localize_all(frames)
    [(start, end)] = of(events, "frozen")
    assert_within_one_frame(start, 20.5, times)
    assert_within_one_frame(end, 26.0, times)
    [frozen] = [e for e in events if e.label == "frozen"]
    assert frozen.description.startswith("frozen picture")
    assert frozen.confidence == 1.0  # identical pixels
    assert of(events, "cut") == [] and of(events, "black") == []


def test_minimum_durations() -> None:
    times = at_1fps(20)
    script = [
        Segment(0, "shot", 1), Segment(4.5, "black"), Segment(5.5, "shot", 1),
        Segment(10.0, "frozen", 1), Segment(11.5, "shot", 1),
    ]  # fmt: skip
    frames = render(times, script)
    strict = localize_all(frames, params=CvParams(min_black_s=1.5, min_frozen_s=2.5))
    assert of(strict, "black") == [] and of(strict, "frozen") == []
    lenient = localize_all(frames, params=CvParams(min_black_s=1.0, min_frozen_s=1.0))
    assert of(lenient, "black") == [(5.0, 6.0)]
    assert of(lenient, "frozen") == [(10.0, 12.0)]


def test_segment_running_to_the_end_of_the_video_ends_there() -> None:
    times = at_1fps(41)  # 0..40, the video lasts 40.6 s
    frames = render(times, [Segment(0, "shot", 2), Segment(37.2, "black")])
    assert of(localize_all(frames, duration=40.6), "black") == [(38.0, 40.6)]
    # Without knowing it is the end, the segment ends at the last frame seen.
    assert of(localize_all(frames), "black") == [(38.0, 40.0)]


def chunked(times: list[float], core: float, overlap: float) -> list[Chunk]:
    chunks, start, i = [], 0.0, 0
    while start < times[-1] + 1e-9:
        window = tuple(t for t in times if start <= t < start + core + overlap)
        chunks.append(Chunk(i, start, start + core + overlap, window))
        start, i = start + core, i + 1
    return chunks


def test_chunked_feeding_and_merge_give_each_event_once() -> None:
    times = at_1fps(75)
    script = [
        Segment(0, "shot", 1),
        Segment(12.3, "shot", 2),
        Segment(28.6, "black"),  # crosses the boundary at 30 s
        Segment(35.2, "shot", 3),
        Segment(30.5 + 30, "shot", 4),  # a cut inside the second overlap (60-62 s)
        Segment(66.0, "frozen", 4),
    ]
    frames = render(times, script)
    by_t = {f.t_s: f for f in frames}
    loc: Localizer = CvLocalizer()
    request = LocalizeRequest(video_duration_s=75.0)
    pieces = []
    for chunk in chunked(times, core=30.0, overlap=2.0):
        result = loc.localize(chunk, [by_t[t] for t in chunk.times], request)
        assert result.chunk_index == chunk.index
        pieces.extend(result.events)
    merged = merge_events(pieces)

    # The cut at 60.5 s is seen by both chunk 1 and chunk 2: it is reported twice, merged once.
    assert [e.start_s for e in pieces if e.label == "cut"].count(61.0) == 2
    assert [s for s, _ in of(merged, "cut")] == [13.0, 29.0, 36.0, 61.0]
    assert of(merged, "black") == [(29.0, 36.0)]
    assert of(merged, "frozen") == [(66.0, 75.0)]
    # Chunking changes nothing: the same timeline as one pass over all frames (confidences may
    # differ: each piece is scored on the frames its chunk saw, the merge keeps the highest).
    whole = merge_events(localize_all(frames, duration=75.0))
    assert [(e.label, e.start_s, e.end_s) for e in merged] == [
        (e.label, e.start_s, e.end_s) for e in whole
    ]


def test_frame_order_and_duplicate_times_do_not_matter() -> None:
    times = at_1fps(25)
    frames = render(times, [Segment(0, "shot", 1), Segment(9.4, "shot", 2)])
    messy = frames + frames[3:6]  # a source that returned one decoded frame twice
    random.Random(1).shuffle(messy)
    assert localize_all(messy) == localize_all(frames)
    assert detect_cuts(messy) == [10.0]


def test_requested_labels_filter_cv_vocabulary() -> None:
    frames = render(at_1fps(20), [Segment(0, "shot", 1), Segment(5.5, "black"), Segment(9, "shot")])
    chunk = Chunk(0, 0.0, 19.0, tuple(f.t_s for f in frames))
    loc = CvLocalizer()
    only_black = loc.localize(chunk, frames, LocalizeRequest(labels=(" Black",)))
    assert {e.label for e in only_black.events} == {"black"}
    # Labels the cv localizer cannot see are ignored rather than silencing it.
    other = loc.localize(chunk, frames, LocalizeRequest(labels=("dog",)))
    assert {e.label for e in other.events} == {"black", "cut"}
    assert other.usage.requests == 0 and loc.name == "cv"


def test_shots_from_cuts() -> None:
    shots = shots_from_cuts([28.0, 13.0, 20.0, 13.0, 0.0, 45.0], 40.0)
    assert [(s.start_s, s.end_s) for s in shots] == [(0, 13), (13, 20), (20, 28), (28, 40)]
    assert all(s.label == "shot" for s in shots)
    assert shots[2].description == "shot 3 of 4, after the cut at 20.0 s"
    # Consecutive shots touch: merge_events would glue them, which is why shots are derived
    # after the merge and never fed to it.
    assert len(merge_events(shots)) == 1
    assert [(s.start_s, s.end_s) for s in shots_from_cuts([], 12.5)] == [(0, 12.5)]
    assert [(s.start_s, s.end_s) for s in shots_from_cuts([5.0], 0.0)] == [(0, 5)]
