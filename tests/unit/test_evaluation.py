"""Evaluation metrics against hand-computed cases."""

from __future__ import annotations

import json

import pytest
from api_fixtures import MemoryStore, make_timeline

from contracts import Timeline, encode
from vidloc import names
from vidloc.errors import InputError
from vidloc.evaluation.matching import greedy_match, tiou
from vidloc.evaluation.metrics import (
    PredictedEvent,
    TruthEvent,
    VideoUsage,
    evaluate,
    summarise_cost,
    top1,
)
from vidloc.evaluation.report import render_json, render_text
from vidloc.evaluation.sources import (
    pair_timelines,
    parse_truth_lines,
    split_s3_url,
    timelines_from_store,
)

T, P = TruthEvent, PredictedEvent


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        pytest.param((0, 10), (0, 10), 1.0, id="same"),
        pytest.param((0, 10), (5, 15), 5 / 15, id="half-shifted"),
        pytest.param((0, 10), (2, 4), 0.2, id="inside"),
        pytest.param((0, 10), (10, 20), 0.0, id="touching"),
        pytest.param((0, 10), (12, 20), 0.0, id="apart"),
        pytest.param((3, 3), (3, 3), 1.0, id="same-instant"),
        pytest.param((3, 3), (0, 10), 0.0, id="instant-in-interval"),
        pytest.param((10, 0), (0, 10), 1.0, id="reversed"),
    ],
)
def test_tiou(a: tuple[float, float], b: tuple[float, float], want: float) -> None:
    assert tiou(a, b) == pytest.approx(want)


def test_greedy_match_is_one_to_one_and_prefers_higher_iou() -> None:
    truth = [(0.0, 10.0), (20.0, 30.0)]
    # p0 overlaps t0 at 0.8; p1 overlaps t0 at 0.9 -> t0 takes p1; p0 is left over.
    predicted = [(0.0, 8.0), (0.0, 9.0), (21.0, 30.0), (100.0, 101.0)]
    assert greedy_match(truth, predicted, 0.5) == [(0, 1, 0.9), (1, 2, 0.9)]
    assert greedy_match(truth, predicted, 0.95) == []


def test_evaluate_hand_computed() -> None:
    truth = [
        T("v1", "red circle", 0.0, 10.0),
        T("v1", "green square", 20.0, 30.0),
        T("v2", "red circle", 5.0, 7.0),
    ]
    predicted = [
        P("v1", "Red  Circle", 1.0, 10.0, 0.9),  # IoU 0.9, start err 1, end err 0
        P("v1", "green square", 25.0, 35.0, 0.8),  # IoU 5/15: no match at 0.5, R@1 0.333
        P("v1", "green square", 50.0, 60.0, 0.3),  # false positive, not top-1
        P("v2", "red circle", 5.0, 8.0, None),  # IoU 2/3, start err 0, end err 1
        P("v9", "red circle", 0.0, 1.0, 1.0),  # unannotated video: not scored
    ]
    usage = [VideoUsage("v1", 60.0, 1000, 100, 0.5), VideoUsage("v2", 30.0, 400, 50, 0.25)]
    ev = evaluate(truth, predicted, usage)
    o = ev.overall
    assert (o.truths, o.predictions, o.matched) == (3, 4, 2)
    assert o.precision == pytest.approx(0.5)
    assert o.recall == pytest.approx(2 / 3)
    assert o.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert o.miou == pytest.approx((0.9 + 1 / 3 + 2 / 3) / 3)
    assert o.r1 == {0.3: pytest.approx(1.0), 0.5: pytest.approx(2 / 3), 0.7: pytest.approx(1 / 3)}
    assert o.start_error_s == pytest.approx(0.5)
    assert o.end_error_s == pytest.approx(0.5)
    assert o.boundary_error_s == pytest.approx(0.5)
    assert set(ev.per_label) == {"red circle", "green square"}
    green = ev.per_label["green square"]
    assert (green.matched, green.f1, green.start_error_s) == (0, 0.0, None)
    assert green.miou == pytest.approx(1 / 3)
    assert ev.cost.video_minutes == pytest.approx(1.5)
    assert ev.cost.tokens_per_minute == pytest.approx(1550 / 1.5)
    assert ev.cost.cost_per_minute == pytest.approx(0.5)
    text = render_text(ev)
    assert "overall" in text and "1033 tokens" in text
    assert render_json(ev)["overall"]["matched"] == 2


def test_missing_predictions_score_zero() -> None:
    ev = evaluate([T("v", "x", 0, 1)], [], [])
    assert (ev.overall.miou, ev.overall.recall, ev.overall.precision) == (0.0, 0.0, 0.0)
    assert ev.cost.tokens_per_minute == 0.0


def test_top1_by_confidence_then_earliest() -> None:
    preds = [P("v", "x", 5, 6, 0.5), P("v", "x", 3, 4, 0.9), P("v", "x", 1, 2, 0.9)]
    assert top1(preds) == preds[2]
    assert top1([]) is None


def test_refine_cost_summarised_apart() -> None:
    c = summarise_cost([VideoUsage("v", 120.0, 900, 100, 1.0, 300, 20, 0.25)])
    assert (c.tokens, c.refine_tokens, c.refine_cost) == (1000, 320, 0.25)
    assert c.refine_tokens_per_minute == pytest.approx(160)


def test_truth_lines_skip_other_kinds_and_reject_bad_rows() -> None:
    lines = [
        json.dumps({"video": "a", "kind": "event", "label": "x", "start_s": 1, "end_s": 2}),
        json.dumps({"video": "a", "kind": "cut", "t_s": 3}),
        "",
        json.dumps({"video": "b", "label": "y", "start_s": 0.5, "end_s": 4}),
    ]
    assert parse_truth_lines(lines) == [T("a", "x", 1.0, 2.0), T("b", "y", 0.5, 4.0)]
    with pytest.raises(InputError):
        parse_truth_lines(['{"video": "a", "label": "x", "start_s": 3, "end_s": 1}'])
    with pytest.raises(InputError):
        parse_truth_lines(["not json"])


def _timeline(video_id: str, key: str, created: str) -> Timeline:
    return Timeline.model_validate(
        {
            "video_id": video_id,
            "job_id": "j-1",
            "source": {"bucket": "videos", "key": key, "etag": "e", "size": 1},
            "video": {"duration_s": 60, "fps": 10, "width": 320, "height": 180, "codec": "h264"},
            "localizer": "cv",
            "sampling": {"sample_fps": 1, "chunk_s": 30, "frames": 60, "chunks": 2},
            "events": [{"id": "e1", "label": "x", "start_s": 1, "end_s": 2}],
            "usage": {"prompt_tokens": 10, "refine": {"prompt_tokens": 4}},
            "created_at": created,
        }
    )


def test_pair_timelines_by_key_stem_newest_wins() -> None:
    truth = [T("clip", "x", 1, 2), T("gone", "x", 1, 2)]
    old = _timeline("v-old", "up/clip.mp4", "2026-01-01T00:00:00Z")
    new = _timeline("v-new", "other/clip.mp4", "2026-01-02T00:00:00Z")
    stray = _timeline("v-stray", "up/nobody.mp4", "2026-01-02T00:00:00Z")
    loaded = pair_timelines(truth, [old, new, stray])
    assert loaded.missing == ("gone",)
    assert loaded.extra == ("v-stray",)
    assert [u.video for u in loaded.usage] == ["clip"]
    assert loaded.usage[0].refine_prompt_tokens == 4
    assert split_s3_url("s3://timelines/timelines/") == ("timelines", "timelines/")


def test_a_later_analysis_is_not_scored_as_its_video() -> None:
    """Issue 24: ``timelines/<v>/analyses/<aid>/timeline.json`` answered another question."""
    store = MemoryStore()
    store.put_timeline(make_timeline("v1"))
    later = make_timeline("v1", analysis_id="a-1", job_id="j-later")
    store.objects[("timelines", names.analysis_timeline_key("v1", "a-1"))] = encode(later)
    found = timelines_from_store(store, "timelines", "timelines/")
    assert [t.job_id for t in found] == ["job-1"]
