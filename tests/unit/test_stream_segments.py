"""The producer's segment bookkeeping: FFmpeg's list, the stream clock, the resume state."""

from __future__ import annotations

import pytest

from producers.segments import (
    ConnectionClock,
    ListedSegment,
    ProducerState,
    parse_segment_list,
    segment_key,
)


def test_only_complete_lines_of_the_list_count() -> None:
    text = "000000.ts,1.400000,4.400000\n000001.ts,4.400000,7.40\n000002.ts,7.4"
    assert parse_segment_list(text) == [
        ListedSegment("000000.ts", 1.4, 4.4),
        ListedSegment("000001.ts", 4.4, 7.4),
    ]


def test_a_file_name_with_commas_survives() -> None:
    assert parse_segment_list("a,b.ts,0,3\n") == [ListedSegment("a,b.ts", 0.0, 3.0)]


def test_first_connection_starts_the_clock_at_zero() -> None:
    clock = ConnectionClock(stream_end_s=0.0, offset_s=0.0)
    first = clock.place(ListedSegment("0.ts", 1.4, 4.4))
    second = clock.place(ListedSegment("1.ts", 4.4, 7.4))
    assert (first.start_s, first.duration_s, first.gap_before_s) == (0.0, 3.0, 0.0)
    assert (second.start_s, second.gap_before_s) == (3.0, 0.0)


@pytest.mark.parametrize(
    ("offset", "start", "gap"),
    [
        pytest.param(17.0, 17.0, 5.0, id="drop-of-5s"),
        pytest.param(12.3, 12.0, 0.0, id="jitter-is-no-gap"),
        pytest.param(10.0, 12.0, 0.0, id="clock-never-runs-back"),
    ],
)
def test_a_later_connection_starts_where_the_wall_clock_says(
    offset: float, start: float, gap: float
) -> None:
    clock = ConnectionClock(stream_end_s=12.0, offset_s=offset)
    placed = clock.place(ListedSegment("0.ts", 95.0, 98.0))  # the source's own timestamps
    assert (placed.start_s, placed.gap_before_s) == (start, gap)
    assert clock.place(ListedSegment("1.ts", 98.0, 101.0)).start_s == start + 3.0


def test_state_round_trips_and_refuses_another_stream() -> None:
    state = ProducerState("cam1", next_seq=7, origin_wall=1.5e9, end_s=21.0, last_event={"a": 1})
    again = ProducerState.decode(state.encode(), "cam1")
    assert again == state and again.last_event == {"a": 1}
    with pytest.raises(ValueError, match="cam2"):
        ProducerState.decode(state.encode(), "cam2")


def test_segment_keys_sort_in_sequence_order() -> None:
    keys = [segment_key("cam1", n) for n in (10, 9, 100)]
    assert sorted(keys) == [segment_key("cam1", n) for n in (9, 10, 100)]
