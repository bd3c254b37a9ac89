"""Folding segments into a stream timeline: joins across edges, gaps, skips, redeliveries."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.stream import StreamSegment, StreamState
from contracts.timeline import TimelineEvent
from workers.live.fold import GAP_LABEL, Fold, fold_segment

SEG = 3.0
JOIN = 0.75  # one sample period at 2 fps, plus slack


def seg(seq: int, start: float, **kw: object) -> StreamSegment:
    return StreamSegment.model_validate(
        {
            "stream_id": "cam1",
            "seq": seq,
            "start_s": start,
            "duration_s": SEG,
            "wall_clock": datetime(2026, 11, 29, tzinfo=UTC),
        }
        | kw
    )


def ev(label: str, start: float, end: float) -> TimelineEvent:
    return TimelineEvent(id="x", label=label, start_s=start, end_s=end)


def fold(
    prev: Fold | None, segment: StreamSegment, pieces: list[TimelineEvent], **kw: object
) -> Fold:
    events = prev.events if prev else ()
    state: StreamState | None = prev.state if prev else None
    return fold_segment(events, state, segment, pieces, join_s=JOIN, lag_s=0.5, **kw)  # type: ignore[arg-type]


def test_an_event_across_three_segments_is_reported_once_and_extended() -> None:
    a = fold(None, seg(0, 0.0), [ev("red circle", 1.5, 2.5)])
    b = fold(a, seg(1, 3.0), [ev("red circle", 0.0, 2.5)])
    c = fold(b, seg(2, 6.0), [ev("red circle", 0.0, 1.0), ev("blue triangle", 2.0, 2.5)])
    assert a.new_ids == ("s-00000",)
    assert b.new_ids == () and b.extended_ids == ("s-00000",)
    assert c.extended_ids == ("s-00000",) and c.new_ids == ("s-00001",)
    red = [e for e in c.events if e.label == "red circle"]
    assert [(e.id, e.start_s, e.end_s) for e in red] == [("s-00000", 1.5, 7.0)]
    assert c.state.last_seq == 2 and c.state.covered_s == 9.0 and c.state.segments == 3


def test_an_event_that_ended_before_the_edge_is_not_joined() -> None:
    a = fold(None, seg(0, 0.0), [ev("red circle", 0.5, 1.5)])
    b = fold(a, seg(1, 3.0), [ev("red circle", 0.0, 1.0)])
    assert b.new_ids == ("s-00001",) and b.extended_ids == ()


def test_a_source_drop_is_a_gap_event_and_breaks_joins() -> None:
    a = fold(None, seg(0, 0.0), [ev("red circle", 1.0, 2.5)])
    b = fold(a, seg(1, 8.0, gap_before_s=5.0), [ev("red circle", 0.0, 1.0)])
    gap = [e for e in b.events if e.label == GAP_LABEL]
    assert [(g.start_s, g.end_s) for g in gap] == [(3.0, 8.0)]
    assert [(s.start_s, s.end_s) for s in b.state.gaps] == [(3.0, 8.0)]
    assert len([e for e in b.events if e.label == "red circle"]) == 2


def test_a_clock_jump_without_announced_gap_is_still_a_gap() -> None:
    a = fold(None, seg(0, 0.0), [])
    b = fold(a, seg(1, 6.0), [])
    assert [(s.start_s, s.end_s) for s in b.state.gaps] == [(3.0, 6.0)]


def test_skipped_segments_become_one_span_and_nothing_joins_over_them() -> None:
    a = fold(None, seg(0, 0.0), [ev("red circle", 1.0, 2.5)])
    b = fold(a, seg(1, 3.0), [], skipped=True)
    c = fold(b, seg(2, 6.0), [], skipped=True)
    d = fold(c, seg(3, 9.0), [ev("red circle", 0.0, 1.0)])
    assert [(s.start_s, s.end_s) for s in d.state.skipped] == [(3.0, 9.0)]
    assert d.new_ids == ("s-00001",)
    assert not d.state.gaps


def test_a_redelivered_segment_changes_nothing() -> None:
    a = fold(None, seg(0, 0.0), [ev("red circle", 1.0, 2.5)])
    b = fold(a, seg(1, 3.0), [ev("red circle", 0.0, 1.0)])
    again = fold(b, seg(1, 3.0), [ev("red circle", 0.0, 3.0)])
    assert again.duplicate and again.events == b.events and again.state == b.state


def test_end_of_stream_marks_the_state_ended() -> None:
    a = fold(None, seg(0, 0.0), [])
    end = fold(a, seg(1, 3.0, duration_s=0.0, end_of_stream=True), [])
    assert end.state.ended and end.state.covered_s == 3.0 and not end.state.gaps
