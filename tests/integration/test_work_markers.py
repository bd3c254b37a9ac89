"""Work markers on the real S3 server (versitygw): compare-and-set writes, a release that removes
only the failing job's own marker, a lease renewed while a long job runs, and of two workers
that read "no marker" at once only one running the work (docs/idempotency.md)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from apistack import isolated_settings

from contracts import IngestEvent, Timeline, decode_timeline, derive_job_id, encode
from vidloc import names
from vidloc.adapters.object_store import ObjectStore
from vidloc.errors import DecodeFailed
from vidloc.settings import Settings
from workers.pipeline.job import JobOutcome
from workers.service.dedup import WorkMarker, decode_marker, encode_marker
from workers.service.handler import Delivery, Disposition, IngestHandler
from workers.service.work_markers import WorkMarkers
from workers.types import TokenTally

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def marker_settings(stack: Settings) -> Settings:
    return isolated_settings(stack, "markers")


def _event(event_id: str, video_id: str) -> IngestEvent:
    return IngestEvent.model_validate(
        {
            "event_id": event_id,
            "video_id": video_id,
            "source": {"bucket": "videos", "key": f"{video_id}.mp4", "etag": "e1", "size": 10},
            "options": {"localizer": "cv"},
            "submitted_at": "2026-11-29T00:00:00Z",
        }
    )


class Runner:
    """Stores a timeline and succeeds, after ``before`` (which may block or raise)."""

    def __init__(self, store: ObjectStore, bucket: str, before: Any = None) -> None:
        self.store, self.bucket, self.before = store, bucket, before
        self.jobs: list[str] = []

    def run(self, event: IngestEvent, job_id: str, progress: Any) -> JobOutcome:
        self.jobs.append(job_id)
        if self.before is not None:
            self.before(job_id)
        video_id = event.effective_video_id
        key = names.timeline_key(video_id)
        timeline = _timeline(event, job_id)
        self.store.put_bytes(self.bucket, key, encode(timeline))
        return JobOutcome(timeline, self.bucket, key, TokenTally(1, 1, 1), 0.0)

    run_or_hand_off = run  # short videos: never handed off in spans


def _timeline(event: IngestEvent, job_id: str) -> Timeline:
    return decode_timeline(
        {
            "schema": "vidloc.timeline.v1",
            "video_id": event.effective_video_id,
            "job_id": job_id,
            "source": event.source.model_dump(),
            "video": {
                "duration_s": 10.0,
                "fps": 10.0,
                "width": 320,
                "height": 180,
                "codec": "h264",
            },
            "localizer": "cv",
            "sampling": {"sample_fps": 1.0, "chunk_s": 30.0, "frames": 10, "chunks": 1},
            "events": [],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0},
            "created_at": "2026-11-29T00:00:00Z",
        }
    )


def _handler(settings: Settings, runner: Runner, markers: WorkMarkers) -> IngestHandler:
    return IngestHandler(
        settings.model_copy(update={"video_bucket": "videos"}),
        runner,  # type: ignore[arg-type]
        lambda topic, key, value: None,
        markers=markers,
    )


def _deliver(handler: IngestHandler, event: IngestEvent, offset: int) -> Disposition:
    delivery = Delivery(names.TOPIC_INGEST, 0, offset, None, encode(event))
    return handler.handle(delivery)


def _markers(store: ObjectStore, bucket: str, video_id: str) -> dict[str, WorkMarker | None]:
    keys = store.list_keys(bucket, f"work/{video_id}/")
    return {key: decode_marker(store.get_bytes(bucket, key)) for key in keys}


def test_the_store_does_compare_and_set(marker_settings: Settings) -> None:
    store, bucket = ObjectStore(marker_settings), marker_settings.timeline_bucket
    key = f"probe/{uuid.uuid4().hex}.json"
    first = store.put_bytes_if(bucket, key, b"{}", etag=None)
    assert first is not None and first.etag
    assert store.put_bytes_if(bucket, key, b"{}", etag=None) is None  # it exists now
    assert store.put_bytes_if(bucket, key, b"[1]", etag="0" * 32) is None  # a stale version
    data, etag = store.get_versioned(bucket, key)
    assert (data, etag) == (b"{}", first.etag)
    second = store.put_bytes_if(bucket, key, b"[2]", etag=etag)
    assert second is not None and second.etag != etag
    assert store.delete_if(bucket, key, etag) is False  # not the version it names
    assert store.get_bytes(bucket, key) == b"[2]"
    assert store.delete_if(bucket, key, second.etag) is True
    assert not store.exists(bucket, key)
    assert store.delete_if(bucket, key, second.etag) is True  # gone already


def test_a_failing_job_removes_only_its_own_marker(marker_settings: Settings) -> None:
    """A slow job's lease ran out and another job took the work over; when the slow job then
    fails for good, the other's marker stays (release used to delete whatever was there)."""
    store, bucket = ObjectStore(marker_settings), marker_settings.timeline_bucket
    video_id = f"vid-{uuid.uuid4().hex[:8]}"
    clock = [1000.0]

    def taken_over_then_fail(job_id: str) -> None:
        (key,) = _markers(store, bucket, video_id)
        clock[0] += 601  # past the lease: the work is taken over elsewhere
        store.put_bytes(bucket, key, encode_marker(WorkMarker("running", "j-b", clock[0])))
        raise DecodeFailed("frames stop early")

    markers = WorkMarkers(store, bucket, clock=lambda: clock[0], lease_s=600)
    handler = _handler(marker_settings, Runner(store, bucket, taken_over_then_fail), markers)
    assert _deliver(handler, _event("evt-a", video_id), 0) is Disposition.COMMIT
    left = _markers(store, bucket, video_id)
    assert list(left.values()) == [WorkMarker("running", "j-b", clock[0])], left
    assert _deliver(handler, _event("evt-c", video_id), 1) is Disposition.RETRY  # waits for j-b


def test_a_job_longer_than_its_lease_keeps_a_duplicate_waiting(marker_settings: Settings) -> None:
    store, bucket = ObjectStore(marker_settings), marker_settings.timeline_bucket
    video_id = f"vid-{uuid.uuid4().hex[:8]}"
    running, go = threading.Event(), threading.Event()

    def slow_first(job_id: str) -> None:
        if job_id == derive_job_id("evt-1"):
            running.set()
            assert go.wait(20)

    runner = Runner(store, bucket, slow_first)
    # Two workers, each with its own markers (renewed every 0.4 s): the second knows of the
    # first's job only by its marker in the store.
    first, second = (
        _handler(marker_settings, runner, WorkMarkers(store, bucket, lease_s=1.2)) for _ in range(2)
    )
    job = threading.Thread(target=_deliver, args=(first, _event("evt-1", video_id), 0))
    job.start()
    try:
        assert running.wait(20)
        time.sleep(2.5)  # twice the lease
        assert _deliver(second, _event("evt-2", video_id), 1) is Disposition.RETRY
        (marker,) = _markers(store, bucket, video_id).values()
        assert marker is not None and marker.state == "running"
        assert time.time() - marker.updated_at < 1.2  # renewed, not as claimed 2.5 s ago
    finally:
        go.set()
        job.join(20)
    assert runner.jobs == [derive_job_id("evt-1")]
    assert _deliver(second, _event("evt-2", video_id), 1) is Disposition.COMMIT  # answered
    assert runner.jobs == [derive_job_id("evt-1")]
    (marker,) = _markers(store, bucket, video_id).values()
    assert marker is not None and marker.state == "done" and marker.job_id == runner.jobs[0]


def test_of_two_workers_that_read_no_marker_one_claims_the_work(marker_settings: Settings) -> None:
    store, bucket = ObjectStore(marker_settings), marker_settings.timeline_bucket
    video_id = f"vid-{uuid.uuid4().hex[:8]}"
    a, b = WorkMarkers(store, bucket), WorkMarkers(store, bucket)
    check_a = a.check(_event("evt-a", video_id), "j-a", "cv")
    check_b = b.check(_event("evt-b", video_id), "j-b", "cv")
    assert check_a.etag is None and check_b.etag is None  # both saw no marker
    lease = a.claim(check_a, "j-a")
    assert lease is not None
    try:
        assert b.claim(check_b, "j-b") is None  # S3 said 412: b waits
    finally:
        lease.release()
    assert _markers(store, bucket, video_id) == {}
