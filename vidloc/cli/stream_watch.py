"""How ``vidloc watch --stream ID`` prints a live stream's updates: one line per event found,
extended, or lost to a gap, and one when the stream ends. Pure: a result in, lines out."""

from __future__ import annotations

from rich.markup import escape

from contracts import ResultEvent


def stream_lines(result: ResultEvent) -> list[str]:
    """The lines one partial (or final) stream result gives, in rich markup."""
    update = result.stream
    if update is None:
        return []
    sid = escape(update.stream_id)
    by_id = {e.id: e for e in update.events}
    lines = []
    if update.skipped:
        lines.append(
            f"[yellow]{sid}[/yellow] segment {update.seq} skipped to stay live "
            f"(lag {update.lag_s:.1f} s)"
        )
    for ident in update.new_events:
        e = by_id.get(ident)
        if e is None:
            continue
        if e.label == "gap" and e.source == "stream":
            lines.append(
                f"[yellow]{sid}[/yellow] gap {e.start_s:.1f}-{e.end_s:.1f} s (no video from source)"
            )
        else:
            lines.append(
                f"[green]{sid}[/green] + {escape(e.id)} {escape(e.label)} "
                f"{e.start_s:.1f}-{e.end_s:.1f} s"
            )
    for ident in update.extended_events:
        e = by_id.get(ident)
        if e is not None:
            lines.append(
                f"[green]{sid}[/green] ~ {escape(e.id)} {escape(e.label)} "
                f"continues to {e.end_s:.1f} s"
            )
    if update.ended:
        lines.append(
            f"[bold]{sid}[/bold] ended: {result.summary.events} events in "
            f"{result.summary.duration_s:.1f} s"
        )
    return lines
