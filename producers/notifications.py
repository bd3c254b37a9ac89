"""Pure half of the bridge: the S3 store's notification JSON -> ingest events. No I/O.

Every notification shape the stores send (AWS/versitygw ``{"Records": [...]}``, older
versitygw's bare record array, the connectivity test message) is handled here, so it is tested
without Kafka. Ingest events are derived deterministically from bucket + key + etag, so a
re-delivered notification becomes the same event, the same video and the same job downstream.
"""

from __future__ import annotations

import re
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote_plus

from pydantic import ValidationError

from contracts import (
    ContractError,
    IngestEvent,
    IngestOptions,
    SourceObject,
    derive_video_id,
)
from contracts.codec import load_json
from contracts.limits import MESSAGE_LIMITS
from producers.hls import hls_prefix_of, is_playlist_key
from vidloc import names
from vidloc.errors import BadIngestEvent
from vidloc.tenancy import tenant_of_key

BAD_NOTIFICATION = "bad_notification"
# ``vidloc submit`` tags its uploads with this user metadata; the bridge leaves them alone,
# since submit publishes their ingest event itself (with the user's prompt and options).
SUBMITTED_META = "vidloc-submitted"
_EVENT_ID_NAMESPACE = uuid.UUID("6f1d7f0e-3c55-5b59-9a8e-8a4d2f0b9c11")


@dataclass(frozen=True)
class CreatedObject:
    """One object-created record of a notification, with its key already URL-decoded."""

    bucket: str
    key: str
    size: int | None
    etag: str | None
    event_name: str


@dataclass(frozen=True)
class ParsedNotification:
    created: list[CreatedObject] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _bad(reason: str) -> BadIngestEvent:
    return BadIngestEvent(f"s3 notification rejected: {reason}", code=BAD_NOTIFICATION)


# versitygw names its (global, not per-bucket) notification targets like this, and unlike AWS
# and MinIO it puts the key in the record as stored, not form-encoded.
_RAW_KEY_CONFIGURATIONS = frozenset({"kafka-global", "webhook-global", "nats-global"})
# What a form-encoded key can contain; anything else (a space, 'ü') means it was never encoded.
_ENCODED_KEY = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@/%-]*")


def decode_object_key(raw: str) -> str:
    """AWS and MinIO form-encode keys: ``%XX`` escapes (UTF-8) and ``+`` for a space."""
    return unquote_plus(raw, encoding="utf-8", errors="strict")


def key_is_encoded(raw: str, configuration_id: str | None) -> bool:
    """Whether a record's key still needs :func:`decode_object_key`.

    A key with characters encoding would have escaped was sent raw; so are all of versitygw's.
    """
    if configuration_id in _RAW_KEY_CONFIGURATIONS:
        return False
    return _ENCODED_KEY.fullmatch(raw) is not None


def _bare_etag(etag: Any) -> str | None:
    if not isinstance(etag, str):
        return None
    bare = etag.strip().strip('"')
    return bare or None


def _records(document: Any) -> list[Any] | None:
    """The record list, or None for the store's connectivity test message."""
    if isinstance(document, Mapping):
        if "Records" in document:
            records = document["Records"]
            if not isinstance(records, list):
                raise _bad("'Records' is not a list")
            return records
        # versitygw and AWS send a test message when a notification target is configured.
        if str(document.get("Event", "")).endswith("TestEvent"):
            return None
        raise _bad("no 'Records' in the notification object")
    # Older versitygw releases publish the bare record array.
    if isinstance(document, list):
        return document
    raise _bad(f"expected a JSON object or array, got {type(document).__name__}")


def _created_object(index: int, record: Any) -> CreatedObject | tuple[str, str]:
    if not isinstance(record, Mapping):
        raise _bad(f"record {index} is not an object")
    event_name = str(record.get("eventName", ""))
    s3 = record.get("s3")
    if not isinstance(s3, Mapping):
        raise _bad(f"record {index} has no 's3' object")
    bucket_doc, obj = s3.get("bucket"), s3.get("object")
    config_id = s3.get("configurationId")
    config_id = config_id if isinstance(config_id, str) else None
    bucket = bucket_doc.get("name") if isinstance(bucket_doc, Mapping) else None
    raw_key = obj.get("key") if isinstance(obj, Mapping) else None
    if not isinstance(bucket, str) or not bucket:
        raise _bad(f"record {index} has no s3.bucket.name")
    if not isinstance(obj, Mapping) or not isinstance(raw_key, str) or not raw_key:
        raise _bad(f"record {index} has no s3.object.key")
    try:
        key = decode_object_key(raw_key) if key_is_encoded(raw_key, config_id) else raw_key
    except UnicodeDecodeError as exc:
        raise _bad(f"record {index} key {raw_key!r} is not valid percent-encoded UTF-8") from exc
    if not event_name.removeprefix("s3:").startswith("ObjectCreated"):
        return key, f"event {event_name or '(none)'} is not an object creation"
    size = obj.get("size")
    return CreatedObject(
        bucket=bucket,
        key=key,
        size=size if isinstance(size, int) and size >= 0 else None,
        etag=_bare_etag(obj.get("eTag")),
        event_name=event_name,
    )


def parse_notification(payload: bytes) -> ParsedNotification:
    """Object-created records of one notification; anything else is skipped with a reason.

    Raises :class:`BadIngestEvent` (code ``bad_notification``) when the payload is not a
    notification at all, so the loop can send it to the DLQ.
    """
    try:
        # Bounded before parsing: a deeply nested payload must not raise RecursionError here.
        _, document = load_json(payload, MESSAGE_LIMITS)
    except ContractError as exc:
        if exc.code is not None:  # a parsing limit: its own code (docs/errors.md)
            raise BadIngestEvent(f"s3 notification rejected: {exc.reason}", code=exc.code) from exc
        raise _bad(f"not JSON ({exc.reason})") from exc
    records = _records(document)
    if records is None:
        return ParsedNotification(skipped=[("", "store test event")])
    parsed = ParsedNotification()
    for index, record in enumerate(records):
        outcome = _created_object(index, record)
        if isinstance(outcome, CreatedObject):
            parsed.created.append(outcome)
        else:
            parsed.skipped.append(outcome)
    return parsed


def is_video_key(key: str) -> bool:
    return PurePosixPath(key).suffix.lower() in names.VIDEO_EXTENSIONS


def notification_event_id(bucket: str, key: str, etag: str) -> str:
    """Same object version -> same event id, however often the store re-sends it."""
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, f"{bucket}\n{key}\n{etag}"))


class SeenObjects:
    """A bounded LRU of (bucket, key, etag) already bridged, to drop duplicate deliveries."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._items: OrderedDict[tuple[str, str, str], None] = OrderedDict()

    def __contains__(self, item: tuple[str, str, str]) -> bool:
        return item in self._items

    def add(self, item: tuple[str, str, str]) -> None:
        self._items[item] = None
        self._items.move_to_end(item)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class BridgeDecision:
    """What one notification turns into: ingest events to publish, and keys left alone."""

    events: list[IngestEvent]
    skipped: list[tuple[str, str]]
    # HLS playlists under hls/<stream-id>/: their new segments are bridged by reading them
    # (producers/hls_bridge.py), which is I/O, so the pure half only picks them out.
    playlists: list[CreatedObject] = field(default_factory=list)


def build_ingest_event(
    obj: CreatedObject, etag: str, *, now: datetime, options: IngestOptions | None = None
) -> IngestEvent:
    """The ingest event of one object version; raises pydantic's ValidationError on bad keys."""
    return IngestEvent(
        event_id=notification_event_id(obj.bucket, obj.key, etag),
        video_id=derive_video_id(obj.bucket, obj.key, etag),
        source=SourceObject(bucket=obj.bucket, key=obj.key, etag=etag, size=obj.size or 0),
        tenant=tenant_of_key(obj.key),  # an upload under tenants/<t>/ is that tenant's
        options=options or IngestOptions(),
        submitted_at=now,
    )


def ingest_events_from_notification(
    payload: bytes,
    *,
    video_bucket: str,
    now: datetime,
    options: IngestOptions | None = None,
) -> BridgeDecision:
    """Pure: one notification -> the ingest events it asks for (raises BadIngestEvent)."""
    parsed = parse_notification(payload)
    events: list[IngestEvent] = []
    playlists: list[CreatedObject] = []
    skipped = list(parsed.skipped)
    for obj in parsed.created:
        hls = hls_prefix_of(obj.key)
        if obj.bucket != video_bucket:
            skipped.append((obj.key, f"bucket {obj.bucket} is not the video bucket"))
        elif hls is not None and is_playlist_key(obj.key):
            if obj.etag is None:
                skipped.append((obj.key, "notification carries no eTag"))
            else:
                playlists.append(obj)
        elif hls is not None and is_video_key(obj.key):
            skipped.append((obj.key, f"HLS segment of stream {hls.stream_id}: its playlist"))
        elif not is_video_key(obj.key):
            suffix = PurePosixPath(obj.key).suffix or "no extension"
            skipped.append((obj.key, f"not a video ({suffix})"))
        elif obj.etag is None:
            skipped.append((obj.key, "notification carries no eTag"))
        else:
            try:
                events.append(build_ingest_event(obj, obj.etag, now=now, options=options))
            except ValidationError as exc:
                problem = ContractError.from_validation(exc)
                skipped.append((obj.key, f"refused by the ingest contract: {problem}"))
    return BridgeDecision(events=events, skipped=skipped, playlists=playlists)
