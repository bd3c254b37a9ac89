"""The bucket-notification bridge: ``s3.events`` (the store's own JSON) -> ``video.ingest``.

The parsing is pure and lives in :mod:`producers.notifications`; this module is the loop.
Delivery is at-least-once: a record's offset is committed only after each of its ingest events
(or its DLQ record) is acked by Kafka.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from contracts import DlqRecord, ErrorInfo, IngestEvent, MessageSource, encode, wrap_original
from producers.hls_bridge import HlsFollower, HlsUpdate
from producers.notifications import (
    BAD_NOTIFICATION,
    SUBMITTED_META,
    BridgeDecision,
    CreatedObject,
    SeenObjects,
    decode_object_key,
    ingest_events_from_notification,
    is_video_key,
    notification_event_id,
    parse_notification,
)
from producers.uploads import adopt
from vidloc import names
from vidloc.adapters.kafka import BusRecord, EventPublisher, TopicReader
from vidloc.adapters.object_store import ObjectStore
from vidloc.backoff import compute_backoff
from vidloc.errors import InputError, ObjectMissing, TransientError, VidlocError
from vidloc.settings import Settings

__all__ = [
    "BAD_NOTIFICATION",
    "SUBMITTED_META",
    "BridgeDecision",
    "CreatedObject",
    "SeenObjects",
    "dead_letter",
    "decode_object_key",
    "forward_notification",
    "ingest_events_from_notification",
    "is_video_key",
    "notification_event_id",
    "parse_notification",
    "run_bridge",
]

log = logging.getLogger(__name__)


class Publisher(Protocol):
    def publish(self, topic: str, key: str, value: bytes, *, timeout_s: float = 30.0) -> None: ...


def forward_notification(
    payload: bytes,
    *,
    video_bucket: str,
    publisher: Publisher,
    seen: SeenObjects,
    now: datetime,
    submitted: Callable[[str, str, str], bool] | None = None,
    hls: Callable[[CreatedObject, datetime], HlsUpdate] | None = None,
    adopt_event: Callable[[IngestEvent], IngestEvent] | None = None,
) -> int:
    """Publish the ingest events of one notification, each acked; returns how many were new.

    Raises BadIngestEvent for a payload that is no notification, BusUnavailable when Kafka fails
    (the caller rewinds and retries; ``seen`` only records what was acked). ``submitted`` says
    whether an object version was uploaded by ``vidloc submit``, which publishes its own event.
    ``hls`` turns a playlist version under ``hls/<stream-id>/`` into its new segments' events
    (producers/hls_bridge.py); without it playlists are left alone. ``adopt_event`` gives an
    upload announced over HTTP the video id and options of its submission (producers/uploads.py).
    """
    decision = ingest_events_from_notification(payload, video_bucket=video_bucket, now=now)
    for key, reason in decision.skipped:
        if reason.startswith("not a video"):
            log.info("skipping non-video object %s: %s", key, reason)
        else:
            log.info("skipping %s: %s", key or "(notification)", reason)
    published = 0
    for event in decision.events:
        if adopt_event is not None:
            event = adopt_event(event)
        source = event.source
        identity = (source.bucket, source.key, source.etag)
        if identity in seen:
            log.info("duplicate notification for %s/%s, already bridged", source.bucket, source.key)
            continue
        if submitted is not None and submitted(*identity):
            log.info("skipping %s/%s: uploaded by vidloc submit", source.bucket, source.key)
            seen.add(identity)
            continue
        publisher.publish(names.TOPIC_INGEST, event.effective_video_id, encode(event))
        seen.add(identity)
        published += 1
        log.info(
            "bridged %s/%s -> %s",
            source.bucket,
            source.key,
            names.TOPIC_INGEST,
            extra={"video_id": event.effective_video_id, "job_id": event.job_id},
        )
    for playlist in decision.playlists:
        published += _forward_playlist(playlist, publisher, seen, now, hls)
    return published


def _forward_playlist(
    playlist: CreatedObject,
    publisher: Publisher,
    seen: SeenObjects,
    now: datetime,
    hls: Callable[[CreatedObject, datetime], HlsUpdate] | None,
) -> int:
    """Publish a playlist version's new segments keyed by their stream, then remember them."""
    assert playlist.etag is not None
    identity = (playlist.bucket, playlist.key, playlist.etag)
    if identity in seen:
        log.info("duplicate notification for playlist %s, already bridged", playlist.key)
        return 0
    if hls is None:
        log.info("skipping HLS playlist %s: no HLS follower", playlist.key)
        return 0
    update = hls(playlist, now)
    for event in update.events:
        publisher.publish(names.TOPIC_INGEST, update.stream_id, encode(event))
    update.commit()  # only after every event was acked: a crash before repeats, never loses
    seen.add(identity)
    return len(update.events)


def dead_letter(record: BusRecord, error: VidlocError, *, now: datetime) -> tuple[str, bytes]:
    """Key and value of the DLQ message for a notification that can never be bridged."""
    original, encoding = wrap_original(record.value)
    dlq = DlqRecord(
        original=original,
        original_encoding=encoding,
        error=ErrorInfo(code=error.code, message=error.message[:4000]),
        failed_at=now,
        source=MessageSource(
            topic=record.topic, partition=record.partition, offset=record.offset, key=record.key
        ),
    )
    # No video id exists for an unreadable notification; its position is unique and stable.
    return f"{record.topic}-{record.partition}-{record.offset}", encode(dlq)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def run_bridge(
    settings: Settings,
    *,
    stop: threading.Event,
    poll_timeout_s: float = 0.5,
    group_id: str = names.BRIDGE_GROUP,
) -> None:
    """Consume ``s3.events`` until ``stop`` is set; never crashes on bad input or a Kafka blip.

    ``group_id`` exists for tests; bridges in production share the one group.
    """
    seen = SeenObjects()
    stream = TopicReader.join(
        settings,
        group_id,
        [names.TOPIC_S3_EVENTS],
        # Bridging a notification is milliseconds, so larger batches than the workers' are fine.
        max_poll_records=100,
        max_poll_interval_ms=5 * 60 * 1000,
    )
    store = ObjectStore(settings)
    failures = 0
    try:
        with EventPublisher(settings) as publisher:
            log.info("bridge consuming %s -> %s", names.TOPIC_S3_EVENTS, names.TOPIC_INGEST)
            while not stop.is_set():
                try:
                    records = stream.poll(timeout_s=poll_timeout_s)
                    _bridge_batch(stream, records, settings, publisher, seen, store)
                    failures = 0
                except TransientError as exc:
                    delay = compute_backoff(failures, base_s=0.5, cap_s=15.0)
                    failures += 1
                    log.warning("bridge retrying in %.1fs: %s", delay, exc)
                    stop.wait(delay)
    finally:
        stream.close()
        log.info("bridge stopped")


def _bridge_batch(
    stream: TopicReader,
    records: list[BusRecord],
    settings: Settings,
    publisher: EventPublisher,
    seen: SeenObjects,
    store: ObjectStore,
) -> None:
    follower = HlsFollower(store, video_bucket=settings.video_bucket)

    def submitted(bucket: str, key: str, etag: str) -> bool:
        try:
            info = store.stat(bucket, key)
        except ObjectMissing:
            return False  # gone already: bridge it anyway, the worker reports the failure
        return info.etag == etag and info.metadata.get(SUBMITTED_META) == "1"

    for index, record in enumerate(records):
        try:
            forward_notification(
                record.value,
                video_bucket=settings.video_bucket,
                publisher=publisher,
                seen=seen,
                now=_utcnow(),
                submitted=submitted,
                hls=follower,
                adopt_event=lambda event: adopt(event, store, settings.timeline_bucket),
            )
        except InputError as exc:
            log.error(
                "notification %s[%d]@%d sent to %s: %s",
                record.topic,
                record.partition,
                record.offset,
                names.TOPIC_DLQ,
                exc,
            )
            try:
                key, value = dead_letter(record, exc, now=_utcnow())
                publisher.publish(names.TOPIC_DLQ, key, value)
            except TransientError:
                stream.rewind(records[index:])
                raise
        except TransientError:
            # Not committed: rewind so this and every later fetched record is polled again.
            stream.rewind(records[index:])
            raise
        stream.commit_past(record)
