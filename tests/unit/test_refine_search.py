"""Refinement as a search: bisection, pixel settling, many boundaries per request (pure)."""

from __future__ import annotations

import math

import pytest

from workers.refinement.search import (
    Search,
    candidate_grid,
    open_search,
    plan_searches,
    read_visibility,
)
from workers.types import DetectedEvent

GRID = tuple(round(10.0 + k / 10, 1) for k in range(1, 10))  # 10.1 .. 10.9 inside (10, 11)


def _start(true_start: float) -> tuple[Search, dict[float, bool]]:
    search = open_search(0, "start", "red circle", 11.0, 10.0, 11.0, GRID)
    truth = {t: t >= true_start - 1e-9 for t in GRID}
    return search, truth


def _run(search: Search, truth: dict[float, bool]) -> tuple[Search, int]:
    shown = 0
    for round_index in range(20):
        probes = search.probes(round_index)
        if not probes:
            break
        shown += len(probes)
        search = search.observe({t: truth[t] for t in probes})
    return search, shown


@pytest.mark.parametrize("true_start", [10.1, 10.4, 10.5, 10.9, 11.0])
def test_bisection_finds_the_first_frame_with_the_event_in_log2_looks(true_start: float) -> None:
    search, truth = _start(true_start)
    done, shown = _run(search, truth)
    assert done.done and done.estimate() == pytest.approx(true_start)
    assert shown <= math.ceil(math.log2(len(GRID) + 1))  # one frame per round, no evidence


def test_an_end_is_the_first_frame_without_the_event() -> None:
    search = open_search(0, "end", "red circle", 10.0, 10.0, 11.0, GRID)
    truth = {t: t < 10.7 - 1e-9 for t in GRID}  # visible until 10.6
    done, _ = _run(search, truth)
    assert done.estimate() == pytest.approx(10.7)


def test_a_clean_colour_step_settles_without_asking() -> None:
    search, _ = _start(10.4)
    # [near, 10.1 .. 10.9, far]: like the near side up to 10.3, like the far side from 10.4.
    progress = [0.0, 0.02, -0.05, 0.1, 0.95, 1.02, 0.97, 0.99, 1.0, 1.01, 1.0]
    settled = search.with_progress(progress)
    assert settled.done and settled.settled_by_pixels
    assert settled.estimate() == pytest.approx(10.4)
    assert settled.probes(0) == ()


def test_two_half_steps_are_left_to_the_model_but_guide_it() -> None:
    search, truth = _start(10.4)
    # Two things changed in the bracket (at 10.4 and 10.7): no clean step, but the frames
    # before the first one look like the near side, so one look after it decides.
    progress = [0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0]
    guided = search.with_progress(progress)
    assert not guided.done and not guided.settled_by_pixels
    assert guided.probes(0) == (10.4,)
    done, shown = _run(guided, truth)
    assert done.estimate() == pytest.approx(10.4) and shown == 1


def test_a_rise_clean_on_neither_side_shows_the_frames_on_both() -> None:
    search, truth = _start(10.4)
    progress = [0.0, 0.2, 0.3, 0.2, 0.8, 0.7, 0.75, 0.8, 0.9, 1.0, 1.0]
    guided = search.with_progress(progress)
    assert guided.probes(0) == (10.3, 10.4)
    done, shown = _run(guided, truth)
    assert done.estimate() == pytest.approx(10.4) and shown == 2


def test_one_clean_side_needs_one_look_at_the_other() -> None:
    search, truth = _start(10.4)
    # Clean from 10.4 on; noisy before it (something else moved a little).
    progress = [0.0, 0.3, -0.2, 0.25, 0.95, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    guided = search.with_progress(progress)
    assert guided.probes(0) == (10.3,)
    done, shown = _run(guided, truth)
    assert done.done and done.estimate() == pytest.approx(10.4) and shown == 1


def test_the_model_overrules_misleading_pixels() -> None:
    search, truth = _start(10.8)
    progress = [0.0, 0.0, 0.0, 0.0, 0.6, 0.6, 0.6, 0.6, 1.0, 1.0, 1.0]  # rises at 10.4 first
    done, _ = _run(search.with_progress(progress), truth)
    assert done.estimate() == pytest.approx(10.8)


def test_a_budget_stop_keeps_the_strongest_step_as_the_estimate() -> None:
    search, _ = _start(10.6)
    progress = [0.0, 0.0, 0.1, 0.0, 0.1, 0.2, 0.9, 0.8, 1.0, 0.9, 1.0]
    assert search.with_progress(progress).estimate() == pytest.approx(10.6)


def test_a_single_frame_event_gets_both_boundaries() -> None:
    coarse = [k + 0.5 for k in range(10)]
    (start, end) = plan_searches(
        [DetectedEvent("red circle", 2.5, 2.5)], coarse, fps=10.0, window_s=2.0, duration_s=10.0
    )
    assert (start.side, start.lo_s, start.hi_s) == ("start", 1.5, 2.5)
    assert start.candidates == pytest.approx([1.6 + k / 10 for k in range(9)])
    assert (end.side, end.lo_s, end.hi_s) == ("end", 2.5, 3.5)


def test_a_boundary_seen_a_frame_off_the_planned_instant_keeps_its_bracket() -> None:
    # A 5 fps video: the coarse sample planned at 16.5 s showed the frame of 16.4 s.
    coarse = [k + 0.5 for k in range(30)]
    searches = plan_searches(
        [DetectedEvent("red circle", 2.4, 16.4)], coarse, fps=10.0, window_s=2.0, duration_s=30.0
    )
    end = next(s for s in searches if s.side == "end")
    assert end.hi_s == 17.5


def test_an_event_from_the_first_frame_may_start_at_zero() -> None:
    (start, _end) = plan_searches(
        [DetectedEvent("red circle", 0.5, 3.5)],
        [k + 0.5 for k in range(10)],
        fps=10.0,
        window_s=2.0,
        duration_s=10.0,
    )
    assert start.candidates[0] == 0.0
    done, _ = _run(start, {t: True for t in start.candidates})
    assert done.estimate() == 0.0


def test_candidate_grid_is_strictly_inside() -> None:
    assert candidate_grid(1.5, 2.5, 5.0) == pytest.approx([1.6, 1.8, 2.0, 2.2, 2.4])
    assert candidate_grid(0.0, 0.3, 10.0, include_lo=True) == pytest.approx([0.0, 0.1, 0.2])


def test_visibility_of_many_boundaries_read_from_one_answer() -> None:
    answer = [
        DetectedEvent("red circle", 10.3, 10.3),
        DetectedEvent("Blue Triangle", 20.6, 20.7),
    ]
    seen = read_visibility(answer, ["red circle", "blue triangle"], [10.2, 10.3, 20.6, 20.7])
    assert seen["red circle"] == {10.2: False, 10.3: True, 20.6: False, 20.7: False}
    assert seen["blue triangle"] == {10.2: False, 10.3: False, 20.6: True, 20.7: True}
