"""The live-stream parts of the v1 contracts round-trip and are checked like the rest."""

from __future__ import annotations

import json

import pytest

from contracts import ContractError, decode_ingest, decode_result, encode
from contracts.registry import generate_schemas
from contracts.stream import MAX_SEGMENTS_INDEXED, SegmentPlace, StreamSpan, StreamState

INGEST = {
    "schema": "vidloc.ingest.v1",
    "event_id": "stream-cam1-00000003",
    "video_id": "cam1",
    "source": {"bucket": "videos", "key": "streams/cam1/00000003.ts", "etag": "e", "size": 10},
    "submitted_at": "2026-11-29T17:00:00Z",
    "stream": {
        "stream_id": "cam1",
        "seq": 3,
        "start_s": 9.0,
        "duration_s": 3.0,
        "wall_clock": "2026-11-29T17:00:09Z",
        "gap_before_s": 5.0,
        "policy": "skip_to_live",
        "max_lag_s": 6.0,
    },
}


def test_a_segment_round_trips() -> None:
    event = decode_ingest(INGEST)
    assert event.stream is not None and event.stream.seq == 3 and event.stream.gap_before_s == 5
    assert decode_ingest(encode(event)) == event


def test_a_plain_ingest_event_has_no_stream() -> None:
    plain = {k: v for k, v in INGEST.items() if k != "stream"}
    assert decode_ingest(plain).stream is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("policy", "fastest", id="unknown-policy"),
        pytest.param("seq", -1, id="negative-seq"),
        pytest.param("stream_id", "../x", id="unsafe-id"),
        pytest.param("max_lag_s", 0, id="zero-lag"),
    ],
)
def test_bad_stream_parts_are_refused(field: str, value: object) -> None:
    bad = {**INGEST, "stream": {**INGEST["stream"], field: value}}  # type: ignore[dict-item]
    with pytest.raises(ContractError) as caught:
        decode_ingest(bad)
    assert caught.value.field == f"stream.{field}"


def test_generated_schemas_describe_the_stream_parts() -> None:
    schemas = generate_schemas()
    assert "stream" in schemas["ingest"]["properties"]
    assert "partial" in schemas["result"]["properties"]
    assert "stream" in schemas["timeline"]["properties"]


def test_partial_result_and_stream_timeline_round_trip() -> None:
    result = decode_result(
        {
            "schema": "vidloc.result.v1",
            "event_id": "r1",
            "video_id": "cam1",
            "job_id": "j1",
            "status": "succeeded",
            "source": {"bucket": "videos", "key": "streams/cam1/00000003.ts"},
            "timeline": {"bucket": "timelines", "key": "timelines/cam1/timeline.json"},
            "created_at": "2026-11-29T17:00:12Z",
            "partial": True,
            "stream": {
                "stream_id": "cam1",
                "seq": 3,
                "lag_s": 1.5,
                "new_events": ["s-00001"],
                "events": [{"id": "s-00001", "label": "gap", "start_s": 4.0, "end_s": 9.0}],
            },
        }
    )
    assert result.partial is True and result.stream is not None
    assert result.stream.events[0].label == "gap"
    assert decode_result(encode(result)) == result


def test_a_reversed_span_is_refused() -> None:
    with pytest.raises(ValueError, match="before start_s"):
        StreamSpan(start_s=2.0, end_s=1.0)


def test_the_segment_index_is_optional_bounded_and_round_trips() -> None:
    place = {"seq": 3, "key": "streams/cam1/00000003.ts", "etag": "e3", "start_s": 6.0,
             "duration_s": 2.0}  # fmt: skip
    state = StreamState.model_validate(
        {"stream_id": "cam1", "last_seq": 3, "segments_index": [place]}
    )
    assert state.segments_index is not None and state.segments_index[0].etag == "e3"
    assert StreamState.model_validate(state.model_dump()) == state
    assert StreamState(stream_id="cam1", last_seq=3).segments_index is None  # older timelines
    with pytest.raises(ValueError, match="at most"):
        StreamState.model_validate(
            {"stream_id": "cam1", "last_seq": 3,
             "segments_index": [place] * (MAX_SEGMENTS_INDEXED + 1)}
        )  # fmt: skip
    with pytest.raises(ValueError):
        SegmentPlace.model_validate({**place, "etag": ""})
    schema = generate_schemas()["timeline"]
    assert "segments_index" in json.dumps(schema)
