"""Sampling plans: sample times, chunking with overlap and caps, model frame sizes."""

from __future__ import annotations

import itertools
import math
from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import IngestEvent, IngestOptions, SourceObject
from vidloc.errors import InputError
from vidloc.settings import Settings
from workers.frames.plan import (
    frame_size_for,
    parts_for,
    plan_chunks,
    plan_sample_times,
    split_evenly,
)
from workers.localizers.registry import localizer_kind
from workers.pipeline.planning import PlanConfig, make_plan, wants_adaptive
from workers.types import VideoInfo

# ---------------------------------------------------------------- sample times


def test_sample_times_sit_mid_interval() -> None:
    assert plan_sample_times(10.0, 1.0) == (0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5)


def test_sample_times_at_two_fps_with_offset() -> None:
    assert plan_sample_times(3.0, 2.0, start_s=1.0) == (1.25, 1.75, 2.25, 2.75)


def test_sample_times_drop_times_at_or_past_the_end() -> None:
    # 10.5 would sit exactly on the end: not a frame of the video.
    assert plan_sample_times(10.5, 1.0)[-1] == 9.5
    assert plan_sample_times(10.6, 1.0)[-1] == 10.5


def test_clip_shorter_than_one_interval_gets_one_sample_in_its_middle() -> None:
    assert plan_sample_times(0.3, 1.0) == pytest.approx((0.15,))


def test_max_frames_spreads_samples_over_the_whole_span() -> None:
    times = plan_sample_times(100.0, 1.0, max_frames=4)
    assert times == (12.5, 37.5, 62.5, 87.5)


@pytest.mark.parametrize("duration", [0.0, -1.0, math.inf, math.nan])
def test_no_samples_for_empty_or_bad_spans(duration: float) -> None:
    assert plan_sample_times(duration, 1.0) == ()


def test_bad_rates_are_refused() -> None:
    with pytest.raises(ValueError):
        plan_sample_times(10.0, 0.0)
    with pytest.raises(ValueError):
        plan_sample_times(10.0, 1.0, max_frames=0)


@given(
    duration=st.floats(0.01, 20_000.0),
    fps=st.floats(0.01, 30.0),
    cap=st.one_of(st.none(), st.integers(1, 500)),
)
@settings(max_examples=200, deadline=None)
def test_sample_times_properties(duration: float, fps: float, cap: int | None) -> None:
    times = plan_sample_times(duration, fps, max_frames=cap)
    assert times, "a positive duration always gets at least one sample"
    assert all(0.0 < t < duration for t in times)
    assert list(times) == sorted(set(times))
    if cap is not None:
        assert len(times) <= cap
    # Never sparser than asked unless the cap forces it.
    expected = max(1, math.ceil(duration * fps - 0.5))
    assert len(times) == (min(expected, cap) if cap else expected) or len(times) == expected - 1


# ---------------------------------------------------------------- chunks


def test_chunks_follow_a_grid_and_carry_the_overlap() -> None:
    times = plan_sample_times(100.0, 1.0)
    chunks = plan_chunks(times, chunk_s=30.0, overlap_s=2.0, max_frames_per_chunk=64)
    assert [(c.index, c.start_s, c.end_s) for c in chunks] == [
        (0, 0.0, 32.0),
        (1, 30.0, 62.0),
        (2, 60.0, 92.0),
        (3, 90.0, 122.0),
    ]
    assert chunks[0].times[0] == 0.5 and chunks[0].times[-1] == 31.5
    assert chunks[1].times[0] == 30.5  # 30.5 and 31.5 are in both chunk 0 and chunk 1
    assert chunks[3].times == (90.5, 91.5, 92.5, 93.5, 94.5, 95.5, 96.5, 97.5, 98.5, 99.5)


def test_frame_cap_shortens_cores_but_keeps_the_overlap() -> None:
    times = [i * 0.5 for i in range(100)]  # 2 fps over 50 s
    chunks = plan_chunks(times, chunk_s=30.0, overlap_s=2.0, max_frames_per_chunk=20)
    assert all(len(c.times) <= 20 for c in chunks)
    first, second = chunks[0], chunks[1]
    # 16 core frames (0..7.5 s) + 4 overlap frames (8..9.5 s) = 20.
    assert first.times == tuple(times[:20])
    assert second.start_s == 8.0
    assert second.times[:4] == (8.0, 8.5, 9.0, 9.5)


def test_empty_stretches_make_no_chunks() -> None:
    chunks = plan_chunks([1.0, 2.0, 95.0], chunk_s=30.0, overlap_s=2.0, max_frames_per_chunk=8)
    assert [(c.start_s, c.times) for c in chunks] == [(0.0, (1.0, 2.0)), (90.0, (95.0,))]
    assert [c.index for c in chunks] == [0, 1]


def test_no_times_no_chunks() -> None:
    assert plan_chunks([], 30.0, 2.0, 10) == ()


def test_overlap_bigger_than_the_cap_is_truncated_not_looping() -> None:
    times = [i * 0.1 for i in range(50)]
    chunks = plan_chunks(times, chunk_s=1.0, overlap_s=3.0, max_frames_per_chunk=5)
    assert all(len(c.times) <= 5 for c in chunks)
    assert set().union(*(c.times for c in chunks)) == set(times)


sorted_times = st.lists(
    st.floats(0.0, 3_000.0, allow_nan=False), min_size=0, max_size=300, unique=True
).map(sorted)


@given(
    times=sorted_times,
    chunk_s=st.floats(0.5, 120.0),
    overlap_s=st.floats(0.0, 10.0),
    cap=st.integers(1, 80),
)
@settings(max_examples=300, deadline=None)
def test_chunk_properties(times: list[float], chunk_s: float, overlap_s: float, cap: int) -> None:
    chunks = plan_chunks(times, chunk_s, overlap_s, cap)
    # Every time appears in at least one chunk.
    covered = set().union(*(c.times for c in chunks)) if chunks else set()
    assert covered == set(times)
    for k, chunk in enumerate(chunks):
        assert chunk.index == k
        assert 1 <= len(chunk.times) <= cap
        assert list(chunk.times) == sorted(chunk.times)
        assert chunk.start_s <= chunk.times[0]
        assert chunk.times[-1] < chunk.end_s
    for before, after in itertools.pairwise(chunks):
        assert before.start_s < after.start_s
        # Overlap honoured: a chunk holds every time of its window [start_s, end_s), the
        # overlap after its core included -- unless the frame cap filled it.
        window = {t for t in times if before.start_s <= t < before.end_s}
        if len(before.times) < cap:
            assert window == set(before.times)
        # Chunks that share frames share the ones at the start of the later chunk.
        if set(before.times) & set(after.times):
            assert after.times[0] in before.times
        # No gap between cores: every time before the later chunk's start that is not in an
        # earlier chunk's core is in this one.
        assert {t for t in times if before.start_s <= t < after.start_s} <= set(before.times)


def test_chunk_arguments_are_validated() -> None:
    with pytest.raises(ValueError):
        plan_chunks([1.0], 0.0, 1.0, 5)
    with pytest.raises(ValueError):
        plan_chunks([1.0], 10.0, -1.0, 5)
    with pytest.raises(ValueError):
        plan_chunks([1.0], 10.0, 1.0, 0)


# ---------------------------------------------------------------- frame sizes


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param((1920, 1080), (448, 256), id="1080p"),
        pytest.param((1080, 1920), (256, 448), id="portrait"),
        pytest.param((3840, 2160), (448, 256), id="4k"),
        pytest.param((640, 480), (448, 352), id="4:3-rounds-half-up"),
        pytest.param((320, 180), (320, 192), id="small-not-upscaled"),
        pytest.param((4000, 40), (448, 32), id="very-wide"),
        pytest.param((20, 20), (32, 32), id="tiny"),
    ],
)
def test_frame_size_for(source: tuple[int, int], expected: tuple[int, int]) -> None:
    assert frame_size_for(*source) == expected


def test_split_evenly_makes_consecutive_runs_that_differ_by_at_most_one() -> None:
    assert split_evenly(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert split_evenly(2, 5) == [(0, 1), (1, 2)]  # never an empty run
    with pytest.raises(ValueError):
        split_evenly(0, 2)


@given(count=st.integers(1, 500), cap=st.integers(1, 80))
def test_parts_for_is_the_fewest_runs_within_the_cap(count: int, cap: int) -> None:
    ranges = parts_for(count, cap)
    assert len(ranges) == math.ceil(count / cap)
    assert ranges[0][0] == 0 and ranges[-1][1] == count
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    sizes = [hi - lo for lo, hi in ranges]
    assert max(sizes) <= cap and max(sizes) - min(sizes) <= 1


@given(
    w=st.integers(1, 8192),
    h=st.integers(1, 8192),
    long_side=st.integers(32, 2048),
)
@settings(max_examples=300, deadline=None)
def test_frame_size_properties(w: int, h: int, long_side: int) -> None:
    fw, fh = frame_size_for(w, h, long_side)
    assert fw % 32 == 0 and fh % 32 == 0
    assert fw >= 32 and fh >= 32
    assert max(fw, fh) <= max(32, (long_side // 32) * 32)
    # Aspect kept to within a 32 px rounding step on the short side.
    if min(fw, fh) > 32:
        scale = max(fw, fh) / max(w, h)
        assert abs(fw - w * scale) <= 16.0 + 1e-6
        assert abs(fh - h * scale) <= 16.0 + 1e-6


def test_frame_size_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        frame_size_for(0, 100)
    with pytest.raises(ValueError):
        frame_size_for(100, 100, long_side=16)


# ---------------------------------------------------------------- the job's plan (make_plan)

DEFAULTS = PlanConfig(
    sample_fps=1.0,
    chunk_s=30.0,
    chunk_overlap_s=2.0,
    max_frames_per_chunk=64,
    vlm_max_images_per_request=64,
    frame_long_side=448,
    sampling_mode="uniform",
    token_budget_per_min=None,
    adaptive_min_fps=0.2,
    adaptive_change_threshold=0.02,
    refine=False,
    max_duration_s=600.0,
    max_pixels=1920 * 1080,
)
HD = VideoInfo(duration_s=95.0, fps=25.0, width=1280, height=720, codec="h264")


def ingest(**options: Any) -> IngestEvent:
    return IngestEvent(
        event_id="e-1",
        source=SourceObject(bucket="videos", key="a.mp4", etag="x", size=1),
        options=IngestOptions(**options),
        submitted_at=datetime(2025, 1, 31, tzinfo=UTC),
    )


def test_plan_config_is_the_planning_slice_of_settings() -> None:
    env = Settings(sample_fps=2.5, max_pixels=1234, refine=True)
    config = PlanConfig.from_settings(env)
    assert (config.sample_fps, config.max_pixels, config.refine) == (2.5, 1234, True)
    assert {f.name for f in fields(PlanConfig)} <= set(Settings.model_fields)


@pytest.mark.parametrize(
    ("options", "localizer", "fps", "chunk_s", "refine"),
    [
        pytest.param({}, "vlm", 1.0, 30.0, False, id="worker-defaults"),
        pytest.param({"sample_fps": 4.0, "chunk_s": 10.0}, "vlm", 4.0, 10.0, False, id="options"),
        pytest.param({"refine": True}, "vlm", 1.0, 30.0, True, id="refine-asked"),
        pytest.param({"refine": True}, "cv", 1.0, 30.0, False, id="cv-never-refines"),
    ],
)
def test_options_override_the_worker_defaults(
    options: dict[str, Any], localizer: str, fps: float, chunk_s: float, refine: bool
) -> None:
    plan = make_plan(HD, ingest(**options), DEFAULTS, localizer_kind(localizer))
    assert (plan.sample_fps, plan.chunk_s, plan.refine) == (fps, chunk_s, refine)
    assert plan.mode == "uniform" and plan.localizer == localizer
    assert plan.frame_size == (448, 256)
    assert len(plan.times) == len(plan_sample_times(95.0, fps))
    assert plan.chunks[0].start_s == 0.0 and plan.chunks[-1].end_s >= plan.times[-1]
    assert plan.overlap_s == min(DEFAULTS.chunk_overlap_s, chunk_s / 2)


def test_adaptive_without_a_prepass_plans_uniformly() -> None:
    plan = make_plan(HD, ingest(sampling="adaptive"), DEFAULTS, localizer_kind("vlm"), prepass=None)
    assert wants_adaptive(ingest(sampling="adaptive"), DEFAULTS)
    assert not wants_adaptive(ingest(), DEFAULTS)
    assert plan.mode == "uniform" and plan.token_budget_per_min is None


@pytest.mark.parametrize(
    ("info", "code"),
    [
        pytest.param(replace(HD, duration_s=601.0), "video_too_long", id="too-long"),
        pytest.param(replace(HD, width=3840, height=2160), "resolution_too_large", id="4k"),
    ],
)
def test_videos_over_the_limits_are_refused(info: VideoInfo, code: str) -> None:
    with pytest.raises(InputError) as caught:
        make_plan(info, ingest(), DEFAULTS, localizer_kind("vlm"))
    assert caught.value.code == code
