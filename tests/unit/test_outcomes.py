"""The events a job announces, built from plain values."""

from __future__ import annotations

import hashlib
import json

import jsonschema

from contracts import decode_dlq, decode_progress, decode_result, encode, schema_for
from workers.pipeline.outcomes import dlq_record, failed_result, progress_event, result_event_id


def test_result_event_ids_are_deterministic_per_job_and_status() -> None:
    assert result_event_id("j-1", "failed") == result_event_id("j-1", "failed")
    assert result_event_id("j-1", "failed") != result_event_id("j-1", "succeeded")
    assert result_event_id("j-1", "failed") != result_event_id("j-2", "failed")


def test_failed_result_leaves_out_a_source_it_does_not_know() -> None:
    result = failed_result(
        video_id="unknown", job_id="job-x", bucket=None, key=None, code="malformed_message",
        message="not JSON",
    )  # fmt: skip
    assert result.source is None and result.timeline is None
    assert result.error is not None and result.error.code == "malformed_message"
    doc = json.loads(encode(result))
    jsonschema.Draft202012Validator(schema_for("result")).validate(doc)
    assert decode_result(encode(result)) == result


def test_dlq_record_keeps_a_small_original_whole() -> None:
    raw = b'{"schema":"vidloc.ingest.v9"}'
    record = dlq_record(
        raw=raw, topic="video.ingest", partition=2, offset=7, code="unknown_schema",
        message="unknown schema", video_id="v", job_id="j", max_original_bytes=1024,
    )  # fmt: skip
    assert record.original_bytes() == raw
    assert "original_truncated" not in json.loads(encode(record))
    assert decode_dlq(encode(record)).source.offset == 7


def test_dlq_record_cuts_a_huge_original_and_says_so() -> None:
    raw = b"x" * 5000
    record = dlq_record(
        raw=raw, topic="video.ingest", partition=0, offset=1, code="message_too_large",
        message="too big", video_id="v", job_id="j", max_original_bytes=1000,
    )  # fmt: skip
    doc = json.loads(encode(record))
    assert len(doc["original"]) == 1000
    assert doc["original_truncated"] is True and doc["original_bytes"] == 5000
    assert doc["original_sha256"] == hashlib.sha256(raw).hexdigest()
    jsonschema.Draft202012Validator(schema_for("dlq")).validate(doc)


def test_progress_event_round_trips_and_caps_its_message() -> None:
    event = progress_event("v", "j", "localizing", 2, 5, "m" * 2000)
    assert (event.chunks_done, event.chunks_total, len(event.message or "")) == (2, 5, 500)
    assert decode_progress(encode(event)) == event
