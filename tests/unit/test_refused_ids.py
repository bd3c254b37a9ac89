"""The ids a refused message is announced under: its sender's where readable, else stable ones."""

from __future__ import annotations

import json
from typing import Any

from contracts import derive_job_id, derive_video_id
from workers.service.refused import SCAN_CHARS, refused_ids, top_level_strings


def doc(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema": "vidloc.ingest.v1",
        "event_id": "evt-7",
        "source": {"bucket": "b", "key": "k.mp4", "etag": "e", "size": 1},
    }
    return {**base, **fields}


def test_a_refused_event_keeps_its_event_and_video_id() -> None:
    ids = refused_ids(json.dumps(doc(video_id="vid-7", source=5)).encode(), b"other-key")
    assert ids.event_id == "evt-7"
    assert ids.job_id == derive_job_id("evt-7")  # what a sender computes from its event id
    assert ids.video_id == "vid-7"


def test_without_a_video_id_it_is_derived_from_the_source_like_a_decoded_event() -> None:
    ids = refused_ids(json.dumps(doc()).encode())
    assert ids.video_id == derive_video_id("b", "k.mp4", "e")


def test_nested_fields_of_the_same_name_are_not_mistaken_for_the_top_level_ones() -> None:
    message = {
        "options": {"extra": {"event_id": "inner", "video_id": "inner", "source": {"key": "x"}}},
        "list": [{"event_id": "in-a-list"}],
        **doc(video_id="outer"),
    }
    ids = refused_ids(json.dumps(message).encode())
    assert (ids.event_id, ids.video_id) == ("evt-7", "outer")


def test_ids_before_a_100000_deep_value_are_read_without_recursion() -> None:
    head = json.dumps(doc(video_id="vid-deep"))[:-1]
    raw = (head + ', "options": {"extra": ' + "[" * 100_000 + "]" * 100_000 + "}}").encode()
    ids = refused_ids(raw)
    assert (ids.event_id, ids.video_id) == ("evt-7", "vid-deep")


def test_unreadable_ids_fall_back_to_the_kafka_key_then_to_a_hash_of_the_bytes() -> None:
    late = ("[" * SCAN_CHARS + "]" * SCAN_CHARS).encode()
    raw = b'{"options": ' + late + b', "event_id": "too-late", "video_id": "too-late"}'
    keyed = refused_ids(raw, b"vid-from-key")
    assert keyed.event_id is None and keyed.video_id == "vid-from-key"
    assert keyed.job_id.startswith("job-")
    bare = refused_ids(b"\xff\xfe not json", None)
    assert bare.video_id.startswith("refused-") and bare.video_id != "unknown"
    assert bare == refused_ids(b"\xff\xfe not json", None)  # deterministic
    assert refused_ids(b"\xff\xfe other", None).video_id != bare.video_id


def test_ids_that_are_not_safe_are_not_repeated() -> None:
    hostile = doc(event_id="evt\n\x1b[31mforged", video_id="../../etc")
    del hostile["source"]
    ids = refused_ids(json.dumps(hostile).encode(), b"bad key\n")
    assert ids.event_id is None
    assert ids.video_id.startswith("refused-")


def test_malformed_text_yields_what_it_can() -> None:
    assert top_level_strings('{"event_id": "a", "video_id": ') == {("event_id",): "a"}
    assert top_level_strings('{"event_id": "unterminated') == {}
    assert top_level_strings("]]]}}{") == {}
