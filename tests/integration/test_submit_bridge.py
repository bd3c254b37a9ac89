"""``vidloc submit`` and the bucket-notification bridge against the live stack.

The bridge runs in a thread under a consumer group of its own whose offsets are first set to
the current end of ``s3.events``, so it bridges only what these tests upload.
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import jsonschema
import pytest
from minio import Minio

from contracts import IngestEvent, decode_dlq, decode_ingest, derive_video_id, schema_for
from producers.bridge import BAD_NOTIFICATION, SUBMITTED_META, run_bridge
from producers.submit import submit_files
from vidloc import names
from vidloc.adapters.kafka import BusRecord, EventPublisher, TopicReader, park_group_at_end
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings

pytestmark = pytest.mark.integration


def collect(
    tail: TopicReader, done: Callable[[list[BusRecord]], bool], *, timeout_s: float = 30.0
) -> list[BusRecord]:
    """Records from ``tail`` until ``done(records)`` or the deadline."""
    records: list[BusRecord] = []
    deadline = time.monotonic() + timeout_s
    while not done(records) and time.monotonic() < deadline:
        records += tail.poll(timeout_s=0.5)
    return records


def ingest_events(records: list[BusRecord]) -> list[IngestEvent]:
    """Distinct ingest events. Other bridges (a demo, a teammate's run) may share s3.events and
    bridge the same upload too; their copies are identical by design, so count each once."""
    events = [decode_ingest(r.value) for r in records if r.topic == names.TOPIC_INGEST]
    return list({event.event_id: event for event in events}.values())


@pytest.fixture
def store(stack: Settings) -> ObjectStore:
    return ObjectStore(stack)


@pytest.fixture
def prefix(store: ObjectStore, stack: Settings) -> Iterator[str]:
    value = f"test-producers/{uuid.uuid4().hex[:12]}/"
    yield value
    for key in list(store.list_keys(stack.video_bucket, value)):
        store.delete(stack.video_bucket, key)


@pytest.fixture
def ingest_tail(stack: Settings) -> Iterator[TopicReader]:
    with TopicReader.tail(stack, [names.TOPIC_INGEST, names.TOPIC_DLQ]) as tail:
        yield tail


@pytest.fixture
def bridge(stack: Settings, group_id: str) -> Iterator[threading.Thread]:
    park_group_at_end(stack, group_id, names.TOPIC_S3_EVENTS)
    stop = threading.Event()
    thread = threading.Thread(
        target=run_bridge,
        kwargs={"settings": stack, "stop": stop, "group_id": group_id},
        name="test-bridge",
        daemon=True,
    )
    thread.start()
    yield thread
    stop.set()
    thread.join(timeout=20)
    assert not thread.is_alive(), "the bridge did not stop within 20 s of stop.set()"


def test_submit_uploads_and_publishes_a_schema_valid_ingest_event(
    stack: Settings, store: ObjectStore, prefix: str, ingest_tail: TopicReader, tmp_path: Path
) -> None:
    clip = tmp_path / "tiny clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + uuid.uuid4().bytes)
    options = {"prompt": "find the red ball", "labels": ["ball", "goal"], "sample_fps": 2.0}
    with EventPublisher(stack) as publisher:
        (event,) = submit_files([clip], options, stack, store, publisher, key_prefix=prefix)

    key = f"{prefix}tiny clip.mp4"
    stored = store.stat(stack.video_bucket, key)
    assert stored.size == clip.stat().st_size
    assert stored.metadata.get(SUBMITTED_META) == "1"
    assert event.video_id == derive_video_id(stack.video_bucket, key, stored.etag)

    records = collect(ingest_tail, lambda rs: any(r.key == event.video_id for r in rs))
    (record,) = [r for r in records if r.key == event.video_id]
    jsonschema.validate(json.loads(record.value), schema_for("ingest"))
    published = decode_ingest(record.value)
    assert published == event
    assert (published.source.bucket, published.source.key) == (stack.video_bucket, key)
    assert (published.source.etag, published.source.size) == (stored.etag, stored.size)
    assert published.options.labels == ["ball", "goal"]
    assert published.options.prompt == "find the red ball"


def test_bridge_turns_a_plain_upload_into_one_ingest_event_and_skips_non_videos(
    stack: Settings,
    minio_client: Minio,
    prefix: str,
    ingest_tail: TopicReader,
    bridge: threading.Thread,
) -> None:
    bucket = stack.video_bucket
    text_key = f"{prefix}notes.txt"
    video_key = f"{prefix}some dir/clip ü.mp4"
    data = b"not really a video " + uuid.uuid4().bytes
    minio_client.put_object(bucket, text_key, io.BytesIO(b"hello"), 5)
    put = minio_client.put_object(bucket, video_key, io.BytesIO(data), len(data))
    etag = (put.etag or "").strip('"')
    video_id = derive_video_id(bucket, video_key, etag)

    records = collect(ingest_tail, lambda rs: any(r.key == video_id for r in rs))
    ours = [e for e in ingest_events(records) if e.source.key.startswith(prefix)]
    assert [e.source.key for e in ours] == [video_key]  # the .txt was skipped
    (event,) = ours
    assert event.video_id == video_id
    assert (event.source.bucket, event.source.etag, event.source.size) == (bucket, etag, len(data))
    assert bridge.is_alive()


def test_bridge_dead_letters_malformed_notifications_and_keeps_going(
    stack: Settings,
    minio_client: Minio,
    prefix: str,
    ingest_tail: TopicReader,
    bridge: threading.Thread,
) -> None:
    marker = uuid.uuid4().hex
    with EventPublisher(stack) as publisher:
        publisher.publish(names.TOPIC_S3_EVENTS, f"test-{marker}", f"{{not json {marker}".encode())
    # A good upload after the bad message: the bridge must go on past it.
    key = f"{prefix}after.webm"
    put = minio_client.put_object(stack.video_bucket, key, io.BytesIO(b"webm"), 4)
    video_id = derive_video_id(stack.video_bucket, key, (put.etag or "").strip('"'))

    def both_arrived(rs: list[BusRecord]) -> bool:
        # The bad message may sit in another partition than the store's, so wait for both.
        dlq = any(r.topic == names.TOPIC_DLQ and marker.encode() in r.value for r in rs)
        return dlq and any(r.key == video_id for r in rs)

    records = collect(ingest_tail, both_arrived)
    dead = [decode_dlq(r.value) for r in records if r.topic == names.TOPIC_DLQ]
    # One letter per bridge consuming s3.events: ours, plus any other bridge running now.
    letters = [d for d in dead if marker in str(d.original)]
    assert letters
    for letter in letters:
        assert letter.error.code == BAD_NOTIFICATION
        assert "not JSON" in letter.error.message
        assert letter.source.topic == names.TOPIC_S3_EVENTS
        assert letter.original_bytes() == f"{{not json {marker}".encode()
    assert [e.source.key for e in ingest_events(records) if e.source.key == key] == [key]
    assert bridge.is_alive()


def test_bridge_leaves_uploads_of_vidloc_submit_alone(
    stack: Settings,
    store: ObjectStore,
    minio_client: Minio,
    prefix: str,
    ingest_tail: TopicReader,
    bridge: threading.Thread,
    tmp_path: Path,
) -> None:
    clip = tmp_path / "submitted.mkv"
    clip.write_bytes(b"mkv " + uuid.uuid4().bytes)
    with EventPublisher(stack) as publisher:
        (submitted,) = submit_files([clip], {}, stack, store, publisher, key_prefix=prefix)
    # Notifications arrive in upload order, so once this later upload is bridged the
    # submitted file's notification has been handled too.
    later_key = f"{prefix}later.mp4"
    put = minio_client.put_object(stack.video_bucket, later_key, io.BytesIO(b"mp4"), 3)
    later_id = derive_video_id(stack.video_bucket, later_key, (put.etag or "").strip('"'))

    records = collect(ingest_tail, lambda rs: any(r.key == later_id for r in rs))
    for_submitted = [e for e in ingest_events(records) if e.source.key == submitted.source.key]
    assert [e.event_id for e in for_submitted] == [submitted.event_id]


def test_follower_started_before_publishing_sees_progress_result_and_timeline(
    stack: Settings, store: ObjectStore
) -> None:
    from datetime import UTC, datetime

    from rich.console import Console

    from contracts import (
        ObjectRef,
        ProgressEvent,
        ResultEvent,
        Sampling,
        SourceObject,
        Timeline,
        TimelineEvent,
        VideoMeta,
        encode,
    )
    from vidloc.cli.follow import Follower, print_result

    video_id = f"v-test-{uuid.uuid4().hex[:16]}"
    job_id, other_job = f"j-{uuid.uuid4().hex[:16]}", f"j-{uuid.uuid4().hex[:16]}"
    now = datetime.now(UTC)
    source = SourceObject(bucket=stack.video_bucket, key="x/clip.mp4", etag="abc", size=1)
    timeline = Timeline(
        video_id=video_id,
        job_id=job_id,
        source=source,
        video=VideoMeta(duration_s=9.0, fps=10.0, width=160, height=96, codec="h264"),
        localizer="cv",
        sampling=Sampling(sample_fps=1.0, chunk_s=30.0, frames=9, chunks=1),
        events=[
            TimelineEvent(id="e2", label="cut", start_s=6.0, end_s=6.0, description="second"),
            TimelineEvent(id="e1", label="red ball", start_s=1.5, end_s=4.0, description="rolls"),
        ],
        created_at=now,
    )
    timeline_key = f"test-producers/{video_id}/timeline.json"
    store.put_bytes(stack.timeline_bucket, timeline_key, encode(timeline))

    def result(job: str) -> ResultEvent:
        return ResultEvent(
            event_id=f"r-{job}",
            video_id=video_id,
            job_id=job,
            status="succeeded",
            source=ObjectRef(bucket=source.bucket, key=source.key),
            timeline=ObjectRef(bucket=stack.timeline_bucket, key=timeline_key),
            created_at=now,
        )

    console = Console(file=io.StringIO(), width=120, force_terminal=False)
    try:
        with Follower(stack, console=console) as follower, EventPublisher(stack) as publisher:
            follower.expect(video_id, "clip.mp4", job_id=job_id)
            progress = ProgressEvent(
                event_id=f"p-{job_id}",
                video_id=video_id,
                job_id=job_id,
                stage="localizing",
                chunks_done=1,
                chunks_total=2,
                at=now,
            )
            publisher.publish(names.TOPIC_PROGRESS, video_id, encode(progress))
            # An earlier job of the same video must not be taken for ours.
            publisher.publish(names.TOPIC_RESULTS, video_id, encode(result(other_job)))
            publisher.publish(names.TOPIC_RESULTS, video_id, encode(result(job_id)))
            started = time.monotonic()
            results = follower.wait(timeout_s=30)
        assert time.monotonic() - started < 30
        assert list(results) == [video_id]
        assert results[video_id].job_id == job_id
        print_result(console, store, "clip.mp4", results[video_id])
    finally:
        store.delete(stack.timeline_bucket, timeline_key)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert f"s3://{stack.timeline_bucket}/{timeline_key}" in out
    # Events are listed in time order with their descriptions.
    assert out.index("red ball") < out.index("cut")
    assert "1.5s" in out and "4.0s" in out and "rolls" in out
