"""Wire contracts: models and JSON Schemas agree, round-trip, and refuse hostile input clearly."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import typing
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel

import contracts
from contracts import (
    ContractError,
    ModelAnswer,
    decode_ingest,
    encode,
    schema_for,
)
from contracts.generate import write_schemas
from contracts.registry import REGENERATE_COMMAND, generate_schemas, render
from contracts.versions import SCHEMA_IDS, schema_file, schema_url

DECODERS: dict[str, Callable[[Any], BaseModel]] = {
    "ingest": contracts.decode_ingest,
    "progress": contracts.decode_progress,
    "result": contracts.decode_result,
    "timeline": contracts.decode_timeline,
    "dlq": contracts.decode_dlq,
}
MODELS: dict[str, type[BaseModel]] = {
    "ingest": contracts.IngestEvent,
    "progress": contracts.ProgressEvent,
    "result": contracts.ResultEvent,
    "timeline": contracts.Timeline,
    "dlq": contracts.DlqRecord,
}
NOW = "2025-01-31T12:00:00Z"


def validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        schema_for(name), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def edit(doc: dict[str, Any], path: str, value: Any = ..., *, drop: bool = False) -> dict[str, Any]:
    """A copy of ``doc`` with the dotted ``path`` set to ``value`` (or removed)."""
    out = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if drop:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


INGEST: dict[str, Any] = {
    "schema": "vidloc.ingest.v1",
    "event_id": "evt-1",
    "source": {
        "bucket": "videos",
        "key": "cams/front door/2025-01-31.mp4",
        "etag": '"9b2cf535f27731c974343645a3985328"',
        "size": 123456,
    },
    "options": {
        "localizer": "vlm",
        "prompt": "when does the red ball appear?",
        "labels": ["red ball"],
        "sample_fps": 2.0,
        "chunk_s": 30,
        "extra": {"beta": True},
    },
    "submitted_at": NOW,
}
PROGRESS: dict[str, Any] = {
    "schema": "vidloc.progress.v1",
    "event_id": "prg-1",
    "video_id": "v-1",
    "job_id": "j-1",
    "stage": "localizing",
    "chunks_done": 2,
    "chunks_total": 5,
    "frames_done": 40,
    "message": "chunk 2 of 5",
    "at": NOW,
}
RESULT_OK: dict[str, Any] = {
    "schema": "vidloc.result.v1",
    "event_id": "res-1",
    "video_id": "v-1",
    "job_id": "j-1",
    "status": "succeeded",
    "source": {"bucket": "videos", "key": "a.mp4"},
    "timeline": {"bucket": "timelines", "key": "timelines/v-1/timeline.json"},
    "summary": {"events": 3, "duration_s": 61.5},
    "usage": {"prompt_tokens": 1200, "completion_tokens": 80, "cost": 0.0037, "requests": 2},
    "localizer": "vlm",
    "timings": {"localizing": 12.5},
    "created_at": NOW,
}
RESULT_FAILED: dict[str, Any] = {
    "schema": "vidloc.result.v1",
    "event_id": "res-2",
    "video_id": "v-1",
    "job_id": "j-1",
    "status": "failed",
    "error": {"code": "not_a_video", "message": "no video stream"},
    "created_at": NOW,
}
TIMELINE: dict[str, Any] = {
    "schema": "vidloc.timeline.v1",
    "video_id": "v-1",
    "job_id": "j-1",
    "source": {"bucket": "videos", "key": "a.mp4", "etag": "abc", "size": 10},
    "video": {"duration_s": 61.5, "fps": 29.97, "width": 1280, "height": 720, "codec": "h264"},
    "localizer": "vlm",
    "model": {
        "name": "qwen/qwen3-vl-8b-instruct",
        "base_url": "https://wcode.net/api/gpt/v1",
        "params": {"temperature": 0.1, "stop": None},
    },
    "labels": ["red ball"],
    "sampling": {
        "sample_fps": 1.0,
        "chunk_s": 30.0,
        "chunk_overlap_s": 2.0,
        "frames": 62,
        "chunks": 3,
        "frame_size": [448, 256],
    },
    "events": [
        {
            "id": "e-1",
            "label": "red ball",
            "start_s": 10.0,
            "end_s": 14.5,
            "description": "a red ball rolls in",
            "confidence": 0.9,
            "source": "vlm",
        }
    ],
    "usage": {"prompt_tokens": 1200, "completion_tokens": 80, "cost": 0.0037},
    "stats": {"rejected_events": 1},
    "created_at": NOW,
}
TIMELINE_CV = edit(edit(TIMELINE, "localizer", "cv"), "model", drop=True)
DLQ: dict[str, Any] = {
    "schema": "vidloc.dlq.v1",
    "original": {"schema": "vidloc.ingest.v0", "event_id": 7},
    "original_encoding": "json",
    "error": {"code": "bad_ingest_event", "message": "schema: unknown schema 'vidloc.ingest.v0'"},
    "failed_at": NOW,
    "source": {"topic": "video.ingest", "partition": 3, "offset": 1041, "key": "v-1"},
    "video_id": "v-1",
}


def p(doc: dict[str, Any], valid: bool, id: str) -> Any:
    return pytest.param(doc, valid, id=id)


SAMPLES: dict[str, list[Any]] = {
    "ingest": [
        p(INGEST, True, "full"),
        p(edit(INGEST, "options", drop=True), True, "no-options"),
        p(edit(INGEST, "video_id", "cam-7_2025.01"), True, "given-video-id"),
        p(edit(INGEST, "priority", "high"), True, "unknown-top-level-field"),
        p(edit(INGEST, "source.key", "视频/猫 🐈 clip.mp4"), True, "unicode-key"),
        p(edit(INGEST, "source.key", "a..b/c..d.mp4"), True, "dots-inside-names"),
        p(edit(INGEST, "source.size", 5.0), True, "integral-float-size"),
        p(edit(INGEST, "submitted_at", "2025-01-31T17:30:00.123+05:30"), True, "offset-time"),
        p(edit(INGEST, "options", {"localizer": None, "prompt": None}), True, "null-options"),
        p(edit(INGEST, "source.bucket", "s3://videos"), False, "bucket-s3-url"),
        p(edit(INGEST, "source.bucket", "http://store/videos"), False, "bucket-http-url"),
        p(edit(INGEST, "source.bucket", "Videos"), False, "bucket-uppercase"),
        p(edit(INGEST, "source.bucket", "ab"), False, "bucket-too-short"),
        p(edit(INGEST, "source.bucket", "my..videos"), False, "bucket-double-dot"),
        p(edit(INGEST, "source.bucket", "192.168.1.10"), False, "bucket-ip"),
        p(edit(INGEST, "source.bucket", "xn--videos"), False, "bucket-reserved-prefix"),
        p(edit(INGEST, "source.bucket", "videos\n"), False, "bucket-trailing-newline"),
        p(edit(INGEST, "source.key", ""), False, "key-empty"),
        p(edit(INGEST, "source.key", "/abs.mp4"), False, "key-leading-slash"),
        p(edit(INGEST, "source.key", "../x.mp4"), False, "key-dotdot-first"),
        p(edit(INGEST, "source.key", "a/../b.mp4"), False, "key-dotdot-middle"),
        p(edit(INGEST, "source.key", "a/.."), False, "key-dotdot-last"),
        p(edit(INGEST, "source.key", "a\x00.mp4"), False, "key-nul"),
        p(edit(INGEST, "source.key", "k" * 1025), False, "key-too-long"),
        p(edit(INGEST, "source.size", -1), False, "size-negative"),
        p(edit(INGEST, "source.size", "12"), False, "size-string"),
        p(edit(INGEST, "source.size", True), False, "size-bool"),
        p(edit(INGEST, "source.size", 1.5), False, "size-fraction"),
        p(edit(INGEST, "source.etag", drop=True), False, "etag-missing"),
        p(edit(INGEST, "event_id", ""), False, "event-id-empty"),
        p(edit(INGEST, "event_id", drop=True), False, "event-id-missing"),
        p(edit(INGEST, "video_id", "../etc"), False, "video-id-traversal"),
        p(edit(INGEST, "submitted_at", "2025-01-31T12:00:00"), False, "time-naive"),
        p(edit(INGEST, "submitted_at", "2025-01-31"), False, "time-date-only"),
        p(edit(INGEST, "submitted_at", "2025-02-30T12:00:00Z"), False, "time-no-such-day"),
        p(edit(INGEST, "submitted_at", "2025-01-31 12:00:00Z"), False, "time-space"),
        p(edit(INGEST, "submitted_at", 1738324800), False, "time-epoch"),
        p(edit(INGEST, "options.labelz", ["x"]), False, "option-typo"),
        p(edit(INGEST, "options.localizer", "gpu"), False, "option-bad-localizer"),
        p(edit(INGEST, "options.sample_fps", 0), False, "option-zero-fps"),
        p(edit(INGEST, "options.labels", [""]), False, "option-empty-label"),
        p(edit(INGEST, "options.labels", "red ball"), False, "option-labels-not-list"),
        p(edit(INGEST, "schema", "vidloc.ingest.v9"), False, "unknown-version"),
        p(edit(INGEST, "schema", drop=True), False, "no-version"),
    ],
    "progress": [
        p(PROGRESS, True, "full"),
        p(edit(edit(PROGRESS, "frames_done", None), "message", drop=True), True, "minimal"),
        p(edit(PROGRESS, "stage", "failed"), True, "failed"),
        p(edit(PROGRESS, "stage", "paused"), False, "unknown-stage"),
        p(edit(PROGRESS, "chunks_done", -1), False, "negative-count"),
        p(edit(PROGRESS, "chunks_total", drop=True), False, "no-total"),
        p(edit(PROGRESS, "at", drop=True), False, "no-time"),
        p(edit(PROGRESS, "video_id", ""), False, "empty-video-id"),
    ],
    "result": [
        p(RESULT_OK, True, "succeeded"),
        p(RESULT_FAILED, True, "failed-without-source"),
        p(edit(RESULT_FAILED, "source", {"bucket": "videos", "key": "a.mp4"}), True, "failed"),
        p(edit(RESULT_FAILED, "timeline", None), True, "failed-null-timeline"),
        p(edit(RESULT_OK, "timeline", drop=True), False, "succeeded-no-timeline"),
        p(edit(RESULT_OK, "source", drop=True), False, "succeeded-no-source"),
        p(edit(RESULT_OK, "error", {"code": "x", "message": "y"}), False, "succeeded-with-error"),
        p(edit(RESULT_FAILED, "error", drop=True), False, "failed-no-error"),
        p(edit(RESULT_FAILED, "timeline", RESULT_OK["timeline"]), False, "failed-with-timeline"),
        p(edit(RESULT_OK, "status", "ok"), False, "unknown-status"),
        p(edit(RESULT_OK, "usage.currency", "cny"), False, "bad-currency"),
        p(edit(RESULT_OK, "usage.cost", -1), False, "negative-cost"),
        p(edit(RESULT_FAILED, "error.code", "Bad Code"), False, "bad-error-code"),
        p(edit(RESULT_OK, "timings", {"x": -1}), False, "negative-timing"),
        p(edit(RESULT_OK, "summary.events", 1.5), False, "fractional-count"),
        p(edit(RESULT_OK, "timeline.bucket", "s3://timelines"), False, "timeline-url"),
    ],
    "timeline": [
        p(TIMELINE, True, "vlm"),
        p(TIMELINE_CV, True, "cv-without-model"),
        p(edit(TIMELINE, "events", []), True, "no-events"),
        p(edit(TIMELINE, "events.0.confidence", None), True, "no-confidence"),
        p(edit(TIMELINE, "model", None), False, "vlm-null-model"),
        p(edit(TIMELINE, "model", drop=True), False, "vlm-without-model"),
        p(edit(TIMELINE, "events.0.confidence", 1.5), False, "confidence-over-1"),
        p(edit(TIMELINE, "events.0.start_s", -1), False, "negative-start"),
        p(edit(TIMELINE, "events.0.label", drop=True), False, "event-no-label"),
        p(edit(TIMELINE, "sampling.frame_size", [448]), False, "frame-size-short"),
        p(edit(TIMELINE, "sampling.frame_size", [448, 0]), False, "frame-size-zero"),
        p(edit(TIMELINE, "sampling.frame_size", [448, 256, 3]), False, "frame-size-long"),
        p(edit(TIMELINE, "sampling.sample_fps", 0), False, "zero-fps"),
        p(edit(TIMELINE, "video.width", 0), False, "zero-width"),
        p(edit(TIMELINE, "video_id", "../x"), False, "video-id-traversal"),
        p(edit(TIMELINE, "events", drop=True), False, "no-events-field"),
    ],
    "dlq": [
        p(DLQ, True, "json"),
        p(edit(edit(DLQ, "original", "{not json"), "original_encoding", "text"), True, "text"),
        p(edit(edit(DLQ, "original", "/w=="), "original_encoding", "base64"), True, "base64"),
        p(edit(edit(DLQ, "original", "raw text"), "original_encoding", drop=True), True, "plain"),
        p(edit(DLQ, "original", drop=True), True, "json-null"),
        p(edit(DLQ, "original_encoding", "text"), False, "text-not-string"),
        p(edit(edit(DLQ, "original", "@@"), "original_encoding", "base64"), False, "bad-base64"),
        p(edit(edit(DLQ, "original", "abc"), "original_encoding", "base64"), False, "base64-pad"),
        p(edit(DLQ, "original_encoding", "hex"), False, "unknown-encoding"),
        p(edit(DLQ, "source.partition", -1), False, "negative-partition"),
        p(edit(DLQ, "source.topic", ""), False, "empty-topic"),
        p(edit(DLQ, "error", drop=True), False, "no-error"),
        p(edit(DLQ, "failed_at", "yesterday"), False, "bad-time"),
    ],
}
AGREEMENT = [
    pytest.param(name, *sample.values, id=f"{name}-{sample.id}")
    for name, samples in SAMPLES.items()
    for sample in samples
]


@pytest.mark.parametrize(("name", "doc", "valid"), AGREEMENT)
def test_model_and_schema_agree(name: str, doc: dict[str, Any], valid: bool) -> None:
    schema_errors = list(validator(name).iter_errors(doc))
    model_error: ContractError | None = None
    try:
        DECODERS[name](json.dumps(doc).encode())
    except ContractError as exc:
        model_error = exc
    verdicts = (not schema_errors, model_error is None)
    assert verdicts == (valid, valid), (schema_errors, model_error)


VALID = [
    pytest.param(name, sample.values[0], id=f"{name}-{sample.id}")
    for name, samples in SAMPLES.items()
    for sample in samples
    if sample.values[1]
]


@pytest.mark.parametrize(("name", "doc"), VALID)
def test_round_trip_is_lossless_and_schema_valid(name: str, doc: dict[str, Any]) -> None:
    model = DECODERS[name](doc)
    wire = encode(model)
    again = DECODERS[name](wire)
    assert again == model
    assert encode(again) == wire
    emitted = json.loads(wire)
    assert validator(name).is_valid(emitted)
    assert emitted["schema"] == SCHEMA_IDS[name]
    # compact separators, UTF-8 rather than \u escapes
    assert wire == json.dumps(emitted, separators=(",", ":"), ensure_ascii=False).encode()


# Rules JSON Schema cannot state; the models enforce them and the schemas say so in $comment.
MODEL_ONLY = [
    pytest.param(
        "ingest", edit(INGEST, "source.key", "é" * 600), "source.key", id="key-1200-bytes"
    ),
    pytest.param(
        "timeline", edit(TIMELINE, "events.0.start_s", 20.0), "events.0.end_s", id="reversed-event"
    ),
]


@pytest.mark.parametrize(("name", "doc", "field"), MODEL_ONLY)
def test_model_only_rules(name: str, doc: dict[str, Any], field: str) -> None:
    assert validator(name).is_valid(doc)
    with pytest.raises(ContractError) as caught:
        DECODERS[name](doc)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        pytest.param(b'{"schema": ', "$", "malformed JSON", id="truncated"),
        pytest.param(b"\xff\xfe{}", "$", "not UTF-8", id="not-utf8"),
        pytest.param(b"[1, 2]", "$", "expected a JSON object, got an array", id="array"),
        pytest.param(b'"hello"', "$", "expected a JSON object, got a string", id="string"),
        pytest.param(b'{"schema": NaN}', "$", "NaN is not JSON", id="nan"),
        pytest.param(
            b"{}",
            "schema",
            "missing (expected 'vidloc.ingest.v1' or 'vidloc.ingest.v2')",
            id="no-schema",
        ),
        pytest.param(
            json.dumps(edit(INGEST, "schema", "vidloc.ingest.v9")).encode(),
            "schema",
            "unknown schema 'vidloc.ingest.v9' (expected 'vidloc.ingest.v1' or 'vidloc.ingest.v2')",
            id="future-version",
        ),
        pytest.param(
            json.dumps(edit(INGEST, "schema", "vidloc.result.v1")),
            "schema",
            "unknown schema 'vidloc.result.v1' (expected 'vidloc.ingest.v1' or 'vidloc.ingest.v2')",
            id="other-contract",
        ),
        pytest.param(
            edit(INGEST, "source.bucket", "s3://videos"), "source.bucket", "is a URL", id="url"
        ),
        pytest.param(
            edit(INGEST, "source.key", "a/../../etc/passwd"), "source.key", "'..'", id="dotdot"
        ),
        pytest.param(
            edit(INGEST, "options.labelz", []), "options.labelz", "Extra inputs", id="typo"
        ),
        pytest.param(
            edit(INGEST, "submitted_at", "2025-01-31T12:00:00"), "submitted_at", "RFC 3339", id="tz"
        ),
        pytest.param(
            edit(INGEST, "source.size", "12"), "source.size", "valid integer", id="string-number"
        ),
        pytest.param({"schema": datetime.now(UTC)}, "$", "not representable as JSON", id="object"),
    ],
)
def test_bad_documents_raise_contract_error_naming_the_field(
    data: Any, field: str, message: str
) -> None:
    with pytest.raises(ContractError) as caught:
        decode_ingest(data)
    assert isinstance(caught.value, ValueError)
    assert caught.value.field == field
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("decode", "doc", "field"),
    [
        pytest.param(
            contracts.decode_result, edit(RESULT_OK, "timeline", drop=True), "timeline", id="ok"
        ),
        pytest.param(
            contracts.decode_result, edit(RESULT_FAILED, "error", drop=True), "error", id="failed"
        ),
        pytest.param(
            contracts.decode_timeline, edit(TIMELINE, "model", drop=True), "model", id="model"
        ),
        pytest.param(
            contracts.decode_timeline,
            edit(TIMELINE, "events.0.confidence", 2),
            "events.0.confidence",
            id="nested",
        ),
        pytest.param(
            contracts.decode_dlq,
            edit(DLQ, "original_encoding", "base64"),
            "original",
            id="dlq-encoding",
        ),
    ],
)
def test_cross_field_rules_name_the_blamed_field(
    decode: Callable[[Any], BaseModel], doc: dict[str, Any], field: str
) -> None:
    with pytest.raises(ContractError) as caught:
        decode(doc)
    assert caught.value.field == field


def test_video_id_is_derived_deterministically_from_the_object_version() -> None:
    first = contracts.derive_video_id("videos", "a/b.mp4", "abc123")
    assert first == contracts.derive_video_id("videos", "a/b.mp4", "abc123")
    assert first.startswith("v-") and len(first) == 2 + 24
    # a re-upload (new etag), another key or another bucket is another video
    assert first != contracts.derive_video_id("videos", "a/b.mp4", "abc124")
    assert first != contracts.derive_video_id("videos", "a/c.mp4", "abc123")
    assert first != contracts.derive_video_id("videos2", "a/b.mp4", "abc123")
    # S3 quotes etags in some places and not in others; both name the same version
    assert first == contracts.derive_video_id("videos", "a/b.mp4", '"ABC123"')
    # the separator cannot be forged by moving characters between bucket and key
    assert contracts.derive_video_id("abc", "d/e", "x") != contracts.derive_video_id(
        "abcd", "/e", "x"
    )


def test_ingest_video_and_job_ids() -> None:
    event = decode_ingest(INGEST)
    source = INGEST["source"]
    assert event.video_id is None
    assert event.effective_video_id == contracts.derive_video_id(
        source["bucket"], source["key"], source["etag"]
    )
    given = decode_ingest(edit(INGEST, "video_id", "cam-7"))
    assert given.effective_video_id == "cam-7"
    # a replay of the same message is the same job; another message is another job
    assert event.job_id == contracts.derive_job_id("evt-1") == decode_ingest(INGEST).job_id
    assert contracts.derive_job_id("evt-2") != event.job_id
    assert event.job_id.startswith("j-") and len(event.job_id) == 26


@pytest.mark.parametrize(
    "key",
    ["..", "../x", "a/../b", "a/..", "/a", "", "a\x00b", "x" * 1025, "日" * 342],
    ids=[
        "dotdot",
        "dotdot-first",
        "dotdot-mid",
        "dotdot-last",
        "abs",
        "empty",
        "nul",
        "long",
        "cjk",
    ],
)
def test_hostile_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError):
        contracts.check_key(key)
    with pytest.raises(ContractError) as caught:
        decode_ingest(edit(INGEST, "source.key", key))
    assert caught.value.field == "source.key"


@pytest.mark.parametrize(
    "key",
    ["my video.mp4", "Ünïcödé/视频 🎬.MOV", "a..b/..c/d..", "./a.mp4", "dir/", "日" * 341],
    ids=["space", "unicode", "dots-in-names", "dot-segment", "trailing-slash", "1023-bytes"],
)
def test_unicode_and_space_keys_are_accepted(key: str) -> None:
    event = decode_ingest(edit(INGEST, "source.key", key))
    assert event.source.key == key
    assert decode_ingest(encode(event)).source.key == key


@pytest.mark.parametrize(
    "bucket", ["s3://videos", "https://s3.amazonaws.com/videos", "S3://videos", "videos/", "-ab"]
)
def test_urls_and_paths_are_not_bucket_names(bucket: str) -> None:
    with pytest.raises(ContractError) as caught:
        decode_ingest(edit(INGEST, "source.bucket", bucket))
    assert caught.value.field == "source.bucket"


def test_models_built_in_python_round_trip() -> None:
    ingest = contracts.IngestEvent(
        event_id="cli-1",
        source=contracts.SourceObject(bucket="videos", key="x.mp4", etag="e", size=3),
        options=contracts.IngestOptions(labels=["dog"], chunk_overlap_s=1.5, max_frames=32),
        submitted_at=datetime(2025, 1, 31, 12, 0, 0, 123456, tzinfo=UTC),
    )
    result = contracts.ResultEvent(
        event_id="r-1",
        video_id="v-1",
        job_id="j-1",
        status="failed",
        error=contracts.ErrorInfo(code="decode_failed", message="moov atom not found"),
        created_at=datetime.now(UTC),
    )
    for model, decode in [(ingest, decode_ingest), (result, contracts.decode_result)]:
        wire = encode(model)
        assert decode(wire) == model
        assert b"null" not in wire  # absent optional fields are left out, not sent as null
    assert json.loads(encode(ingest))["schema"] == contracts.INGEST_V1
    assert json.loads(encode(result))["usage"] == {
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost": 0.0,
        "currency": "CNY",
    }


@pytest.mark.parametrize(
    ("raw", "encoding"),
    [
        pytest.param(b'{"schema":"vidloc.ingest.v1","x":[1,null]}', "json", id="json"),
        pytest.param("half an ingest {é".encode(), "text", id="text"),
        pytest.param(b"NaN", "text", id="nan-is-not-json"),
        pytest.param(b"\x00\xff\xfe binary", "base64", id="binary"),
    ],
)
def test_dlq_keeps_the_original_message(raw: bytes, encoding: str) -> None:
    original, found = contracts.wrap_original(raw)
    assert found == encoding
    record = contracts.DlqRecord(
        original=original,
        original_encoding=found,
        error=contracts.ErrorInfo(code="bad_ingest_event", message="no"),
        failed_at=datetime.now(UTC),
        source=contracts.MessageSource(topic="video.ingest", partition=0, offset=7),
    )
    again = contracts.decode_dlq(encode(record))
    assert again == record
    assert validator("dlq").is_valid(json.loads(encode(record)))
    back = again.original_bytes()
    assert back == raw if encoding != "json" else json.loads(back) == json.loads(raw)


# --- the model answer: what the request asks for, strict as structured output wants it -------

ANSWER_EVENT = {
    "label": "red ball",
    "start_s": 3.0,
    "end_s": 7.5,
    "description": "a ball rolls in",
    "confidence": 0.8,
}


@pytest.mark.parametrize(
    ("doc", "valid"),
    [
        pytest.param({"events": []}, True, id="empty"),
        pytest.param({"events": [ANSWER_EVENT]}, True, id="full"),
        pytest.param({"events": [{**ANSWER_EVENT, "start_s": 3}]}, True, id="int-time"),
        # drift the lenient parser (workers.localizers.answer.read) tolerates, but not asked for
        pytest.param(
            {"events": [edit(ANSWER_EVENT, "confidence", drop=True)]}, False, id="no-confidence"
        ),
        pytest.param(
            {"events": [edit(ANSWER_EVENT, "description", drop=True)]}, False, id="no-description"
        ),
        pytest.param({"events": [{**ANSWER_EVENT, "start_s": "3.5"}]}, False, id="string-number"),
        pytest.param({"events": [{**ANSWER_EVENT, "note": "x"}]}, False, id="extra-key"),
        pytest.param({"events": [], "thinking": "..."}, False, id="extra-top-level"),
        pytest.param({}, False, id="no-events"),
        pytest.param({"events": "none"}, False, id="events-not-list"),
        pytest.param({"events": [edit(ANSWER_EVENT, "end_s", drop=True)]}, False, id="no-end"),
        pytest.param({"events": [{**ANSWER_EVENT, "start_s": "soon"}]}, False, id="word-time"),
    ],
)
def test_answer_schema_and_model_agree_strictly(doc: dict[str, Any], valid: bool) -> None:
    assert validator("answer").is_valid(doc) is valid
    try:
        ModelAnswer.model_validate_json(json.dumps(doc), strict=True)
    except ValueError:
        assert not valid
    else:
        assert valid


def test_answer_response_format_fits_openai_strict_mode() -> None:
    fmt = contracts.answer_response_format()
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "vidloc_events"
    assert fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema == contracts.answer_schema()
    assert "$id" not in schema and "$schema" not in schema and "$defs" not in schema
    # the request carries what the checked-in contract says, less its address
    checked_in = schema_for("answer")
    for keyword in ("$schema", "$id", "title"):
        checked_in.pop(keyword)
    assert schema == checked_in

    # strict mode: every object closes its properties and requires all of them
    def objects(node: Any) -> list[dict[str, Any]]:
        found = []
        if isinstance(node, dict):
            if node.get("type") == "object":
                found.append(node)
            for value in node.values():
                found.extend(objects(value))
        return found

    closed = objects(schema)
    assert len(closed) == 2
    for obj in closed:
        assert obj["additionalProperties"] is False
        assert set(obj["required"]) == set(obj["properties"])
    # callers get a copy they may change
    fmt["json_schema"]["schema"]["required"].append("x")
    assert contracts.answer_schema()["required"] == ["events"]


def test_answer_schema_with_labels_allows_only_those_labels() -> None:
    schema = contracts.answer_schema(["dog", "cat", "dog"])
    label = schema["properties"]["events"]["items"]["properties"]["label"]
    assert label["enum"] == ["dog", "cat"]
    check = jsonschema.Draft202012Validator(schema)
    assert check.is_valid({"events": [ANSWER_EVENT | {"label": "cat"}]})
    assert not check.is_valid({"events": [ANSWER_EVENT | {"label": "red ball"}]})
    assert (
        "enum"
        not in contracts.answer_schema()["properties"]["events"]["items"]["properties"]["label"]
    )


# --- the schema files themselves ------------------------------------------------------------


@pytest.mark.parametrize("name", contracts.SCHEMA_NAMES)
def test_schema_files_are_valid_and_addressed(name: str) -> None:
    schema = schema_for(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    stem, _, version = SCHEMA_IDS[name].removeprefix("vidloc.").partition(".")
    assert name in (stem, f"{stem}_{version}")
    assert schema["$id"] == schema_url(name) == f"https://vidloc.dev/schemas/{stem}.{version}.json"
    assert schema["properties"].get("schema", {"const": SCHEMA_IDS[name]}) == {
        "const": SCHEMA_IDS[name]
    }
    if name in MODELS:
        field = MODELS[name].model_fields["schema_id"]
        assert field.default == SCHEMA_IDS[name]
        # The first version is the model's own; a later one is one more id it reads.
        assert typing.get_args(field.annotation)[0] == SCHEMA_IDS[name]
        assert SCHEMA_IDS[name] == MODELS[name].SCHEMA  # type: ignore[attr-defined]
        later = SCHEMA_IDS.get(f"{name}_v2")
        assert later is None or later in typing.get_args(field.annotation)


@pytest.mark.parametrize("name", contracts.SCHEMA_NAMES)
def test_checked_in_schemas_are_generated_from_the_models(name: str) -> None:
    # The models are the source of truth; this fails after a model change until the files are
    # regenerated, so a stale file can never disagree with the code that decodes.
    path = f"contracts/schemas/{schema_file(name)}"
    text = resources.files("contracts").joinpath("schemas", schema_file(name)).read_text("utf-8")
    assert text == render(generate_schemas()[name]), (
        f"{path} is stale: the models changed. Run `.venv/bin/{REGENERATE_COMMAND}` "
        "and commit the schema files."
    )


def test_generate_command_writes_what_the_test_expects(tmp_path: Path) -> None:
    assert sorted(write_schemas(tmp_path)) == sorted(schema_file(n) for n in contracts.SCHEMA_NAMES)
    assert write_schemas(tmp_path) == []  # nothing changed, nothing written
    for name in contracts.SCHEMA_NAMES:
        assert json.loads((tmp_path / schema_file(name)).read_text("utf-8")) == schema_for(name)


def test_shared_definitions_do_not_drift_between_files() -> None:
    # Same $defs name, same model: two classes of one name would collide here.
    seen: dict[str, tuple[str, Any]] = {}
    for name in contracts.SCHEMA_NAMES:
        for key, definition in schema_for(name).get("$defs", {}).items():
            first = seen.setdefault(key, (name, definition))
            assert definition == first[1], f"$defs/{key} differs in {name} and {first[0]}"
    assert {"ObjectRef", "SourceObject", "ErrorInfo", "Usage"} <= set(seen)


def test_schema_for_returns_a_copy_and_knows_its_names() -> None:
    schema_for("ingest")["title"] = "changed"
    assert schema_for("ingest")["title"] != "changed"
    with pytest.raises(KeyError, match="unknown contract 'nope'"):
        schema_for("nope")


def test_format_checking_is_active() -> None:
    # Without rfc3339-validator jsonschema silently skips date-time; the pattern alone would
    # then pass 2025-02-30.
    assert "date-time" in jsonschema.Draft202012Validator.FORMAT_CHECKER.checkers
    bad_day = edit(INGEST, "submitted_at", "2025-02-30T12:00:00Z")
    assert jsonschema.Draft202012Validator(schema_for("ingest")).is_valid(bad_day)
    assert not validator("ingest").is_valid(bad_day)


def test_contracts_import_nothing_that_does_io() -> None:
    code = (
        "import sys, contracts; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'kafka', 'httpx', 'minio', 'urllib3', 'requests', 'boto3', 'jsonschema', 'vidloc', "
        "'workers', 'producers'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


# --- ingest v2: a new analysis of an analysed video ------------------------------------------

ASK: dict[str, Any] = {
    **INGEST,
    "schema": "vidloc.ingest.v2",
    "analysis": {"id": "a-0123456789abcdef"},
    "options": {"prompt": "when does anyone stand up", "labels": ["standing up"]},
}


def test_a_v2_event_asks_a_named_analysis_and_a_v1_event_the_first() -> None:
    asked = decode_ingest(ASK)
    assert asked.analysis is not None and asked.analysis_id == "a-0123456789abcdef"
    assert decode_ingest(INGEST).analysis_id == "default"
    # it round-trips as v2, and a replay of one message is one analysis
    assert decode_ingest(contracts.encode(asked)) == asked
    assert contracts.derive_analysis_id("e-1") == contracts.derive_analysis_id("e-1")
    assert contracts.derive_analysis_id("e-1") != contracts.derive_analysis_id("e-2")
    assert jsonschema.Draft202012Validator(schema_for("ingest_v2")).is_valid(ASK)
    assert not jsonschema.Draft202012Validator(schema_for("ingest")).is_valid(ASK)
    assert not jsonschema.Draft202012Validator(schema_for("ingest_v2")).is_valid(INGEST)


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        pytest.param(edit(ASK, "analysis", drop=True), "analysis", id="v2-without-analysis"),
        pytest.param(edit(ASK, "schema", "vidloc.ingest.v1"), "schema", id="v1-with-analysis"),
        pytest.param(edit(ASK, "analysis.id", "default"), "analysis.id", id="default-id"),
        pytest.param(
            edit(ASK, "options", {"prompt": "  ", "labels": []}), "options.prompt", id="no-question"
        ),
        pytest.param(
            edit(ASK, "options.prompt", "x" * 8001), "options.prompt", id="oversized-prompt"
        ),
        pytest.param(
            edit(
                ASK,
                "stream",
                {
                    "stream_id": "cam",
                    "seq": 0,
                    "start_s": 0.0,
                    "duration_s": 4.0,
                    "wall_clock": "2026-12-04T10:00:00Z",
                },
            ),
            "stream",
            id="stream-segment",
        ),
    ],
)
def test_a_v2_event_that_asks_nothing_clear_is_refused(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(ContractError) as caught:
        decode_ingest(doc)
    assert caught.value.field == field
