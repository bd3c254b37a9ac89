"""Cheap pixel evidence about where the picture changes (pure: frames in, numbers out).

The signal is the distance between coarse colour histograms of small frames. A histogram does
not care where things are, so an object moving across the frame, a camera pan over a uniform
texture, a ticking clock's few digits or sensor noise barely move it, while something new
entering the picture (a differently coloured object, a cut) does. Pixel-aligned differences
score all of those alike, which made the adaptive pre-pass sample moving videos everywhere.

Used twice: by the adaptive pre-pass as its change score (``workers.frames.prepass``), and by
boundary refinement to find where inside a bracket the picture changes, which decides which
frames the model is shown or settles a boundary without asking (``workers.refinement.search``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from workers.types import RGBImage

Histogram = npt.NDArray[np.float64]

BINS_PER_CHANNEL = 4  # 64 colour cells: coarse enough that noise and codec drift stay inside
_STRIDE_TARGET_PX = 96  # frames are subsampled to about this long side before counting
# The two ends of a bracket must differ at least this much (share of colour mass) for the
# pixels to say anything about what happened between them.
MIN_END_CHANGE = 0.006
# A clean step: every frame before it at most this far from the near end's picture, every frame
# from it on at least ``1 - CLEAN_LEVEL`` of the way to the far end's.
CLEAN_LEVEL = 0.15
# ... and no other step in the bracket moves more colour mass than this: a shape leaving just
# before a cut is a small change the cut's large one would hide in the projection.
OTHER_CHANGE_MAX = 0.012


def colour_histogram(image: RGBImage, bins: int = BINS_PER_CHANNEL) -> Histogram:
    """Normalised joint RGB histogram (``bins``**3 cells) of a subsampled ``image``."""
    if image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise ValueError(f"expected an H x W x 3 image, got shape {image.shape}")
    if 256 % bins:
        raise ValueError(f"bins must divide 256, got {bins}")
    stride = max(1, max(image.shape[:2]) // _STRIDE_TARGET_PX)
    small = image[::stride, ::stride].reshape(-1, 3).astype(np.int32) // (256 // bins)
    cells = (small[:, 0] * bins + small[:, 1]) * bins + small[:, 2]
    counts = np.bincount(cells, minlength=bins**3).astype(np.float64)
    return counts / counts.sum()


def histogram_distance(a: Histogram, b: Histogram) -> float:
    """Share of colour mass that moved between two histograms, in ``[0, 1]`` (half the L1)."""
    if a.shape != b.shape:
        raise ValueError(f"histogram shapes differ: {a.shape} vs {b.shape}")
    return float(np.abs(a - b).sum() / 2.0)


def novelty(a: RGBImage, b: RGBImage) -> float:
    """How much new content ``b`` shows compared with ``a``, blind to where things moved."""
    return histogram_distance(colour_histogram(a), colour_histogram(b))


def step_profile(images: Sequence[RGBImage]) -> tuple[float, ...]:
    """Novelty of each consecutive pair: ``steps[k]`` is between ``images[k]`` and ``[k + 1]``."""
    hists = [colour_histogram(image) for image in images]
    return tuple(histogram_distance(a, b) for a, b in itertools.pairwise(hists))


def progress_profile(images: Sequence[RGBImage]) -> tuple[float, ...]:
    """How far each frame has gone from the first one's picture towards the last one's.

    Histograms are projected on the difference between the two ends, so only the colours
    that changed between them count (whatever else moves or flickers in the picture cancels
    out): 0 is "like the first frame", 1 "like the last". All zeros when the ends hardly
    differ (below ``MIN_END_CHANGE``): then the colours say nothing.
    """
    hists = [colour_histogram(image) for image in images]
    return progress_of(hists)


def progress_of(hists: Sequence[Histogram]) -> tuple[float, ...]:
    """:func:`progress_profile` on histograms already computed."""
    if len(hists) < 2:
        return tuple(0.0 for _ in hists)
    first, last = hists[0], hists[-1]
    direction = last - first
    if histogram_distance(first, last) < MIN_END_CHANGE:
        return tuple(0.0 for _ in hists)
    norm = float(direction @ direction)
    return tuple(float((h - first) @ direction) / norm for h in hists)


def strongest_step(steps: Sequence[float], lo: int = 0, hi: int | None = None) -> int | None:
    """Index of the largest step in ``steps[lo:hi]`` (the earliest on ties), None if empty."""
    hi = len(steps) if hi is None else hi
    if lo >= hi:
        return None
    return max(range(lo, hi), key=lambda k: (steps[k], -k))


def clean_step(progress: Sequence[float], level: float = CLEAN_LEVEL) -> int | None:
    """The index ``k`` of the first frame past the change when the progress profile is one
    clean step (``progress[:k]`` all near the first frame, ``progress[k:]`` all near the
    last), else None: the pixels alone cannot place the change.

    A bracket runs from a frame known to be before a boundary to one known to be after it.
    When the colours that differ between those two switch over once and for all, the change
    happened there. Two things changing in the bracket (two boundaries, or a cut beside the
    event) make two half steps; colours that hardly change make no step: both are left to
    the model.
    """
    if len(progress) < 2 or not any(progress):
        return None
    for k in range(1, len(progress)):
        if all(p <= level for p in progress[:k]) and all(p >= 1 - level for p in progress[k:]):
            return k
    return None
