"""Frame-time rules both frame sources and the probe share (pure).

Which frame answers a requested time ``t``: the last frame whose presentation time is at or
before ``t`` -- the frame a player shows at ``t`` -- or the first frame when ``t`` precedes it.
"""

from __future__ import annotations

from collections.abc import Sequence

# Tolerance when comparing a frame time with a requested time: containers store times in
# integer ticks, decord in float32, and a sample exactly on a frame must pick that frame.
TIME_EPS_S = 1e-4
# A clock going back by more than this is a restart (files joined end to end), not reordering.
RESTART_S = 0.5


def select_index(frame_times: Sequence[float], t: float) -> int:
    """Index of the frame shown at ``t`` in ascending ``frame_times`` (the rule above)."""
    lo, hi = 0, len(frame_times)
    while lo < hi:
        mid = (lo + hi) // 2
        if frame_times[mid] <= t + TIME_EPS_S:
            lo = mid + 1
        else:
            hi = mid
    return max(0, lo - 1)


def ends_early(
    last_frame_s: float, last_wanted_s: float, stated_s: float | None, fps: float
) -> bool:
    """Whether decoded frames stop well before both the last request and the stated duration.

    A stream may legitimately hold its last frame for a while (VFR, a still ending), so only a
    gap of more than ``max(1 s, 2 frames)`` against what the container claims counts as
    truncation.
    """
    if stated_s is None:
        return False
    slack = max(1.0, 2.0 / fps) if fps > 0 else 1.0
    return last_frame_s + slack < min(last_wanted_s, stated_s)
