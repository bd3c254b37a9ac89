"""The bridge's pure half: S3 notification JSON -> object-created records -> ingest events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from producers.bridge import (
    BAD_NOTIFICATION,
    SeenObjects,
    decode_object_key,
    ingest_events_from_notification,
    notification_event_id,
    parse_notification,
)
from vidloc.errors import BadIngestEvent

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def record(
    key: str,
    *,
    bucket: str = "videos",
    event: str = "s3:ObjectCreated:Put",
    etag: str | None = '"9b2cf535f27731c974343645a3985328"',
    size: int = 123_456,
    config: str = "vidloc-new-videos",
) -> dict[str, Any]:
    """One record in the S3 event message structure 2.2 (AWS; versitygw writes the same shape).

    AWS names the bucket's notification configuration in ``configurationId`` and form-encodes
    the key; versitygw uses ``<target>-global`` there and sends the key as stored.
    """
    return {
        "eventVersion": "2.2",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-01-02T03:04:05Z",
        "eventName": event,
        "userIdentity": {"PrincipalId": "vidloc"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "1843A4F0C0E0A1B2", "x-amz-id-2": ""},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": config,
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"PrincipalId": "vidloc"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": {
                "key": key,
                "size": size,
                "eTag": etag,
                "versionId": None,
                "sequencer": "1A",
            },
        },
        "glacierEventData": {"restoreEventData": {}},
    }


def notification(*records: dict[str, Any]) -> bytes:
    return json.dumps({"Records": list(records)}).encode()


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        pytest.param("uploads/clip.mp4", "uploads/clip.mp4", id="plain"),
        pytest.param("some+dir/clip+%C3%BC.mp4", "some dir/clip ü.mp4", id="plus-and-utf8"),
        pytest.param("some%20dir/clip%20%C3%BC.mp4", "some dir/clip ü.mp4", id="percent-space"),
        pytest.param("a%2Bb/%E6%97%A5%E6%9C%AC.mkv", "a+b/日本.mkv", id="literal-plus-cjk"),
    ],
)
def test_keys_are_url_decoded(raw: str, decoded: str) -> None:
    assert decode_object_key(raw) == decoded
    parsed = parse_notification(notification(record(raw)))
    assert [c.key for c in parsed.created] == [decoded]


# Verbatim from the local versitygw (webhook target) after a minio put of "tmp-probe/a b ü.json".
VERSITYGW_RAW = (
    '{"Records":[{"eventVersion":"2.2","eventSource":"aws:s3","awsRegion":"us-east-1",'
    '"eventTime":"2026-11-25T17:28:18Z","eventName":"s3:ObjectCreated:Put",'
    '"userIdentity":{"PrincipalId":"vidloc"},"requestParameters":{"sourceIPAddress":"127.0.0.1"},'
    '"responseElements":{"x-amz-request-id":"","x-amz-id-2":""},"s3":{"s3SchemaVersion":"1.0",'
    '"configurationId":"webhook-global","bucket":{"name":"videos","ownerIdentity":'
    '{"PrincipalId":"vidloc"},"arn":"arn:aws:s3:::/videos/tmp-probe/a b \u00fc.json"},'
    '"object":{"key":"tmp-probe/a b \u00fc.json","size":7,'
    '"eTag":"\\"ac3ef48caa08fa3ed5e025da69edc645\\"","versionId":null,"sequencer":"1"}},'
    '"glacierEventData":{"restoreEventData":{"lifecycleRestorationExpiryTime":"",'
    '"lifecycleRestoreStorageClass":""}}}]}'
).encode()


def test_versitygw_record_as_sent_by_the_local_store() -> None:
    (created,) = parse_notification(VERSITYGW_RAW).created
    assert created.key == "tmp-probe/a b ü.json"
    assert created.etag == "ac3ef48caa08fa3ed5e025da69edc645"
    assert created.size == 7


@pytest.mark.parametrize(
    "key",
    ["some dir/clip ü.mp4", "a+b/c%20d.mp4", "100%/x.mp4", "plain/clip.mp4"],
)
def test_versitygw_keys_are_taken_as_stored(key: str) -> None:
    # versitygw does not form-encode: '+' and '%' in its keys are literal characters.
    parsed = parse_notification(notification(record(key, config="webhook-global")))
    assert [c.key for c in parsed.created] == [key]


def test_unencoded_key_from_another_store_is_not_decoded_twice() -> None:
    # A space or 'ü' cannot survive form-encoding, so such a key was sent raw.
    parsed = parse_notification(notification(record("a+b dir/ü.mp4")))
    assert [c.key for c in parsed.created] == ["a+b dir/ü.mp4"]


def test_created_record_fields_and_bare_etag() -> None:
    (created,) = parse_notification(notification(record("uploads/a.mp4", size=42))).created
    assert created.bucket == "videos"
    assert created.size == 42
    assert created.etag == "9b2cf535f27731c974343645a3985328"
    assert created.event_name == "s3:ObjectCreated:Put"


def test_bare_record_array_of_older_versitygw_is_accepted() -> None:
    payload = json.dumps([record("uploads/b.mov")]).encode()
    assert [c.key for c in parse_notification(payload).created] == ["uploads/b.mov"]


@pytest.mark.parametrize(
    "event",
    ["s3:ObjectCreated:Put", "s3:ObjectCreated:CompleteMultipartUpload", "ObjectCreated:Copy"],
)
def test_all_object_created_flavours_count(event: str) -> None:
    assert len(parse_notification(notification(record("x.mp4", event=event))).created) == 1


def test_removal_and_tagging_events_are_skipped_with_reason() -> None:
    parsed = parse_notification(
        notification(
            record("gone.mp4", event="s3:ObjectRemoved:Delete"),
            record("tagged.mp4", event="s3:ObjectTagging:Put"),
        )
    )
    assert parsed.created == []
    assert [k for k, _ in parsed.skipped] == ["gone.mp4", "tagged.mp4"]
    assert "ObjectRemoved:Delete" in parsed.skipped[0][1]


def test_store_test_event_is_skipped_not_rejected() -> None:
    payload = json.dumps(
        {"Service": "S3", "Event": "s3:TestEvent", "Time": "2026-01-02T03:04:05Z", "Bucket": "x"}
    ).encode()
    parsed = parse_notification(payload)
    assert parsed.created == []
    assert parsed.skipped == [("", "store test event")]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        pytest.param(b"{not json", "not JSON", id="not-json"),
        pytest.param(b"\xff\xfe", "not JSON", id="not-utf8"),
        pytest.param(b'"a string"', "expected a JSON object or array", id="scalar"),
        pytest.param(b'{"Records": {}}', "'Records' is not a list", id="records-not-list"),
        pytest.param(b'{"Something": 1}', "no 'Records'", id="no-records"),
        pytest.param(b'{"Records": [1]}', "record 0 is not an object", id="record-scalar"),
        pytest.param(
            b'{"Records": [{"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {}}}]}',
            "no s3.bucket.name",
            id="no-bucket",
        ),
        pytest.param(
            b'{"Records": [{"eventName": "s3:ObjectCreated:Put",'
            b' "s3": {"bucket": {"name": "videos"}, "object": {}}}]}',
            "no s3.object.key",
            id="no-key",
        ),
        pytest.param(
            notification(record("bad%FFutf8.mp4")),
            "not valid percent-encoded UTF-8",
            id="bad-escape",
        ),
    ],
)
def test_malformed_notifications_raise_a_clear_error(payload: bytes, reason: str) -> None:
    with pytest.raises(BadIngestEvent) as info:
        parse_notification(payload)
    assert info.value.code == BAD_NOTIFICATION
    assert reason in str(info.value)


def test_non_video_keys_and_other_buckets_are_skipped() -> None:
    decision = ingest_events_from_notification(
        notification(
            record("uploads/readme.txt"),
            record("uploads/clip.mp4", bucket="elsewhere"),
            record("uploads/ok.MKV"),
        ),
        video_bucket="videos",
        now=NOW,
    )
    assert [e.source.key for e in decision.events] == ["uploads/ok.MKV"]
    reasons = dict(decision.skipped)
    assert "not a video" in reasons["uploads/readme.txt"]
    assert "elsewhere" in reasons["uploads/clip.mp4"]


def test_record_without_etag_is_skipped() -> None:
    decision = ingest_events_from_notification(
        notification(record("uploads/a.mp4", etag=None)), video_bucket="videos", now=NOW
    )
    assert decision.events == []
    assert decision.skipped == [("uploads/a.mp4", "notification carries no eTag")]


def test_ingest_event_carries_source_and_deterministic_ids() -> None:
    payload = notification(record("some+dir/clip+%C3%BC.mp4", size=2048))
    first = ingest_events_from_notification(payload, video_bucket="videos", now=NOW)
    later = datetime(2026, 5, 1, tzinfo=UTC)
    again = ingest_events_from_notification(payload, video_bucket="videos", now=later)
    (event,) = first.events
    (replayed,) = again.events
    assert event.source.bucket == "videos"
    assert event.source.key == "some dir/clip ü.mp4"
    assert event.source.etag == "9b2cf535f27731c974343645a3985328"
    assert event.source.size == 2048
    assert event.submitted_at == NOW
    # A re-delivered notification must become the same event and the same video.
    assert (replayed.event_id, replayed.video_id) == (event.event_id, event.video_id)
    assert event.event_id == notification_event_id(
        "videos", "some dir/clip ü.mp4", "9b2cf535f27731c974343645a3985328"
    )


def test_new_object_version_gets_new_ids() -> None:
    a = ingest_events_from_notification(
        notification(record("x.mp4", etag="aaa")), video_bucket="videos", now=NOW
    ).events[0]
    b = ingest_events_from_notification(
        notification(record("x.mp4", etag="bbb")), video_bucket="videos", now=NOW
    ).events[0]
    assert a.event_id != b.event_id
    assert a.video_id != b.video_id


def test_seen_objects_is_a_bounded_lru() -> None:
    seen = SeenObjects(capacity=2)
    seen.add(("b", "k1", "e"))
    seen.add(("b", "k2", "e"))
    seen.add(("b", "k1", "e"))  # refreshes k1, so k2 is now the oldest
    seen.add(("b", "k3", "e"))
    assert ("b", "k1", "e") in seen
    assert ("b", "k2", "e") not in seen
    assert ("b", "k3", "e") in seen
    assert len(seen) == 2
