"""What a job could not do as asked: stats, warnings, and when it must fail instead."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest

from contracts import IngestEvent, Timeline, decode_result, encode, schema_for
from workers.pipeline.job import JobOutcome
from workers.pipeline.job_warnings import (
    all_answers_unusable,
    answer_stats,
    answer_warnings,
    ignored_options_warning,
    job_warnings,
    unusable_message,
)
from workers.pipeline.outcomes import succeeded_result
from workers.types import AnswerReport, ChunkResult, TokenTally

CLEAN = AnswerReport(answers=1)
FAILED = AnswerReport(answers=2, unusable=2, reasked=1, failed=True, dropped=(("no JSON", 2),))
FIXED = AnswerReport(answers=2, unusable=1, reasked=1, dropped=(("label not asked for", 1),))
SHIFTED = AnswerReport(answers=1, relative_shifted=3)


def chunk(index: int, report: AnswerReport, rejected: int = 0) -> ChunkResult:
    return ChunkResult(index, (), rejected_events=rejected, answer=report)


def test_stats_sum_the_chunks() -> None:
    results = [chunk(0, CLEAN), chunk(1, FAILED, 2), chunk(2, FIXED, 1), chunk(3, SHIFTED)]
    assert answer_stats(results) == {
        "rejected_events": 3,
        "answers": 6,
        "rejected_answers": 3,
        "reasked": 2,
        "unusable_chunks": 1,
        "relative_times_shifted": 3,
    }


@pytest.mark.parametrize(
    ("reports", "expected"),
    [
        pytest.param([FAILED, FAILED], True, id="every-chunk-failed"),
        pytest.param([FAILED, CLEAN], False, id="one-usable"),
        pytest.param([FAILED, AnswerReport()], True, id="chunk-without-frames-asked-nothing"),
        pytest.param([AnswerReport()], False, id="nothing-asked"),
        pytest.param([], False, id="no-chunks"),
        pytest.param([AnswerReport(answers=1)], False, id="valid-empty"),
    ],
)
def test_when_every_answer_was_unusable(reports: list[AnswerReport], expected: bool) -> None:
    assert all_answers_unusable([chunk(i, r) for i, r in enumerate(reports)]) is expected


def test_the_failure_message_counts_and_names_reasons() -> None:
    message = unusable_message([chunk(0, FAILED), chunk(1, FAILED)])
    assert message.startswith("none of the 2 chunks got a usable model answer (4 answers, 2 ")
    assert "no JSON x4" in message


def test_each_kind_of_trouble_is_one_warning_with_counts_and_chunks() -> None:
    results = [chunk(0, CLEAN), chunk(1, FAILED, 2), chunk(2, FIXED, 1), chunk(3, SHIFTED)]
    warnings = {w["code"]: w for w in answer_warnings(results)}
    assert set(warnings) == {
        "answers_unusable",
        "answers_reasked",
        "events_rejected",
        "relative_times_shifted",
    }
    assert (warnings["answers_unusable"]["count"], warnings["answers_unusable"]["chunks"]) == (
        1,
        [1],
    )
    assert (warnings["answers_reasked"]["count"], warnings["answers_reasked"]["chunks"]) == (
        2,
        [1, 2],
    )
    assert warnings["events_rejected"]["count"] == 3
    assert "label not asked for x1" in warnings["events_rejected"]["message"]
    assert warnings["relative_times_shifted"]["count"] == 3
    assert warnings["relative_times_shifted"]["chunks"] == [3]


def test_a_clean_job_has_no_warnings() -> None:
    assert answer_warnings([chunk(0, CLEAN), chunk(1, AnswerReport(answers=1))]) == []


@pytest.mark.parametrize(
    ("localizer", "by_job", "prompt", "labels", "code"),
    [
        pytest.param("cv", False, None, ["red square"], "labels_ignored_no_model", id="labels"),
        pytest.param("cv", False, "find the dog", [], "labels_ignored_no_model", id="prompt"),
        pytest.param("cv", True, None, ["red square"], "labels_ignored_cv", id="asked-for-cv"),
        pytest.param("cv", False, None, ["cut", "Black"], None, id="cv-labels-are-fine"),
        pytest.param("cv", False, "  ", [], None, id="blank-prompt"),
        pytest.param("vlm", False, "find", ["dog"], None, id="model-answers-them"),
    ],
)
def test_labels_ignored_without_a_model(
    localizer: str, by_job: bool, prompt: str | None, labels: list[str], code: str | None
) -> None:
    warning = ignored_options_warning(localizer, by_job, prompt, labels)
    assert (warning or {}).get("code") == code


def test_the_ignored_labels_warning_says_what_and_why() -> None:
    warning = ignored_options_warning("cv", False, "the square", ["red square", "cut"])
    assert warning is not None
    assert "'red square'" in warning["message"] and "'cut'" not in warning["message"]
    assert "the prompt" in warning["message"]
    assert "VIDLOC_VLM_BASE_URL" in warning["message"]


def timeline(warnings: list[dict[str, Any]]) -> Timeline:
    return Timeline.model_validate(
        {
            "video_id": "v-1",
            "job_id": "j-1",
            "source": {"bucket": "videos", "key": "a.mp4", "etag": "abc", "size": 10},
            "video": {"duration_s": 8, "fps": 10, "width": 320, "height": 180, "codec": "h264"},
            "localizer": "cv",
            "labels": ["red square"],
            "sampling": {"sample_fps": 1.0, "chunk_s": 30.0, "frames": 8, "chunks": 1},
            "events": [],
            "stats": answer_stats([chunk(0, FIXED, 1)]),
            "warnings": warnings,
            "created_at": datetime.now(UTC).isoformat(),
        }
    )


def test_warnings_reach_the_timeline_and_the_result() -> None:
    warnings = job_warnings(
        [chunk(0, FIXED, 1)], localizer="cv", chosen_by_job=False, prompt=None,
        labels=["red square"],
    )  # fmt: skip
    assert [w["code"] for w in warnings] == [
        "labels_ignored_no_model",
        "answers_reasked",
        "events_rejected",
    ]
    made = timeline(warnings)
    jsonschema.Draft202012Validator(schema_for("timeline")).validate(json.loads(encode(made)))
    event = IngestEvent.model_validate(
        {
            "event_id": "e-1",
            "source": {"bucket": "videos", "key": "a.mp4", "etag": "abc", "size": 10},
            "options": {"labels": ["red square"]},
            "submitted_at": datetime.now(UTC).isoformat(),
        }
    )
    outcome = JobOutcome(made, "timelines", "v-1.json", TokenTally(), 0.0)
    result = succeeded_result(event, "j-1", outcome)
    assert [w.code for w in result.warnings] == [w["code"] for w in warnings]
    assert result.warnings[2].count == 1 and result.warnings[2].chunks == [0]
    doc = json.loads(encode(result))
    jsonschema.Draft202012Validator(schema_for("result")).validate(doc)
    assert decode_result(encode(result)) == result


def test_print_result_shows_the_warnings_of_a_failed_job_too() -> None:
    from rich.console import Console

    from vidloc.cli.follow import print_result

    result = decode_result(
        json.dumps(
            {
                "schema": "vidloc.result.v1",
                "event_id": "e-1",
                "video_id": "v-1",
                "job_id": "j-1",
                "status": "failed",
                "error": {"code": "model_answers_unusable", "message": "none of the 3 chunks"},
                "warnings": [{"code": "answers_reasked", "message": "asked [again]", "count": 3}],
                "created_at": datetime.now(UTC).isoformat(),
            }
        )
    )
    console = Console(record=True, width=200)
    print_result(console, None, "clip.mp4", result)  # type: ignore[arg-type]  # no store needed
    printed = console.export_text()
    assert "clip.mp4: failed (model_answers_unusable: none of the 3 chunks)" in printed
    assert "warning answers_reasked (x3): asked [again]" in printed
