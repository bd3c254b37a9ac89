"""Adaptive sampling plans: dense where the picture changes, sparse where it stands still (pure).

Input is what a cheap cv pre-pass measured: ``times`` of small pre-pass frames and, for each
consecutive pair, a change score in ``[0, 1]`` (share of pixels that changed, 1 for a cut).
Output is the instants the model will see:

* a sparse floor, uniform at ``min_fps``, so nothing long is ever unseen;
* for every change above ``threshold``, the two pre-pass instants that bracket it, so the model
  sees the picture just before and just after the change and any event boundary there is pinned
  to one pre-pass period (refinement narrows it further);
* changes are taken strongest first until ``max_frames`` (the token budget) is spent; when even
  the floor does not fit, the floor is thinned to leave room for at least as many change frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from workers.frames.plan import plan_sample_times

_KEY_DIGITS = 3  # instants closer than a millisecond are the same instant


@dataclass(frozen=True)
class Change:
    """The picture changed somewhere in ``(before_s, after_s]`` by ``score``."""

    before_s: float
    after_s: float
    score: float


def changes_over(times: Sequence[float], scores: Sequence[float], threshold: float) -> list[Change]:
    """Pairs of consecutive pre-pass instants whose change score reaches ``threshold``.

    ``scores[i]`` is the change between ``times[i]`` and ``times[i + 1]``.
    """
    if len(scores) != max(0, len(times) - 1):
        raise ValueError(f"{len(scores)} scores for {len(times)} times")
    return [
        Change(times[i], times[i + 1], float(s))
        for i, s in enumerate(scores)
        if s >= threshold and s > 0
    ]


def frames_for_budget(
    duration_s: float, tokens_per_minute: float | None, tokens_per_frame: int
) -> int | None:
    """How many frames a budget of ``tokens_per_minute`` buys for the whole video (None: no cap)."""
    if tokens_per_minute is None:
        return None
    if tokens_per_frame < 1:
        raise ValueError("tokens_per_frame must be >= 1")
    return max(1, math.floor(tokens_per_minute * duration_s / 60.0 / tokens_per_frame))


def plan_adaptive_times(
    duration_s: float,
    changes: Sequence[Change],
    *,
    min_fps: float,
    max_frames: int | None = None,
) -> tuple[float, ...]:
    """Sample instants: the ``min_fps`` floor plus both sides of each change, within the cap."""
    if min_fps <= 0:
        raise ValueError(f"min_fps must be > 0, got {min_fps}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    inside = [c for c in changes if 0 <= c.before_s < duration_s and c.after_s < duration_s]
    floor_cap = None
    if max_frames is not None:
        # The floor may take the whole budget only when nothing changes.
        floor_cap = max(1, max_frames - 2 * len(inside), max_frames // 4)
    floor = plan_sample_times(duration_s, min_fps, max_frames=floor_cap)
    chosen: dict[float, float] = {round(t, _KEY_DIGITS): t for t in floor}
    for change in sorted(inside, key=lambda c: (-c.score, c.before_s)):
        new = [t for t in (change.before_s, change.after_s) if round(t, _KEY_DIGITS) not in chosen]
        if max_frames is not None and len(chosen) + len(new) > max_frames:
            continue  # a weaker change may still fit if it shares an instant
        for t in new:
            chosen[round(t, _KEY_DIGITS)] = t
    return tuple(sorted(chosen.values()))


def snap_to_cut(t_s: float, cuts: Sequence[float], within_s: float) -> float:
    """The nearest cut when one lies within ``within_s`` of ``t_s``, else ``t_s`` itself.

    Events in edited video mostly start and end with a shot, and a cut is located to the frame
    by the cv pre-pass, so a boundary the model puts near a cut is moved onto it.
    """
    if within_s <= 0 or not cuts:
        return t_s
    nearest = min(cuts, key=lambda c: (abs(c - t_s), c))
    return nearest if abs(nearest - t_s) <= within_s else t_s
