"""Draw the frames of a synthetic video with OpenCV (pure: spec and index in, RGB array out)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from devkit.synth.palette import COLOUR_TOLERANCE, MIN_COVERAGE, PALETTE, entry_for_label
from devkit.synth.spec import VideoSpec
from workers.types import RGBImage

# Stripes keep shots from being flat colour (decoders and cut detectors behave differently on
# perfectly static content) while staying far from every palette colour.
_STRIPE_PERIOD = 64
_STRIPE_AMPLITUDE = 12
_STRIPE_SPEED_PX = 2  # per frame
# Each shape fits a square of this fraction of the frame area: circles cover ~11 %, stars ~5.6 %.
_SHAPE_AREA = 0.14


class FrameDrawer:
    """Draws frame ``i`` of a spec; caches one striped background tile per shot colour."""

    def __init__(self, spec: VideoSpec) -> None:
        self.spec = spec
        self._tiles: dict[tuple[int, int, int], RGBImage] = {}
        w, h = spec.size
        side = min(math.sqrt(_SHAPE_AREA * w * h), w / 2, h / 2) * 0.98
        self._half = int(side / 2)
        self._slots = {
            entry.label: (int(w * cx), int(h * cy))
            for entry, (cx, cy) in zip(
                PALETTE, ((0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)), strict=False
            )
        }

    def draw(self, index: int) -> RGBImage:
        spec = self.spec
        t = index / spec.fps
        w, h = spec.size
        if spec.is_black(t):
            return np.zeros((h, w, 3), dtype=np.uint8)
        content_t = spec.content_time(t)
        content_index = round(content_t * spec.fps)
        tile = self._tile(spec.background(content_t))
        offset = (content_index * _STRIPE_SPEED_PX) % _STRIPE_PERIOD
        frame = np.ascontiguousarray(tile[:, offset : offset + w])
        self._draw_mover(frame, content_index)
        for label in spec.labels_at(t):
            self._draw_shape(frame, label)
        return frame

    def _tile(self, colour: tuple[int, int, int]) -> RGBImage:
        tile = self._tiles.get(colour)
        if tile is None:
            w, h = self.spec.size
            x = np.arange(w + _STRIPE_PERIOD)
            y = np.arange(h)[:, None]
            wave = np.sin(2 * np.pi * (x[None, :] + y) / _STRIPE_PERIOD) * _STRIPE_AMPLITUDE
            base = np.array(colour, dtype=np.float32)[None, None, :]
            tile = np.clip(base + wave[:, :, None], 0, 255).astype(np.uint8)
            self._tiles[colour] = tile
        return tile

    def _draw_mover(self, frame: RGBImage, index: int) -> None:
        """A small white box sliding along the middle row: motion that is not an event."""
        h, w = frame.shape[:2]
        box = max(4, h // 12)
        x = (index * 3) % max(1, w - box)
        y = h // 2 - box // 2
        cv2.rectangle(frame, (x, y), (x + box, y + box), (255, 255, 255), thickness=-1)

    def _draw_shape(self, frame: RGBImage, label: str) -> None:
        entry = entry_for_label(label)
        cx, cy = self._slots[label]
        r = self._half
        colour = tuple(int(c) for c in entry.rgb)
        if entry.shape == "circle":
            cv2.circle(frame, (cx, cy), r, colour, thickness=-1)
        elif entry.shape == "square":
            side = int(r * 0.9)
            cv2.rectangle(frame, (cx - side, cy - side), (cx + side, cy + side), colour, -1)
        elif entry.shape == "triangle":
            pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], dtype=np.int32)
            cv2.fillPoly(frame, [pts], colour)
        else:  # star: five points, inner radius 0.55 of the outer one
            corners = []
            for k in range(10):
                radius = r if k % 2 == 0 else r * 0.55
                angle = -math.pi / 2 + k * math.pi / 5
                corners.append([cx + radius * math.cos(angle), cy + radius * math.sin(angle)])
            cv2.fillPoly(frame, [np.array(corners, dtype=np.int32)], colour)


def colour_coverage(image: RGBImage, rgb: tuple[int, int, int], tolerance: int) -> float:
    """Fraction of ``image`` pixels within ``tolerance`` of ``rgb`` on every channel."""
    diff = np.abs(image.astype(np.int16) - np.array(rgb, dtype=np.int16)[None, None, :])
    return float(np.mean(np.all(diff <= tolerance, axis=2)))


def visible_labels(image: RGBImage) -> tuple[str, ...]:
    """Palette labels whose colour covers enough of ``image`` to count as visible."""
    return tuple(
        entry.label
        for entry in PALETTE
        if colour_coverage(image, entry.rgb, COLOUR_TOLERANCE) >= MIN_COVERAGE
    )
