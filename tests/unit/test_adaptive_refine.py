"""Adaptive sampling plans, boundary refinement, joining pieces, and the chunk -> merge path."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devkit.fake_vlm.vision import Sighting, events_from_sightings
from workers.frames.adaptive import (
    Change,
    changes_over,
    frames_for_budget,
    plan_adaptive_times,
    snap_to_cut,
)
from workers.frames.plan import plan_chunks
from workers.frames.prepass import CUT_SCORE, change_fraction, change_scores
from workers.pipeline.join import join_unseparated
from workers.pipeline.merge import merge_events
from workers.refinement.boundaries import (
    Boundary,
    apply_moves,
    grid_inside,
    plan_boundaries,
    refined_time,
)
from workers.refinement.refine import choose_within_cap
from workers.types import DetectedEvent, FrameSample

D = DetectedEvent


def test_changes_over_pairs_scores_with_times() -> None:
    times = [0.0, 1.0, 2.0, 3.0]
    assert changes_over(times, [0.0, 0.5, 0.01], 0.02) == [Change(1.0, 2.0, 0.5)]
    with pytest.raises(ValueError):
        changes_over(times, [0.1], 0.0)


def test_frames_for_budget() -> None:
    assert frames_for_budget(120.0, None, 64) is None
    assert frames_for_budget(120.0, 640.0, 64) == 20  # 2 minutes x 10 frames
    assert frames_for_budget(1.0, 1.0, 64) == 1


def test_adaptive_plan_is_sparse_floor_plus_brackets() -> None:
    changes = [Change(10.0, 10.25, 0.3), Change(40.0, 40.25, 0.9)]
    times = plan_adaptive_times(60.0, changes, min_fps=0.1)
    assert {10.0, 10.25, 40.0, 40.25} <= set(times)
    assert len(times) == 6 + 4  # floor at 5, 15, ..., 55 plus both brackets
    assert list(times) == sorted(times)


def test_adaptive_plan_keeps_the_strongest_changes_within_budget() -> None:
    changes = [Change(10.0, 10.25, 0.3), Change(40.0, 40.25, 0.9)]
    times = plan_adaptive_times(60.0, changes, min_fps=0.1, max_frames=4)
    assert len(times) <= 4
    assert {40.0, 40.25} <= set(times) and 10.25 not in times


def test_snap_to_cut() -> None:
    assert snap_to_cut(9.8, [10.0, 20.0], 0.5) == 10.0
    assert snap_to_cut(9.0, [10.0, 20.0], 0.5) == 9.0
    assert snap_to_cut(9.8, [10.0], 0.0) == 9.8


def test_change_scores_mark_cuts_and_measure_changed_share() -> None:
    a = np.zeros((10, 10, 3), np.uint8)
    b = a.copy()
    b[:2, :5] = 200  # 10 of 100 pixels
    assert change_fraction(a, b) == pytest.approx(0.1)
    assert change_fraction(a, a) == 0.0
    frames = [FrameSample(0.0, a), FrameSample(1.0, b), FrameSample(2.0, b)]
    assert change_scores(frames, cut_after=[2.0]) == (pytest.approx(0.1), CUT_SCORE)


def test_grid_inside_leaves_the_known_ends_out() -> None:
    assert grid_inside(1.0, 1.5, 10) == pytest.approx((1.1, 1.2, 1.3, 1.4))
    assert grid_inside(1.0, 1.1, 10) == ()


def test_plan_boundaries_brackets_between_coarse_samples() -> None:
    ev = D("x", 3.0, 6.0)
    (start, end) = plan_boundaries(
        [ev], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], fps=4, window_s=5, duration_s=8
    )
    assert (start.side, start.lo_s, start.hi_s) == ("start", 2.0, 3.0)
    assert (end.side, end.lo_s, end.hi_s) == ("end", 6.0, 7.0)
    assert start.times == pytest.approx((2.25, 2.5, 2.75))
    # Instants are the cv pass's business; a tight bracket needs no second look.
    assert plan_boundaries([D("cut", 3, 3)], [1.0, 3.0], fps=4, window_s=5, duration_s=8) == []
    assert plan_boundaries([ev], [2.9, 3.0, 6.0, 6.1], fps=4, window_s=5, duration_s=8) == []


def _boundary(side: str, t: float, lo: float, hi: float) -> Boundary:
    return Boundary(0, side, "x", t, lo, hi, grid_inside(lo, hi, 10))  # type: ignore[arg-type]


def test_refined_start_and_end_follow_the_answer() -> None:
    start = _boundary("start", 3.0, 2.0, 3.0)
    end = _boundary("end", 6.0, 6.0, 7.0)
    answer = [D("x", 2.4, 6.3), D("other", 2.1, 2.2)]
    shown = (2.1, 2.2, 2.3, 2.4, 6.1, 6.2, 6.3, 6.4)
    assert refined_time(start, answer, shown) == pytest.approx(2.4)
    # Last seen at 6.3: gone by the next frame shown.
    assert refined_time(end, answer, shown) == pytest.approx(6.4)
    # Not seen in the end window at all: gone by its first frame; the start stays put.
    assert refined_time(end, [D("x", 2.4, 2.9)], shown) == pytest.approx(6.1)
    assert refined_time(start, [], shown) == 3.0


def test_apply_moves_ignores_reversing_moves() -> None:
    events = [D("x", 3.0, 6.0), D("y", 1.0, 2.0)]
    out = apply_moves(events, {(0, "start"): 2.5, (1, "start"): 5.0})
    assert (out[0].start_s, out[0].end_s, out[0].source) == (2.5, 6.0, "vlm+refined")
    assert (out[1].start_s, out[1].end_s) == (1.0, 2.0)


def test_choose_within_cap_prefers_wide_brackets() -> None:
    narrow = _boundary("start", 3.0, 2.8, 3.0)
    wide = Boundary(1, "start", "y", 9.0, 8.0, 9.0, grid_inside(8.0, 9.0, 10))
    assert choose_within_cap([narrow, wide], 9) == [wide]
    assert choose_within_cap([narrow, wide], None) == [narrow, wide]


def test_join_only_what_no_sample_separates() -> None:
    pieces = [D("x", 10.0, 20.0), D("x", 25.0, 30.0), D("x", 40.0, 45.0), D("y", 21.0, 22.0)]
    samples = [10.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0]
    merged = merge_events(join_unseparated(pieces, samples))
    assert [(e.label, e.start_s, e.end_s) for e in merged] == [
        ("x", 10.0, 30.0),
        ("y", 21.0, 22.0),
        ("x", 40.0, 45.0),
    ]


# --- the whole chunk -> localize -> join -> merge path ---------------------------------------

LABELS = ("a", "b")


@st.composite
def scenes(draw: st.DrawFn) -> tuple[list[float], dict[str, list[tuple[float, float]]]]:
    duration = draw(st.floats(20.0, 200.0))
    n = draw(st.integers(5, 150))
    times = sorted({round(draw(st.floats(0.0, duration)), 3) for _ in range(n)})
    truth: dict[str, list[tuple[float, float]]] = {}
    for label in LABELS:
        edges = sorted(
            {round(draw(st.floats(0.0, duration)), 2) for _ in range(draw(st.integers(0, 6)))}
        )
        truth[label] = list(zip(edges[::2], edges[1::2], strict=False))
    return times, truth


def _observe(times: list[float], truth: dict[str, list[tuple[float, float]]]) -> list[D]:
    """What the fake model reports for frames at ``times``: runs of frames showing a label."""
    sightings = [
        Sighting(t, frozenset(lb for lb, ivs in truth.items() if any(s <= t < e for s, e in ivs)))
        for t in times
    ]
    return [
        D(e["label"], e["start_s"], e["end_s"], e["description"], e["confidence"])
        for e in events_from_sightings(sightings)
    ]


@settings(max_examples=60, deadline=None)
@given(scenes(), st.floats(5.0, 40.0), st.floats(0.0, 4.0), st.integers(2, 40), st.randoms())
def test_chunking_neither_loses_nor_duplicates_events(
    scene: tuple[list[float], dict[str, list[tuple[float, float]]]],
    chunk_s: float,
    overlap_s: float,
    cap: int,
    rnd: random.Random,
) -> None:
    """Seen through overlapping chunks, merged in any order, the timeline equals one look at
    the whole video: every event once, none split, none invented."""
    times, truth = scene
    whole = merge_events(join_unseparated(_observe(times, truth), times, join_instants=True))
    pieces = []
    for chunk in plan_chunks(times, chunk_s, overlap_s, cap):
        pieces += _observe(list(chunk.times), truth)
    rnd.shuffle(pieces)
    chunked = merge_events(join_unseparated(pieces, times, join_instants=True))
    assert [(e.label, e.start_s, e.end_s) for e in chunked] == [
        (e.label, e.start_s, e.end_s) for e in whole
    ]
