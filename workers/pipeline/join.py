"""Join pieces of one event that no sample separates (pure).

``merge_events`` joins same-label pieces closer than a fixed gap, which suits uniform sampling.
Sparse (adaptive) sampling leaves seconds between samples, and an event cut by a chunk boundary
comes back as pieces further apart than any fixed gap. The evidence that two pieces are two
events is a sample between them where the label was absent; without one, they are one event.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace

from workers.types import DetectedEvent, normalise_label


def join_unseparated(
    events: Iterable[DetectedEvent],
    sample_times: Sequence[float],
    slack_s: float = 1e-3,
    *,
    join_instants: bool = False,
) -> list[DetectedEvent]:
    """Stretch each interval over a following same-label interval when no sample lies between.

    ``sample_times`` are planned instants; the decoder shows the nearest frame, whose own time
    may differ by up to a frame period, so a sample within ``slack_s`` of either piece does not
    count as lying between them (pass about one source frame period).

    ``join_instants``: a model that saw an event on one frame of a chunk (often the last frame
    of an overlap) reports an instant; with this set, such instants join like intervals. Leave
    it off for cv cuts, where two cuts one sample apart are two cuts.

    Returns the pieces with the earlier of each joined pair widened to cover the later one, so
    ``merge_events`` then collapses them; instants and other labels pass through untouched.
    """
    ts = sorted(sample_times)
    groups: dict[str, list[DetectedEvent]] = defaultdict(list)
    out: list[DetectedEvent] = []
    for ev in events:
        if ev.end_s > ev.start_s or (join_instants and ev.end_s == ev.start_s):
            groups[normalise_label(ev.label)].append(ev)
        else:
            out.append(ev)
    for pieces in groups.values():
        pieces.sort(key=lambda e: (e.start_s, e.end_s))
        reach = [p.end_s for p in pieces]
        # Walk backwards so a chain a-b-c where no sample separates any pair joins fully.
        for k in range(len(pieces) - 2, -1, -1):
            a, b = pieces[k], pieces[k + 1]
            if b.start_s >= a.end_s and not _sample_between(ts, a.end_s, b.start_s, slack_s):
                reach[k] = max(reach[k], reach[k + 1])
        out.extend(
            replace(p, end_s=r) if r != p.end_s else p for p, r in zip(pieces, reach, strict=True)
        )
    return out


def _sample_between(ts: Sequence[float], lo: float, hi: float, slack_s: float) -> bool:
    """Whether some sample time lies inside ``(lo + slack_s, hi - slack_s)``."""
    i = bisect.bisect_right(ts, lo + slack_s)
    return i < len(ts) and ts[i] < hi - slack_s
