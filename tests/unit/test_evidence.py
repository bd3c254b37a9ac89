"""Pixel evidence: colour histograms tell an object moving from a new object (pure)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from workers.frames.evidence import (
    clean_step,
    colour_histogram,
    histogram_distance,
    novelty,
    progress_profile,
)
from workers.frames.prepass import change_fraction, change_scores
from workers.types import FrameSample


def _frame(*, square_x: int | None = 40, circle: bool = False, seed: int = 0) -> np.ndarray:
    """A textured grey picture with noise, a red square at ``square_x``, maybe a blue circle."""
    rng = np.random.default_rng(seed)
    x = np.arange(320)[None, :] + np.arange(180)[:, None]
    base = 100 + 25 * np.sin(2 * np.pi * x / 64)
    image = np.repeat(base[:, :, None], 3, axis=2) + rng.normal(0, 3, (180, 320, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    if square_x is not None:
        cv2.rectangle(image, (square_x, 60), (square_x + 30, 90), (230, 30, 30), -1)
    if circle:
        cv2.circle(image, (250, 130), 16, (30, 60, 230), -1)
    return image


def test_an_object_moving_across_the_frame_is_not_novel_a_new_one_is() -> None:
    still = _frame(square_x=40)
    moved = _frame(square_x=200, seed=1)  # the same square elsewhere, fresh noise
    new = _frame(square_x=40, circle=True, seed=1)
    assert novelty(still, moved) < 0.01
    assert novelty(still, new) > 2 * novelty(still, moved)
    assert novelty(still, new) > 0.01
    # Pixel-aligned differences cannot tell the two apart: the move changes more pixels.
    assert change_fraction(still, moved) > change_fraction(still, new)


def test_a_cut_is_all_novelty() -> None:
    other = np.full((180, 320, 3), (40, 160, 60), dtype=np.uint8)
    assert novelty(_frame(), other) > 0.9


def test_histograms_are_normalised_and_distance_is_half_l1() -> None:
    h = colour_histogram(_frame())
    assert h.shape == (64,) and h.sum() == pytest.approx(1.0)
    assert histogram_distance(h, h) == 0.0
    with pytest.raises(ValueError):
        colour_histogram(np.zeros((4, 4), dtype=np.uint8))


def test_progress_through_a_bracket_ignores_what_only_moves() -> None:
    # The square travels all along (8 px a frame); the circle appears at frame 4.
    frames = [_frame(square_x=20 + 8 * k, circle=k >= 4) for k in range(8)]
    progress = progress_profile(frames)
    assert progress[0] == 0.0 and progress[-1] == pytest.approx(1.0)
    assert max(progress[:4]) < 0.15 and min(progress[4:]) > 0.85
    assert clean_step(progress) == 4


def test_two_changes_in_a_bracket_make_no_clean_step() -> None:
    frames = [_frame(square_x=40 if k < 5 else None, circle=k >= 2, seed=k) for k in range(8)]
    assert clean_step(progress_profile(frames)) is None


def test_ends_that_do_not_differ_say_nothing() -> None:
    frames = [_frame(square_x=20 + 25 * k) for k in range(5)]  # same noise
    assert not any(progress_profile(frames))
    assert clean_step(progress_profile(frames)) is None


def test_the_prepass_scores_a_moving_object_low_and_a_new_one_high() -> None:
    threshold = 0.02  # VIDLOC_ADAPTIVE_CHANGE_THRESHOLD's default
    frames = [
        FrameSample(0.0, _frame(square_x=40)),
        FrameSample(0.25, _frame(square_x=70)),  # the square moved 30 px
        FrameSample(0.5, _frame(square_x=70, circle=True)),  # a new circle
    ]
    moved, new = change_scores(frames)
    assert moved < threshold / 4 and new > 3 * moved
    # The share of changed pixels alone would have called the move the bigger change.
    assert change_fraction(frames[0].image, frames[1].image) > new
