"""Cuts between already-decoded frames, scored with PySceneDetect's content detector (pure).

A change is reported at the **first sampled frame that shows the new state**: a cut at 12.3 s
sampled at 1 fps is reported at 13.0 s, in ``(previous sample, reported sample]``, so the error is
always in ``[0, one sampling period)``. The adaptive pre-pass and the cv localizer both use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import cv2
import numpy as np

from workers.types import FrameSample

if TYPE_CHECKING:
    # Imported where used: PySceneDetect's package imports PyAV, which a worker that only asks
    # the model never needs (PyAV lives in the decoder children; workers/frames/isolated.py).
    from scenedetect.common import FrameTimecode

# PySceneDetect's ContentDetector default: mean HSV change (0-255 scale) that counts as a cut.
DEFAULT_CUT_THRESHOLD = 27.0
# Our frames carry true times in seconds; a millisecond time base keeps them exact enough and
# gives every frame a distinct key in PySceneDetect's StatsManager (keyed by frame number).
_TIME_BASE = Fraction(1, 1000)
_TICKS_PER_S = 1000
# Channel spread (0-255) under which a pixel counts as grey; see detector_input.
DEFAULT_CHROMA_GATE = 16.0
# A frame this grey is judged on luma alone (see scored_cuts).
_GREY_FRAME_SHARE = 0.9


@dataclass(frozen=True)
class ScoredCut:
    """A cut between two consecutive sampled frames; ``t_s`` is the later one."""

    prev_t_s: float
    t_s: float
    score: float


def ordered_frames(frames: Iterable[FrameSample]) -> list[FrameSample]:
    """Frames in time order, one per millisecond tick.

    A frame source may return the same decoded frame for two requested times (sampling faster
    than the video's frame rate); comparing a frame with itself would fake a frozen picture.
    """
    out: list[FrameSample] = []
    last_tick: int | None = None
    for f in sorted(frames, key=lambda f: f.t_s):
        tick = round(f.t_s * _TICKS_PER_S)
        if tick != last_tick:
            out.append(f)
            last_tick = tick
    return out


def detector_input(
    image: np.ndarray, chroma_gate: float = DEFAULT_CHROMA_GATE
) -> tuple[np.ndarray, float]:
    """The BGR picture ContentDetector sees, and the share of it that is grey.

    ContentDetector averages hue, saturation and luma changes. On grey areas hue is pure noise
    (a few levels of sensor noise swing it across the whole circle), so a noisy grey shot scores
    about 25 against the default threshold of 27. Blurring tames the noise; forcing pixels whose
    channels differ by less than ``chroma_gate`` to grey gives them hue 0 in every frame. Real
    colour changes are far above the gate and keep their full hue difference.
    """
    # PySceneDetect's detectors take OpenCV's BGR order; our frames are RGB.
    bgr = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), (5, 5), 0)
    if chroma_gate <= 0:
        return bgr, 0.0
    chroma = bgr.max(axis=2).astype(np.int16) - bgr.min(axis=2)
    grey = chroma < chroma_gate
    bgr[grey] = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[grey][:, None]
    return bgr, float(np.count_nonzero(grey)) / grey.size


def _timecode(t_s: float) -> FrameTimecode:
    from scenedetect.common import FrameTimecode, Timecode

    tick = max(0, round(t_s * _TICKS_PER_S))
    return FrameTimecode(Timecode(pts=tick, time_base=_TIME_BASE), fps=Fraction(_TICKS_PER_S))


class _Scorer:
    """One PySceneDetect ContentDetector plus the StatsManager that reads its scores back."""

    def __init__(self, threshold: float, min_scene_len_s: float, luma_only: bool) -> None:
        from scenedetect.detectors import ContentDetector
        from scenedetect.stats_manager import StatsManager

        self.detector = ContentDetector(
            threshold=threshold, min_scene_len=float(min_scene_len_s), luma_only=luma_only
        )
        self.stats = StatsManager()
        self.detector.stats_manager = self.stats

    def feed(self, tc: FrameTimecode, bgr: np.ndarray) -> tuple[bool, float]:
        found = bool(self.detector.process_frame(tc, bgr))
        (score,) = self.stats.get_metrics(tc, [self.detector.FRAME_SCORE_KEY])
        return found, float(score) if score is not None else 0.0


def scored_cuts(
    frames: Iterable[FrameSample],
    *,
    threshold: float = DEFAULT_CUT_THRESHOLD,
    min_scene_len_s: float = 0.0,
    chroma_gate: float = DEFAULT_CHROMA_GATE,
) -> list[ScoredCut]:
    """Cuts between consecutive frames, with ContentDetector's score for each.

    Between two mostly grey frames (black-and-white footage, grey scenes) hue and saturation say
    nothing and would divide the luma change by three, so that pair is judged by a luma-only
    ContentDetector instead (PySceneDetect's own advice for such footage).

    ``min_scene_len_s`` defaults to 0 on purpose: with it, whether a cut is kept depends on cuts
    before it, so two overlapping chunks could disagree about a cut in their overlap. With 0, every
    pair of frames is judged on its own and both chunks report the same cuts there.
    """
    colour = _Scorer(threshold, min_scene_len_s, luma_only=False)
    luma = _Scorer(threshold, min_scene_len_s, luma_only=True)
    out: list[ScoredCut] = []
    prev_t: float | None = None
    prev_grey = 0.0
    for f in ordered_frames(frames):
        tc = _timecode(f.t_s)
        bgr, grey = detector_input(f.pixels(), chroma_gate)
        colour_found, colour_score = colour.feed(tc, bgr)
        luma_found, luma_score = luma.feed(tc, bgr)
        both_grey = min(grey, prev_grey) >= _GREY_FRAME_SHARE
        found, score = (luma_found, luma_score) if both_grey else (colour_found, colour_score)
        if found and prev_t is not None:
            out.append(ScoredCut(prev_t, f.t_s, score))
        prev_t, prev_grey = f.t_s, grey
    return out


def detect_cuts(
    frames: Iterable[FrameSample],
    threshold: float = DEFAULT_CUT_THRESHOLD,
    *,
    min_scene_len_s: float = 0.0,
    chroma_gate: float = DEFAULT_CHROMA_GATE,
) -> list[float]:
    """Times of the first sampled frame after each cut, ascending (see the module docstring)."""
    cuts = scored_cuts(
        frames, threshold=threshold, min_scene_len_s=min_scene_len_s, chroma_gate=chroma_gate
    )
    return [c.t_s for c in cuts]
