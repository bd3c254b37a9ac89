"""Pure event selection for ``GET /videos/{id}/events``: fed a timeline's events, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from contracts import TimelineEvent


def check_window(start_s: float | None, end_s: float | None) -> None:
    """A window must not end before it starts (raises ValueError, a 422 to clients)."""
    if start_s is not None and end_s is not None and end_s < start_s:
        raise ValueError(f"end_s {end_s:g} is before start_s {start_s:g}")


def select_events(
    events: Iterable[TimelineEvent],
    *,
    labels: Sequence[str] = (),
    start_s: float | None = None,
    end_s: float | None = None,
) -> list[TimelineEvent]:
    """Events with one of ``labels`` (case-insensitive; none = all) that overlap the window.

    Overlap, not containment: a user asking "what happens between 10 s and 20 s" wants the
    event that started at 8 s and is still going. Touching ends count (closed intervals), so a
    zero-length event at exactly ``start_s`` is found. Sorted by start, then end, then label.
    """
    check_window(start_s, end_s)
    wanted = {label.casefold() for label in labels}
    chosen = [
        event
        for event in events
        if (not wanted or event.label.casefold() in wanted)
        and (start_s is None or event.end_s >= start_s)
        and (end_s is None or event.start_s <= end_s)
    ]
    return sorted(chosen, key=lambda e: (e.start_s, e.end_s, e.label, e.id))
