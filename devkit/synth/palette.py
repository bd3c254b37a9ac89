"""The visual vocabulary of synthetic videos, shared by the generator and the fake model server.

Each event in a synthetic video is one shape drawn in one saturated colour; the colour alone
identifies the label, so the fake model server can "see" events by counting pixels. Shot
backgrounds use desaturated colours that are never confused with the palette.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaletteEntry:
    label: str  # what a model should call it, e.g. "red circle"
    shape: str  # circle | square | triangle | star
    rgb: tuple[int, int, int]


PALETTE: tuple[PaletteEntry, ...] = (
    PaletteEntry("red circle", "circle", (230, 30, 30)),
    PaletteEntry("green square", "square", (30, 200, 40)),
    PaletteEntry("blue triangle", "triangle", (30, 60, 230)),
    PaletteEntry("yellow star", "star", (240, 220, 20)),
)

# Desaturated shot backgrounds: a hard cut is a change from one to another.
BACKGROUNDS: tuple[tuple[int, int, int], ...] = (
    (70, 70, 80),
    (150, 140, 130),
    (40, 55, 50),
    (110, 100, 120),
    (180, 180, 170),
    (90, 80, 60),
)

# A pixel belongs to a palette colour when every channel is within this distance of it.
COLOUR_TOLERANCE = 60
# Fraction of an image's pixels a colour must cover to count as "visible".
MIN_COVERAGE = 0.004


def entry_for_label(label: str) -> PaletteEntry:
    for entry in PALETTE:
        if entry.label == label:
            return entry
    raise KeyError(label)
