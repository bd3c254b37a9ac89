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
# Moving clips: shapes a tenth of the frame height in radius, one horizontal lane per palette
# entry (so they never occlude each other), each at its own speed; a pan scrolls a stronger
# texture (pixel differences above the pre-pass's change level, as in real footage).
_LANES = (0.2, 0.4, 0.6, 0.8)
_SPEEDS_PX_S = (55.0, 80.0, 40.0, 65.0)
_PAN_AMPLITUDE = 30


class FrameDrawer:
    """Draws frame ``i`` of a spec; caches one striped background tile per shot colour."""

    def __init__(self, spec: VideoSpec) -> None:
        self.spec = spec
        self._tiles: dict[tuple[int, int, int], RGBImage] = {}
        w, h = spec.size
        side = min(math.sqrt(_SHAPE_AREA * w * h), w / 2, h / 2) * 0.98
        self._half = int(side / 2)
        if spec.moving_shapes:
            self._half = max(8, h // 10)
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
        if spec.pan_px_per_s:
            offset = int(content_t * spec.pan_px_per_s) % _STRIPE_PERIOD
        frame = np.ascontiguousarray(tile[:, offset : offset + w])
        self._draw_mover(frame, content_index)
        if spec.clock:
            self._draw_clock(frame, content_t)
        for label in spec.labels_at(t):
            self._draw_shape(frame, label, content_t)
        if spec.noise > 0:
            rng = np.random.default_rng(spec.seed * 1_000_003 + index)
            noisy = frame.astype(np.float32) + rng.normal(0.0, spec.noise, frame.shape)
            frame = np.clip(noisy, 0, 255).astype(np.uint8)
        return frame

    def _tile(self, colour: tuple[int, int, int]) -> RGBImage:
        tile = self._tiles.get(colour)
        if tile is None:
            w, h = self.spec.size
            x = np.arange(w + _STRIPE_PERIOD)
            y = np.arange(h)[:, None]
            amplitude = _PAN_AMPLITUDE if self.spec.pan_px_per_s else _STRIPE_AMPLITUDE
            wave = np.sin(2 * np.pi * (x[None, :] + y) / _STRIPE_PERIOD) * amplitude
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

    def _draw_clock(self, frame: RGBImage, t_s: float) -> None:
        """mm:ss in white at the bottom left, ticking once a second: change that is no event."""
        h = frame.shape[0]
        seconds = int(t_s)
        text = f"{seconds // 60:02d}:{seconds % 60:02d}"
        scale = h / 300
        cv2.putText(frame, text, (4, h - 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2)

    def _centre(self, label: str, t_s: float) -> tuple[int, int]:
        if not self.spec.moving_shapes:
            return self._slots[label]
        w, h = self.spec.size
        k = next(i for i, entry in enumerate(PALETTE) if entry.label == label)
        margin = self._half + 2
        run = max(1, w - 2 * margin)
        # A triangle wave: to the right edge and back, the whole shape always inside the frame.
        pos = (k * run / 2 + _SPEEDS_PX_S[k] * t_s) % (2 * run)
        x = margin + (pos if pos <= run else 2 * run - pos)
        return int(x), int(h * _LANES[k])

    def _draw_shape(self, frame: RGBImage, label: str, t_s: float = 0.0) -> None:
        entry = entry_for_label(label)
        cx, cy = self._centre(label, t_s)
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
