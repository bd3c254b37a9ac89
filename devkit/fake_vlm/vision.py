"""What the fake model "sees": palette colours in frames, turned into events. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from devkit.synth.palette import COLOUR_TOLERANCE, MIN_COVERAGE, PALETTE, PaletteEntry
from workers.model import tokens

CONFIDENCE = 0.9
RGBImage = npt.NDArray[np.uint8]  # H x W x 3, RGB order


@dataclass(frozen=True)
class Sighting:
    """The palette labels visible in one frame shown at ``t_s``."""

    t_s: float
    labels: frozenset[str]
    tokens: int = 0  # what the image costs in prompt tokens


def image_tokens(width: int, height: int) -> int:
    """What the real server bills for an image: Qwen3-VL's processor resizes it first (sides
    rounded to 32 px, small images scaled up), then one token per 32x32 px, plus two markers."""
    return tokens.image_tokens(width, height) + tokens.VISION_MARKER_TOKENS


def visible_labels(image: RGBImage, palette: Sequence[PaletteEntry] = PALETTE) -> frozenset[str]:
    """Labels whose colour covers at least MIN_COVERAGE of the image (within tolerance)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        return frozenset()
    pixels = np.ascontiguousarray(image, dtype=np.uint8)
    total = image.shape[0] * image.shape[1]
    seen = set()
    for entry in palette:
        # Every channel within COLOUR_TOLERANCE of the entry's: OpenCV's range test in C, ~30x
        # NumPy's int16 abs-and-all. The fake runs on the machine it benchmarks (bench/), where
        # at 12 ms a frame it took more than a core from the workers being measured.
        centre = np.array(entry.rgb, dtype=np.int16)
        low = np.clip(centre - COLOUR_TOLERANCE, 0, 255).astype(np.uint8)
        high = np.clip(centre + COLOUR_TOLERANCE, 0, 255).astype(np.uint8)
        if cv2.countNonZero(cv2.inRange(pixels, low, high)) >= MIN_COVERAGE * total:
            seen.add(entry.label)
    return frozenset(seen)


def events_from_sightings(
    sightings: Iterable[Sighting], wanted: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """One event per run of consecutive frames showing a label: first to last frame seen.

    ``wanted`` (labels the user asked for) filters the output; None means report everything.
    """
    frames = sorted(sightings, key=lambda s: s.t_s)
    wanted_set = None if wanted is None else {w.strip().lower() for w in wanted}
    open_runs: dict[str, tuple[float, float]] = {}
    events: list[dict[str, Any]] = []

    def close(label: str) -> None:
        start, end = open_runs.pop(label)
        events.append(
            {
                "label": label,
                "start_s": round(start, 3),
                "end_s": round(end, 3),
                "description": f"a {label} is visible",
                "confidence": CONFIDENCE,
            }
        )

    for frame in frames:
        labels = frame.labels
        if wanted_set is not None:
            labels = frozenset(label for label in labels if label.lower() in wanted_set)
        for label in list(open_runs):
            if label not in labels:
                close(label)
        for label in sorted(labels):
            start = open_runs.get(label, (frame.t_s, frame.t_s))[0]
            open_runs[label] = (start, frame.t_s)
    for label in sorted(open_runs):
        close(label)
    events.sort(key=lambda e: (e["start_s"], e["label"]))
    return events
