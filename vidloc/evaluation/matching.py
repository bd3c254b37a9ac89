"""Temporal IoU and one-to-one matching of predicted to true intervals (pure).

Matching is **greedy by IoU**: every (truth, prediction) pair at or above the threshold is
ranked by IoU, highest first (ties by truth index, then prediction index), and taken when
neither side is matched yet. On interval data this agrees with the Hungarian optimum in all
but contrived cases and it is what ActivityNet/THUMOS detection evaluations do.
"""

from __future__ import annotations

from collections.abc import Sequence

Interval = tuple[float, float]


def tiou(a: Interval, b: Interval) -> float:
    """Temporal intersection over union of two ``(start, end)`` intervals.

    Zero-length intervals are treated as instants: two equal instants have IoU 1, an instant
    against anything else has IoU 0 (it covers no time).
    """
    a0, a1 = sorted(a)
    b0, b1 = sorted(b)
    inter = min(a1, b1) - max(a0, b0)
    union = max(a1, b1) - min(a0, b0)
    if union <= 0:
        return 1.0 if (a0, a1) == (b0, b1) else 0.0
    return max(0.0, inter) / union


def greedy_match(
    truth: Sequence[Interval], predicted: Sequence[Interval], threshold: float
) -> list[tuple[int, int, float]]:
    """One-to-one ``(truth_index, predicted_index, iou)`` pairs with ``iou >= threshold``."""
    pairs = [(tiou(t, p), ti, pi) for ti, t in enumerate(truth) for pi, p in enumerate(predicted)]
    pairs = [pair for pair in pairs if pair[0] >= threshold and pair[0] > 0]
    pairs.sort(key=lambda pair: (-pair[0], pair[1], pair[2]))
    used_t: set[int] = set()
    used_p: set[int] = set()
    out: list[tuple[int, int, float]] = []
    for iou, ti, pi in pairs:
        if ti in used_t or pi in used_p:
            continue
        used_t.add(ti)
        used_p.add(pi)
        out.append((ti, pi, iou))
    return sorted(out)
