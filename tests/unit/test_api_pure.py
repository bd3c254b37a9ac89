"""Pure parts of the query API and the viewer: event selection, status folding, bar layout."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from api_fixtures import MemoryStore, make_progress, make_result, make_timeline

from contracts import SPANS_PENDING
from vidloc import names
from vidloc.api.query import select_events
from vidloc.api.status import StatusBook, derive_state, final_job_id, fold_progress, fold_result
from vidloc.api.timelines import TimelineReader, video_id_from_key
from vidloc.errors import StorageUnavailable
from vidloc.viewer.layout import MIN_WIDTH_PCT, layout_tracks, ruler_ticks
from vidloc.viewer.render import render_viewer

TIMELINE = make_timeline()


@pytest.mark.parametrize(
    ("labels", "start_s", "end_s", "expected"),
    [
        pytest.param((), None, None, ["e1", "e2", "e4", "e3"], id="all-sorted-by-start"),
        pytest.param(("RED circle",), None, None, ["e1", "e3"], id="label-case-insensitive"),
        pytest.param(("red circle", "blue triangle"), None, None, ["e1", "e4", "e3"], id="labels"),
        pytest.param((), 6.0, 7.0, ["e2", "e4"], id="overlap-not-containment"),
        pytest.param((), 3.0, 3.0, ["e1"], id="touching-end-counts"),
        pytest.param((), 8.0, None, ["e4", "e3"], id="open-end"),
        pytest.param((), None, 0.5, [], id="before-everything"),
        pytest.param(("nope",), None, None, [], id="unknown-label"),
    ],
)
def test_select_events(
    labels: tuple[str, ...], start_s: float | None, end_s: float | None, expected: list[str]
) -> None:
    got = select_events(TIMELINE.events, labels=labels, start_s=start_s, end_s=end_s)
    assert [e.id for e in got] == expected


def test_select_events_rejects_reversed_window() -> None:
    with pytest.raises(ValueError, match="before start_s"):
        select_events(TIMELINE.events, start_s=5.0, end_s=4.0)


def test_state_unknown_video_is_none() -> None:
    assert derive_state("v", None, has_timeline=False) is None


def test_state_from_timeline_only() -> None:
    state = derive_state("v", None, has_timeline=True)
    assert state is not None and state.status == "succeeded" and state.has_timeline


def test_state_failed_result_carries_error() -> None:
    view = fold_result(None, make_result("v", "failed"))
    state = derive_state("v", view, has_timeline=False)
    assert state is not None
    assert (state.status, state.error and state.error.code) == ("failed", "decode_failed")
    assert state.events is None


def test_state_running_when_progress_is_newer_than_result() -> None:
    view = fold_result(None, make_result("v", at="2025-01-31T12:00:00Z"))
    view = fold_progress(view, make_progress("v", at="2025-01-31T12:05:00Z"))
    state = derive_state("v", view, has_timeline=True)
    assert state is not None
    assert (state.status, state.stage, state.job_id) == ("running", "localizing", "job-2")
    assert (state.chunks_done, state.chunks_total, state.has_timeline) == (1, 3, True)


def test_state_result_newer_than_progress_wins() -> None:
    view = fold_progress(None, make_progress("v", at="2025-01-31T12:05:00Z"))
    view = fold_result(view, make_result("v", "failed", at="2025-01-31T12:06:00Z", job="job-2"))
    state = derive_state("v", view, has_timeline=True)
    assert state is not None and state.status == "failed" and state.job_id == "job-2"


def test_a_long_videos_partial_result_keeps_it_running() -> None:
    """Spans still run: the partial result (newer than the last progress) is news, not the end;
    the final one is."""
    view = fold_progress(None, make_progress("v", at="2025-01-31T12:05:00Z"))
    partial = make_result("v", at="2025-01-31T12:06:00Z").model_copy(update={"partial": True})
    state = derive_state("v", fold_result(view, partial), has_timeline=True)
    assert state is not None and state.status == "running"
    assert (state.chunks_done, state.chunks_total) == (1, 3)
    final = make_result("v", at="2025-01-31T12:07:00Z")
    state = derive_state("v", fold_result(view, final), has_timeline=True)
    assert state is not None and state.status == "succeeded"


def test_a_job_whose_final_timeline_is_stored_is_done_before_its_result_is_read() -> None:
    """The timeline is stored before the result's transaction commits: a reader with the job's
    progress and not yet its result says succeeded (as a reader of S3 alone does), never running;
    a re-run (another job) or a long video's partial timeline keeps it running."""
    running = fold_progress(None, make_progress("v", at="2025-01-31T12:05:00Z", job="job-2"))
    after_an_old_result = fold_result(running, make_result("v", "failed", job="job-1"))
    for view in (running, after_an_old_result):
        state = derive_state("v", view, has_timeline=True, final_job=lambda: "job-2")
        assert state is not None
        assert (state.status, state.job_id, state.stage) == ("succeeded", "job-2", None)
    for final in ("job-1", None):  # an older job's timeline; a partial one (or none readable)
        state = derive_state("v", running, has_timeline=True, final_job=lambda f=final: f)
        assert state is not None and (state.status, state.job_id) == ("running", "job-2")


def test_the_stored_timeline_is_read_only_when_the_bus_says_running() -> None:
    def unread() -> str | None:
        raise AssertionError("the timeline was read")

    done = fold_result(None, make_result("v", at="2025-01-31T12:06:00Z"))
    unstored = fold_progress(None, make_progress("v"))
    cases = [
        (done, True, "succeeded"),
        (None, True, "succeeded"),
        (unstored, False, "running"),
    ]
    for view, has_timeline, status in cases:
        state = derive_state("v", view, has_timeline=has_timeline, final_job=unread)
        assert state is not None and state.status == status


def test_a_timeline_is_final_unless_spans_or_a_stream_still_add_to_it() -> None:
    assert final_job_id(make_timeline()) == "job-1"
    assert final_job_id(None) is None
    pending = {"code": SPANS_PENDING, "message": "partial: 1 of 4 spans done"}
    assert final_job_id(make_timeline(warnings=[pending])) is None
    growing = {"stream_id": "s-1", "last_seq": 3}
    assert final_job_id(make_timeline(stream=growing)) is None
    assert final_job_id(make_timeline(stream={**growing, "ended": True})) == "job-1"


def test_the_reader_names_the_job_of_a_final_timeline_only() -> None:
    """An unreadable timeline does not break a status answer (the bus decides it then); an
    unreachable store still does (503)."""
    store = MemoryStore()
    reader = TimelineReader(store, "timelines")  # type: ignore[arg-type]
    store.put_timeline(make_timeline("done"))
    pending = {"code": SPANS_PENDING, "message": "partial: 1 of 4 spans done"}
    store.put_timeline(make_timeline("partial", warnings=[pending]))
    store.objects[("timelines", names.timeline_key("broken"))] = b"{not json"
    assert reader.final_job("done") == "job-1"
    assert [reader.final_job(v) for v in ("partial", "broken", "never")] == [None, None, None]
    store.down = True
    with pytest.raises(StorageUnavailable):
        reader.final_job("done")


def test_fold_keeps_newest_whatever_the_arrival_order() -> None:
    newer = make_result("v", "failed", at="2025-02-01T00:00:00Z", job="job-9")
    older = make_result("v", "succeeded", at="2025-01-01T00:00:00Z")
    book = StatusBook()
    book.apply_result(newer)
    book.apply_result(older)  # a replayed, older result must not win
    view = book.get("v")
    assert view is not None and view.result is newer
    old_progress = make_progress("v", "sampling", at="2025-01-01T00:00:00Z")
    book.apply_progress(make_progress("v", "done", at="2025-02-01T00:00:01Z"))
    book.apply_progress(old_progress)
    view = book.get("v")
    assert view is not None and view.progress is not None and view.progress.stage == "done"
    state = derive_state("v", view, has_timeline=False)
    assert state is not None and state.status == "failed"  # done progress is not "running"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("timelines/abc/timeline.json", "abc"),
        ("timelines/abc/other.json", None),
        ("timelines/a/b/timeline.json", None),
        ("checkpoints/abc/timeline.json", None),
        ("timelines//timeline.json", None),
    ],
)
def test_video_id_from_key(key: str, expected: str | None) -> None:
    assert video_id_from_key(key) == expected


def test_layout_tracks_positions_bars_over_duration() -> None:
    tracks = layout_tracks(TIMELINE.video.duration_s, TIMELINE.events)
    assert [t.label for t in tracks] == ["blue triangle", "green square", "red circle"]
    red = tracks[2]
    assert [(b.left_pct, b.width_pct) for b in red.bars] == [(10.0, 20.0), (80.0, MIN_WIDTH_PCT)]
    assert len({t.colour for t in tracks}) == 3


def test_layout_stretches_to_an_event_past_the_end() -> None:
    events = make_timeline(duration_s=5.0).events
    tracks = layout_tracks(5.0, events)
    ends = [b.left_pct + b.width_pct for t in tracks for b in t.bars]
    assert max(ends) == pytest.approx(100.0)


def test_ruler_ticks_are_round_and_cover_the_span() -> None:
    assert ruler_ticks(10.0) == [float(i) for i in range(11)]
    ticks = ruler_ticks(95.0)
    assert ticks[0] == 0 and ticks[-1] <= 95.0 and ticks[1] == 10.0


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.bars: list[dict[str, str | None]] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if "bar" in (found.get("class") or "").split():
            self.bars.append(found)
        for name in ("href", "src"):
            value = found.get(name)
            if value and tag != "video":
                self.external.append(value)


def test_render_viewer_is_self_contained_and_escaped() -> None:
    page = render_viewer(TIMELINE, "http://s3.test/videos/x.mp4?sig=1&b=2")
    parser = _Collect()
    parser.feed(page)
    assert parser.external == []  # no CDN, no stylesheet or script links
    assert [b["data-event-id"] for b in parser.bars] == ["e4", "e2", "e1", "e3"]
    green = next(b for b in parser.bars if b["data-event-id"] == "e2")
    assert green["data-description"] == "a green square <b>moves</b>"  # an attribute, unescaped
    assert "<b>moves</b>" not in page  # never markup
    assert 'src="http://s3.test/videos/x.mp4?sig=1&amp;b=2"' in page
    for text in ("qwen/qwen3-vl-8b-instruct", "Find the shapes", "0.0037 CNY", "1 fps"):
        assert text in page
    assert re.search(r"left:50%;width:25%", page)  # e2: 5.0-7.5 s of 10 s


def test_render_viewer_without_a_video_url() -> None:
    page = render_viewer(make_timeline(events=[]), None)
    assert "<video" not in page and "No events" in page
