"""The cv pre-pass of adaptive sampling: small frames at a low rate -> change scores and cuts.

It costs decoding only, never model tokens. Scores feed :mod:`workers.frames.adaptive`; cuts are
located to the frame (a second, tiny decode between the two pre-pass frames around each cut) so
that boundary snapping can trust them.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workers.frames.cuts import scored_cuts
from workers.frames.evidence import colour_histogram, histogram_distance
from workers.frames.plan import frame_size_for, plan_sample_times
from workers.types import FrameSample, FrameSource, RGBImage, VideoInfo

log = logging.getLogger(__name__)

# A pixel "changed" when one of its channels moved by more than this (0-255). High enough to
# ignore codec noise and slow texture drift, low enough for a new object on any background.
CHANGE_LEVEL = 32
CUT_SCORE = 1.0  # the change score given to a pair of frames a cut separates
# Novelty is colour mass moved (a shape of 1 % of the frame appearing moves ~0.01); scaled so
# that such a shape scores about what its changed-pixel share used to against the threshold.
NOVELTY_SCALE = 2.0
_FALLBACK_FPS = 30.0


@dataclass(frozen=True)
class Prepass:
    times: tuple[float, ...]  # real times of the pre-pass frames
    scores: tuple[float, ...]  # change between times[i] and times[i + 1]
    cuts: tuple[float, ...]  # first frame of each new shot, to the frame
    frames_decoded: int


def change_fraction(a: RGBImage, b: RGBImage, level: int = CHANGE_LEVEL) -> float:
    """Share of pixels where some channel differs by more than ``level``."""
    if a.shape != b.shape:
        raise ValueError(f"frame shapes differ: {a.shape} vs {b.shape}")
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2)
    return float(np.mean(diff > level))


def change_scores(
    frames: Sequence[FrameSample], cut_after: Sequence[float] = ()
) -> tuple[float, ...]:
    """Score of each consecutive pair; a pair whose later frame starts a shot scores CUT_SCORE.

    The score is the smaller of the share of changed pixels and the novelty
    (``workers.frames.evidence``: colour mass that moved, scaled by NOVELTY_SCALE). Something
    new changes both. An object moving across the frame, a pan or a ticking clock change many
    pixels but few colours; scored by pixels alone they made the plan sample moving videos
    densely everywhere (issue 11). Texture drifting across a colour-bin edge moves colour but
    no pixel past CHANGE_LEVEL.
    """
    cut_keys = {round(t, 3) for t in cut_after}
    hists = [colour_histogram(f.pixels()) for f in frames]
    return tuple(
        CUT_SCORE
        if round(b.t_s, 3) in cut_keys
        else min(
            change_fraction(a.pixels(), b.pixels()), NOVELTY_SCALE * histogram_distance(ha, hb)
        )
        for (a, b), (ha, hb) in zip(
            itertools.pairwise(frames), itertools.pairwise(hists), strict=True
        )
    )


def run_prepass(
    source: FrameSource,
    path: str,
    info: VideoInfo,
    *,
    fps: float,
    long_side: int,
) -> Prepass:
    """Decode small frames at ``fps``, score the changes, and pin each cut to its frame."""
    size = frame_size_for(info.width, info.height, long_side)
    planned = plan_sample_times(info.duration_s, fps)
    frames = list(source.frames(path, planned, size))
    coarse_cuts = scored_cuts(frames)
    scores = change_scores(frames, [c.t_s for c in coarse_cuts])
    decoded = len(frames)
    cuts: list[float] = []
    native = info.fps if info.fps > 0 else _FALLBACK_FPS
    for cut in coarse_cuts:
        # Every native frame between the two pre-pass frames, plus those two as anchors.
        step = 1.0 / native
        n = int((cut.t_s - cut.prev_t_s) / step)
        inner = [
            cut.prev_t_s + k * step for k in range(1, n + 1) if cut.prev_t_s + k * step < cut.t_s
        ]
        window = [cut.prev_t_s, *inner, cut.t_s]
        dense = _distinct(list(source.frames(path, window, size)))
        decoded += len(dense)
        found = scored_cuts(dense)
        # The strongest change in the window is the cut; keep the coarse time if none shows.
        cuts.append(max(found, key=lambda c: c.score).t_s if found else cut.t_s)
    log.info(
        "pre-pass: %d frames at %.1f fps (%dx%d), %d cuts, %d frames decoded in all",
        len(frames),
        fps,
        size[0],
        size[1],
        len(cuts),
        decoded,
    )
    return Prepass(
        times=tuple(f.t_s for f in frames),
        scores=scores,
        cuts=tuple(sorted(set(cuts))),
        frames_decoded=decoded,
    )


def _distinct(frames: list[FrameSample]) -> list[FrameSample]:
    # Nearest-frame lookup can return one frame for two requested times: keep it once.
    out: list[FrameSample] = []
    for f in frames:
        if not out or round(f.t_s, 4) != round(out[-1].t_s, 4):
            out.append(f)
    return out
