"""Pure geometry of the viewer: one track per label, events as bars in percent of duration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from contracts import TimelineEvent

# Categorical colours with enough contrast on a dark background (Tableau 10).
COLOURS = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
# A zero-length event (a cut) still needs a bar a user can see and click.
MIN_WIDTH_PCT = 0.4


@dataclass(frozen=True)
class Bar:
    event_id: str
    label: str
    start_s: float
    end_s: float
    left_pct: float
    width_pct: float
    description: str
    confidence: float | None
    source: str | None = None  # "stream" for what a live stream itself records (gaps)


@dataclass(frozen=True)
class Track:
    label: str
    colour: str
    bars: tuple[Bar, ...]


def span_s(duration_s: float, events: Sequence[TimelineEvent]) -> float:
    """The length the bars are scaled to: the video's duration, stretched to cover any event
    a model placed past the end (so no bar falls off the track), never zero."""
    latest = max((e.end_s for e in events), default=0.0)
    return max(duration_s, latest, 1e-3)


def layout_tracks(duration_s: float, events: Sequence[TimelineEvent]) -> list[Track]:
    """Tracks sorted by label; bars sorted by start within a track."""
    span = span_s(duration_s, events)
    labels = sorted({e.label for e in events})
    tracks = []
    for index, label in enumerate(labels):
        bars = tuple(
            Bar(
                event_id=e.id,
                label=label,
                start_s=e.start_s,
                end_s=e.end_s,
                left_pct=min(100.0 - MIN_WIDTH_PCT, 100.0 * e.start_s / span),
                width_pct=max(MIN_WIDTH_PCT, 100.0 * (e.end_s - e.start_s) / span),
                description=e.description,
                confidence=e.confidence,
                source=e.source,
            )
            for e in sorted(events, key=lambda e: (e.start_s, e.end_s, e.id))
            if e.label == label
        )
        tracks.append(Track(label=label, colour=COLOURS[index % len(COLOURS)], bars=bars))
    return tracks


def ruler_ticks(span: float, *, target: int = 10) -> list[float]:
    """Round tick positions (1, 2, 5 x 10^n seconds) giving about ``target`` ticks."""
    raw = span / max(target, 1)
    steps = [mult * 10.0**exp for exp in range(-1, 6) for mult in (1.0, 2.0, 5.0)]
    step = next((s for s in steps if s >= raw), steps[-1])
    return [round(i * step, 6) for i in range(int(span / step) + 1)]
