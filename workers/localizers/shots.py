"""Shot boundaries from already-decoded frames, with PySceneDetect's detectors (pure: no I/O).

Times follow one convention everywhere in the cv localizer: a change is reported at the **first
sampled frame that shows the new state**. A cut at 12.3 s sampled at 1 fps is reported at 13.0 s;
it lies in ``(previous sample, reported sample]``, so the error is always in ``[0, one sampling
period)``. That is what "within one sampled frame" means in the tests.

Cuts are instants (``start_s == end_s``, label ``cut``); shots are derived from the merged cuts
with :func:`shots_from_cuts` and must not go through ``merge_events``: consecutive shots touch at
their cut and would be glued into one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np

from workers.frames.cuts import ScoredCut
from workers.types import DetectedEvent


def cut_confidence(score: float, threshold: float) -> float:
    """0.5 at the threshold, rising linearly to 1.0 at twice the threshold."""
    if threshold <= 0:
        return 1.0
    return float(np.clip(score / (2.0 * threshold), 0.5, 1.0))


def cut_event(cut: ScoredCut, threshold: float, source: str = "cv") -> DetectedEvent:
    return DetectedEvent(
        label="cut",
        start_s=cut.t_s,
        end_s=cut.t_s,
        description=(
            f"hard cut between {cut.prev_t_s:.1f} s and {cut.t_s:.1f} s "
            f"(content change {cut.score:.1f}, threshold {threshold:.1f})"
        ),
        confidence=round(cut_confidence(cut.score, threshold), 3),
        source=source,
    )


def shots_from_cuts(
    cuts: Iterable[float], duration_s: float, *, source: str = "cv"
) -> list[DetectedEvent]:
    """Shots ``[0, c1), [c1, c2), ..., [ck, duration]`` from merged cut times.

    Call it after ``merge_events`` (on the ``cut`` instants), never feed its output back to it.
    Cuts at 0 or at/after the end are ignored; ``duration_s`` <= 0 ends the last shot at the last
    cut (the video's length is unknown).
    """
    times = sorted({round(c, 3) for c in cuts if c > 0})
    if duration_s > 0:
        times = [c for c in times if c < duration_s]
        end = duration_s
    else:
        end = times[-1] if times else 0.0
    bounds: Sequence[float] = [0.0, *times, end]
    n = len(bounds) - 1
    shots: list[DetectedEvent] = []
    for i in range(n):
        start, stop = bounds[i], bounds[i + 1]
        if stop <= start:
            continue
        how = "from the start" if i == 0 else f"after the cut at {start:.1f} s"
        shots.append(
            DetectedEvent(
                label="shot",
                start_s=start,
                end_s=stop,
                description=f"shot {i + 1} of {n}, {how}",
                source=source,
            )
        )
    return shots


# Labels of states a hard cut ends: the picture after a cut is another picture.
STATE_LABELS = ("frozen", "black")


def split_at_cuts(
    events: Iterable[DetectedEvent], cuts: Iterable[float], labels: Sequence[str] = STATE_LABELS
) -> list[DetectedEvent]:
    """``events`` with every ``labels`` segment split at the cuts strictly inside it.

    Each chunk ends a frozen stretch at the first sample out of it, which for a cut is the
    first sample of the next stretch; ``merge_events`` then joins the two touching pieces into
    one segment running across the cut (a red still then a blue still came out "frozen
    0.48-6.0" beside "cut 3.48"). A cut inside a frozen or black segment is proof of two.
    Call it after merging, on the merged cut instants.
    """
    times = sorted(set(cuts))
    out: list[DetectedEvent] = []
    for event in events:
        inside = [c for c in times if event.start_s < c < event.end_s]
        if event.label not in labels or not inside:
            out.append(event)
            continue
        bounds = [event.start_s, *inside, event.end_s]
        out.extend(replace(event, start_s=a, end_s=b) for a, b in itertools.pairwise(bounds))
    return out
