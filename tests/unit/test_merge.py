"""merge_events / assign_event_ids: chunk-boundary pieces come out once, nothing lost or doubled."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.pipeline.merge import assign_event_ids, merge_events
from workers.types import DetectedEvent, normalise_label


def ev(
    label: str, start: float, end: float, desc: str = "", conf: float | None = None
) -> DetectedEvent:
    return DetectedEvent(label=label, start_s=start, end_s=end, description=desc, confidence=conf)


def spans(events: tuple[DetectedEvent, ...]) -> list[tuple[str, float, float]]:
    return [(e.label, e.start_s, e.end_s) for e in events]


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        pytest.param([(25, 30), (30, 41)], [(25, 41)], id="touching-at-boundary"),
        pytest.param([(25, 32), (30, 41)], [(25, 41)], id="overlapping-chunks"),
        pytest.param([(25, 30), (31, 41)], [(25, 41)], id="one-sample-hole"),
        pytest.param([(25, 30), (32, 41)], [(25, 30), (32, 41)], id="real-gap-stays-two"),
        pytest.param([(10, 20), (12, 15)], [(10, 20)], id="contained"),
        pytest.param([(0, 2), (2.5, 4), (4.9, 8)], [(0, 8)], id="chain"),
    ],
)
def test_same_label_pieces(
    pieces: list[tuple[float, float]], expected: list[tuple[float, float]]
) -> None:
    out = merge_events([ev("person walks", s, e) for s, e in pieces])
    assert [(e.start_s, e.end_s) for e in out] == expected


def test_distinct_labels_never_merged() -> None:
    out = merge_events([ev("black", 10, 20), ev("frozen", 10, 20), ev("black", 20, 25)])
    assert spans(out) == [("black", 10, 25), ("frozen", 10, 20)]


def test_label_normalised_for_identity_but_kept_for_display() -> None:
    out = merge_events([ev("Dog  Barks", 0, 5, "short"), ev(" dog barks", 5, 12, "long one")])
    assert len(out) == 1
    assert (out[0].start_s, out[0].end_s) == (0, 12)
    # The longer piece speaks for the merged event: its description and its spelling.
    assert out[0].description == "long one"
    assert out[0].label == " dog barks"
    assert normalise_label(out[0].label) == "dog barks"


def test_confidence_is_max_and_none_is_ignored() -> None:
    out = merge_events([ev("x", 0, 5, conf=0.4), ev("x", 4, 9, conf=None), ev("x", 8, 9, conf=0.9)])
    assert len(out) == 1
    assert out[0].confidence == 0.9
    assert merge_events([ev("x", 0, 5), ev("x", 4, 9)])[0].confidence is None


def test_instants_are_joined_only_with_the_same_instant() -> None:
    cuts = [ev("cut", 32.0, 32.0, "a"), ev("cut", 32.0, 32.0, "b"), ev("cut", 33.0, 33.0)]
    out = merge_events(cuts)
    # Both chunks saw the cut at 32 s: once. A cut one sample later is a different cut.
    assert spans(out) == [("cut", 32.0, 32.0), ("cut", 33.0, 33.0)]


def test_instant_inside_interval_is_absorbed() -> None:
    out = merge_events([ev("goal", 30, 35, "run", 0.5), ev("goal", 32, 32, "kick", 0.8)])
    assert spans(out) == [("goal", 30, 35)]
    assert out[0].description == "run"
    assert out[0].confidence == 0.8


def test_instant_near_but_outside_interval_stays() -> None:
    out = merge_events([ev("goal", 30, 35), ev("goal", 35.5, 35.5)])
    assert spans(out) == [("goal", 30, 35), ("goal", 35.5, 35.5)]


def test_reversed_piece_is_treated_as_its_span() -> None:
    assert spans(merge_events([ev("x", 9, 4)])) == [("x", 4, 9)]


def test_output_sorted_by_start_then_label() -> None:
    out = merge_events([ev("b", 5, 6), ev("a", 5, 7), ev("c", 1, 2)])
    assert [(e.start_s, e.label) for e in out] == [(1, "c"), (5, "a"), (5, "b")]


def test_min_iou_same_keeps_weakly_overlapping_reports_apart() -> None:
    pieces = [ev("x", 0, 10), ev("x", 9, 20)]  # IoU 1/20
    assert len(merge_events(pieces, min_iou_same=0.5)) == 2
    assert len(merge_events(pieces)) == 1
    # Touching pieces are still joined in the strict mode: that is the chunk-boundary case.
    assert len(merge_events([ev("x", 0, 10), ev("x", 10, 20)], min_iou_same=0.5)) == 1


def test_negative_gap_rejected() -> None:
    with pytest.raises(ValueError):
        merge_events([], gap_s=-1)


def test_event_ids_stable_unique_and_in_order() -> None:
    events = merge_events([ev("cut", 5, 5), ev("black", 1, 3), ev("frozen", 8, 12)])
    first = assign_event_ids(events, "vid-1")
    again = assign_event_ids(list(reversed(events)), "vid-1")
    assert first == again
    assert [e for _, e in first] == list(events)
    ids = [i for i, _ in first]
    assert len(set(ids)) == 3 and all(i.startswith("evt-") for i in ids)
    # Another video never shares ids; adding an event does not renumber the others.
    assert not set(ids) & {i for i, _ in assign_event_ids(events, "vid-2")}
    grown = dict((e, i) for i, e in assign_event_ids([*events, ev("cut", 0.5, 0.5)], "vid-1"))
    assert all(grown[e] == i for i, e in first)


def test_event_ids_unique_for_exact_duplicates() -> None:
    ids = [i for i, _ in assign_event_ids([ev("x", 1, 2), ev("x", 1, 2)], "v")]
    assert len(set(ids)) == 2


# --- properties -------------------------------------------------------------------------------

LABELS = ["cut", "Cut ", "black", "person  walks", "Person walks"]
times = st.integers(min_value=0, max_value=120).map(lambda n: n / 2)  # half seconds: many ties


@st.composite
def pieces(draw: st.DrawFn) -> DetectedEvent:
    start = draw(times)
    length = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 5.0, 12.5]))
    return DetectedEvent(
        label=draw(st.sampled_from(LABELS)),
        start_s=start,
        end_s=start + length,
        description=draw(st.sampled_from(["", "a", "b"])),
        confidence=draw(st.one_of(st.none(), st.sampled_from([0.1, 0.5, 0.9]))),
        source="cv",
    )


event_lists = st.lists(pieces(), max_size=25)
GAP = 1.0


@settings(max_examples=150, deadline=None)
@given(event_lists, st.randoms(use_true_random=False))
def test_order_independent(events: list[DetectedEvent], rnd: random.Random) -> None:
    shuffled = list(events)
    rnd.shuffle(shuffled)
    assert merge_events(shuffled, gap_s=GAP) == merge_events(events, gap_s=GAP)


@settings(max_examples=150, deadline=None)
@given(event_lists)
def test_no_event_lost(events: list[DetectedEvent]) -> None:
    out = merge_events(events, gap_s=GAP)
    for e in events:
        assert any(
            normalise_label(o.label) == normalise_label(e.label)
            and o.start_s <= e.start_s
            and e.end_s <= o.end_s
            for o in out
        ), e


@settings(max_examples=150, deadline=None)
@given(event_lists)
def test_none_duplicated(events: list[DetectedEvent]) -> None:
    out = merge_events(events, gap_s=GAP)
    for i, a in enumerate(out):
        for b in out[i + 1 :]:
            if normalise_label(a.label) != normalise_label(b.label):
                continue
            first, second = sorted((a, b), key=lambda e: (e.start_s, e.end_s))
            if first.end_s > first.start_s and second.end_s > second.start_s:
                # Two intervals of one label are always more than the gap tolerance apart.
                assert second.start_s - first.end_s > GAP, (a, b)
            else:
                # An instant is never a copy of another instant nor inside an interval.
                assert second.start_s > first.end_s, (a, b)


@settings(max_examples=150, deadline=None)
@given(event_lists)
def test_idempotent(events: list[DetectedEvent]) -> None:
    once = merge_events(events, gap_s=GAP)
    assert merge_events(once, gap_s=GAP) == once


@settings(max_examples=100, deadline=None)
@given(event_lists)
def test_output_sorted_and_never_longer(events: list[DetectedEvent]) -> None:
    out = merge_events(events, gap_s=GAP)
    assert len(out) <= len(events)
    keys = [(e.start_s, normalise_label(e.label)) for e in out]
    assert keys == sorted(keys)
