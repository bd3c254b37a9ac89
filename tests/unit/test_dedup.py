"""Idempotent work (issue 16, finding 4): one object version with the same options runs once,
however many events ask for it; duplicates are answered from the stored result."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import pytest
from api_fixtures import make_timeline

from contracts import IngestEvent, decode_result, derive_job_id, encode
from vidloc import names
from vidloc.adapters.kafka import BusRecord, OutRecord, Partition
from vidloc.errors import BusUnavailable, DecodeFailed, ObjectMissing, StorageUnavailable
from vidloc.settings import Settings
from workers.pipeline.job import JobOutcome
from workers.service.consumer import WorkerLoop
from workers.service.dedup import (
    WAIT_S,
    Verdict,
    WorkMarker,
    decide,
    decode_marker,
    encode_marker,
    work_id,
)
from workers.service.handler import Delivery, Disposition, IngestHandler
from workers.service.outbox import holding
from workers.service.work_markers import WorkMarkers
from workers.types import TokenTally

VIDEO = "vid-flood"
TIMELINE_KEY = names.timeline_key(VIDEO)


def ingest(event_id: str, **changes: Any) -> IngestEvent:
    doc: dict[str, Any] = {
        "schema": "vidloc.ingest.v1",
        "event_id": event_id,
        "video_id": VIDEO,
        "source": {"bucket": "videos", "key": "flood.mp4", "etag": '"e1"', "size": 10},
        "options": {"localizer": "cv", "labels": ["cut"]},
        "submitted_at": "2026-11-29T00:00:00Z",
    }
    for path, value in changes.items():
        node = doc
        *parents, last = path.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    return IngestEvent.model_validate(doc)


# --- the decision ---------------------------------------------------------------------------


def test_work_is_identified_by_video_object_version_localizer_and_options() -> None:
    base = work_id(ingest("a"), "cv")
    assert work_id(ingest("b"), "cv") == base  # another event id: the same work
    assert work_id(ingest("b", source__etag="E1"), "cv") == base  # quoted or not, any case
    assert work_id(ingest("a", source__etag="e2"), "cv") != base  # a new upload
    assert work_id(ingest("a", options={"localizer": "cv", "labels": ["x"]}), "cv") != base
    assert work_id(ingest("a"), "vlm") != base
    assert work_id(ingest("a", video_id="other"), "cv") != base


@pytest.mark.parametrize(
    ("marker", "verdict"),
    [
        pytest.param(None, Verdict.RUN, id="never_seen"),
        pytest.param(WorkMarker("done", "j-x", 0.0, b"{}"), Verdict.ANSWER, id="done"),
        pytest.param(WorkMarker("running", "j-me", 990.0), Verdict.RUN, id="own_retry"),
        pytest.param(WorkMarker("running", "j-x", 990.0), Verdict.WAIT, id="running_elsewhere"),
        pytest.param(WorkMarker("running", "j-x", 0.0), Verdict.RUN, id="stale_lease"),
    ],
)
def test_decide(marker: WorkMarker | None, verdict: Verdict) -> None:
    assert decide(marker, job_id="j-me", now=1000.0, lease_s=100.0) is verdict


def test_markers_round_trip_and_garbage_reads_as_none() -> None:
    marker = WorkMarker("done", "j-1", 12.5, b'{"a":1}')
    assert decode_marker(encode_marker(marker)) == WorkMarker("done", "j-1", 12.5, b'{"a": 1}')
    for junk in (b"", b"[]", b'{"schema": "vidloc.work.v1", "state": "maybe"}', b"\xff"):
        assert decode_marker(junk) is None


# --- through the handler, with a store in memory ----------------------------------------------


class Store:
    """Objects in memory with versions, and S3's compare-and-set on them."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.etags: dict[tuple[str, str], str] = {}
        self.down = False
        self._writes = 0
        self._lock = threading.Lock()  # leases renew from threads of their own

    def _check(self) -> None:
        if self.down:
            raise StorageUnavailable("down")

    def get_bytes(self, bucket: str, key: str) -> bytes:
        return self.get_versioned(bucket, key)[0]

    def get_versioned(self, bucket: str, key: str) -> tuple[bytes, str]:
        self._check()
        with self._lock:
            try:
                return self.objects[(bucket, key)], self.etags[(bucket, key)]
            except KeyError:
                raise ObjectMissing(key) from None

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "") -> None:
        self._check()
        with self._lock:
            self._write((bucket, key), data)

    def put_bytes_if(
        self, bucket: str, key: str, data: bytes, *, etag: str | None, content_type: str = ""
    ) -> str | None:
        self._check()
        with self._lock:
            if self.etags.get((bucket, key)) != etag:
                return None  # S3's 412
            return self._write((bucket, key), data)

    def delete_if(self, bucket: str, key: str, etag: str) -> bool:
        self._check()
        with self._lock:
            if (bucket, key) in self.etags and self.etags[(bucket, key)] != etag:
                return False
            self.objects.pop((bucket, key), None)
            self.etags.pop((bucket, key), None)
            return True

    def delete(self, bucket: str, key: str) -> None:
        with self._lock:
            self.objects.pop((bucket, key), None)
            self.etags.pop((bucket, key), None)

    def _write(self, where: tuple[str, str], data: bytes) -> str:
        self._writes += 1
        self.objects[where] = data
        self.etags[where] = f"etag-{self._writes}"
        return self.etags[where]

    def markers(self) -> list[str]:
        return [k for _, k in self.objects if k.startswith("work/")]

    def marker(self, key: str) -> WorkMarker | None:
        return decode_marker(self.objects[("timelines", key)])


class Runner:
    """A job that stores its timeline in the store and succeeds (or raises ``error``)."""

    def __init__(self, store: Store, error: Exception | None = None) -> None:
        self.store = store
        self.error = error
        self.jobs: list[str] = []

    def run(self, event: IngestEvent, job_id: str, progress: Any) -> JobOutcome:
        self.jobs.append(job_id)
        if self.error is not None:
            raise self.error
        timeline = make_timeline(VIDEO, job_id=job_id, localizer="cv", model=None)
        self.store.put_bytes("timelines", TIMELINE_KEY, encode(timeline))
        return JobOutcome(timeline, "timelines", TIMELINE_KEY, TokenTally(100, 10, 1), 0.5)

    def run_or_hand_off(self, event: IngestEvent, job_id: str, progress: Any) -> JobOutcome:
        return self.run(event, job_id, progress)  # a subclass's own run, too


class Bus:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes]] = []

    def publish(self, topic: str, key: str, value: bytes) -> None:
        self.sent.append((topic, key, value))

    def results(self) -> list[Any]:
        return [decode_result(v) for t, _, v in self.sent if t == names.TOPIC_RESULTS]


def make_handler(
    store: Store, runner: Runner, clock: list[float] | None = None
) -> tuple[IngestHandler, Bus]:
    bus = Bus()
    now = clock or [1000.0]
    markers = WorkMarkers(store, "timelines", clock=lambda: now[0], lease_s=600)
    handler = IngestHandler(
        Settings(video_bucket="videos"),
        runner,  # type: ignore[arg-type]
        bus.publish,
        markers=markers,
    )
    return handler, bus


def deliver(handler: IngestHandler, event: IngestEvent, offset: int) -> Disposition:
    return handler.handle(Delivery(names.TOPIC_INGEST, 0, offset, VIDEO.encode(), encode(event)))


def test_twenty_events_with_one_event_id_run_once_and_replay_the_identical_result() -> None:
    store = Store()
    runner = Runner(store)
    handler, bus = make_handler(store, runner)
    event = ingest("evt-same")
    assert [deliver(handler, event, i) for i in range(20)] == [Disposition.COMMIT] * 20
    assert runner.jobs == [derive_job_id("evt-same")]
    results = bus.results()
    assert len(results) == 20
    assert {(r.event_id, r.job_id, r.status) for r in results} == {
        (results[0].event_id, derive_job_id("evt-same"), "succeeded")
    }


def test_fifty_event_ids_for_one_object_run_one_job_and_each_gets_its_own_answer() -> None:
    store = Store()
    runner = Runner(store)
    handler, bus = make_handler(store, runner)
    events = [ingest(f"evt-{i}") for i in range(50)]
    assert [deliver(handler, e, i) for i, e in enumerate(events)] == [Disposition.COMMIT] * 50
    assert runner.jobs == [derive_job_id("evt-0")]
    first, *answers = bus.results()
    assert first.job_id == derive_job_id("evt-0") and first.usage.prompt_tokens == 100
    assert [a.job_id for a in answers] == [derive_job_id(e.event_id) for e in events[1:]]
    assert len({a.event_id for a in answers}) == 49  # each sender can match its own
    for answer in answers:
        assert answer.status == "succeeded" and answer.timeline == first.timeline
        assert answer.usage.prompt_tokens == 0 and answer.usage.cost == 0.0
        assert [w.code for w in answer.warnings] == ["duplicate_work"]
        assert first.job_id in answer.warnings[0].message
    # Other options are other work: it runs.
    other = ingest("evt-other", options={"localizer": "cv", "labels": ["fade"]})
    assert deliver(handler, other, 50) is Disposition.COMMIT
    assert runner.jobs[-1] == derive_job_id("evt-other")


def test_while_identical_work_runs_elsewhere_a_duplicate_waits() -> None:
    store, clock = Store(), [1000.0]
    runner = Runner(store)
    handler, bus = make_handler(store, runner, clock)
    running_elsewhere = WorkMarkers(store, "timelines", clock=lambda: clock[0])
    check = running_elsewhere.check(ingest("evt-a"), "j-elsewhere", "cv")
    lease = running_elsewhere.claim(check, "j-elsewhere")
    assert lease is not None
    lease.stop()  # its worker dies: the marker stays as last renewed
    assert deliver(handler, ingest("evt-b"), 0) is Disposition.RETRY
    assert handler.retry_hint_s == WAIT_S and runner.jobs == [] and bus.sent == []
    clock[0] += 601  # its worker died: the lease ran out, the work is taken over
    assert deliver(handler, ingest("evt-b"), 0) is Disposition.COMMIT
    assert runner.jobs == [derive_job_id("evt-b")]


def test_a_failed_job_leaves_no_marker_so_a_duplicate_runs_again() -> None:
    store = Store()
    runner = Runner(store, DecodeFailed("frames stop early"))
    handler, bus = make_handler(store, runner)
    assert deliver(handler, ingest("evt-1"), 0) is Disposition.COMMIT
    assert store.markers() == []
    runner.error = None
    assert deliver(handler, ingest("evt-2"), 1) is Disposition.COMMIT
    assert runner.jobs == [derive_job_id("evt-1"), derive_job_id("evt-2")]
    assert [r.status for r in bus.results()] == ["failed", "succeeded"]


def test_a_store_outage_never_stops_a_job() -> None:
    marker_store, job_store = Store(), Store()
    runner = Runner(job_store)
    handler, bus = make_handler(marker_store, runner)
    marker_store.down = True  # markers can be neither read nor written
    assert deliver(handler, ingest("evt-1"), 0) is Disposition.COMMIT
    assert runner.jobs == [derive_job_id("evt-1")]
    assert [r.status for r in bus.results()] == ["succeeded"]


# --- the lease: owner-checked release, renewal, "done" only after the commit -------------------


def test_a_job_that_lost_its_lease_and_fails_leaves_the_new_holders_marker() -> None:
    """A slow job's lease ran out and another job took the work over; when the slow one then
    fails for good it must not remove the other's marker (release used to delete blindly)."""
    store, clock = Store(), [1000.0]

    class TakenOver(Runner):
        def run(self, event: IngestEvent, job_id: str, progress: Any) -> JobOutcome:
            self.jobs.append(job_id)
            (key,) = store.markers()
            clock[0] += 601  # past the lease: the work is taken over elsewhere
            store.put_bytes("timelines", key, encode_marker(WorkMarker("running", "j-b", clock[0])))
            raise DecodeFailed("frames stop early")

    handler, bus = make_handler(store, TakenOver(store), clock)
    assert deliver(handler, ingest("evt-a"), 0) is Disposition.COMMIT
    assert [r.status for r in bus.results()] == ["failed"]
    assert store.markers() != [], "the failed job removed the marker of the job holding the work"
    (key,) = store.markers()
    assert store.marker(key) == WorkMarker("running", "j-b", clock[0])
    # So a third duplicate waits for j-b instead of running the work a third time.
    assert deliver(handler, ingest("evt-c"), 1) is Disposition.RETRY


def test_a_job_longer_than_the_lease_keeps_its_duplicates_waiting() -> None:
    """The running marker is renewed every third of the lease while the job runs: a duplicate
    arriving after twice the lease still waits, then is answered (it ran a second full job)."""
    store = Store()
    running, go = threading.Event(), threading.Event()

    class Slow(Runner):
        def run(self, event: IngestEvent, job_id: str, progress: Any) -> JobOutcome:
            if job_id == derive_job_id("evt-1"):
                running.set()
                assert go.wait(10)
            return super().run(event, job_id, progress)

    runner, bus = Slow(store), Bus()
    # Two workers: the second knows of the first's job only by its marker.
    first, second = (
        IngestHandler(
            Settings(video_bucket="videos"),
            runner,  # type: ignore[arg-type]
            bus.publish,
            markers=WorkMarkers(store, "timelines", lease_s=1.2),  # renewed every 0.4 s
        )
        for _ in range(2)
    )
    job = threading.Thread(target=deliver, args=(first, ingest("evt-1"), 0))
    job.start()
    try:
        assert running.wait(10)
        time.sleep(2.5)  # twice the lease
        assert deliver(second, ingest("evt-2"), 1) is Disposition.RETRY
        assert second.retry_hint_s == WAIT_S
    finally:
        go.set()
        job.join(10)
    assert runner.jobs == [derive_job_id("evt-1")]
    assert deliver(second, ingest("evt-2"), 1) is Disposition.COMMIT
    assert runner.jobs == [derive_job_id("evt-1")]
    assert [w.code for w in bus.results()[-1].warnings] == ["duplicate_work"]


def test_a_copy_of_a_running_job_in_another_slot_of_the_worker_waits() -> None:
    """The same event twice in one worker at once (sent to two partitions): the marker says
    "running" by the copy's own job id, which would read as its retry; the worker knows the
    lease is live in its other slot, so the copy waits instead of running alongside."""
    store = Store()
    running, go = threading.Event(), threading.Event()

    class Slow(Runner):
        def run(self, event: IngestEvent, job_id: str, progress: Any) -> JobOutcome:
            running.set()
            assert go.wait(10)
            return super().run(event, job_id, progress)

    runner, bus, markers = Slow(store), Bus(), WorkMarkers(store, "timelines")
    slots = [
        IngestHandler(Settings(video_bucket="videos"), runner, bus.publish, markers=markers)  # type: ignore[arg-type]
        for _ in range(2)
    ]
    job = threading.Thread(target=deliver, args=(slots[0], ingest("evt-1"), 0))
    job.start()
    try:
        assert running.wait(10)
        assert deliver(slots[1], ingest("evt-1"), 1) is Disposition.RETRY
        assert slots[1].retry_hint_s == WAIT_S
    finally:
        go.set()
        job.join(10)
    assert runner.jobs == [derive_job_id("evt-1")]
    assert deliver(slots[1], ingest("evt-1"), 1) is Disposition.COMMIT  # answered, the same


TOPIC_PART = Partition(names.TOPIC_INGEST, 0)


class Records:
    """The consumer side of one partition holding ``events``, keyed by their video."""

    def __init__(self, *events: IngestEvent) -> None:
        self.records = [
            BusRecord(names.TOPIC_INGEST, 0, offset, VIDEO, encode(event))
            for offset, event in enumerate(events)
        ]
        self.paused = False

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        pass

    def poll(self, *, timeout_s: float, max_records: int | None = None) -> list[BusRecord]:
        time.sleep(0.005)
        if self.paused:
            return []
        count = max_records or 1
        batch, self.records = self.records[:count], self.records[count:]
        return batch

    def assignment(self) -> set[Partition]:
        return {TOPIC_PART}

    def pause(self, parts: Collection[Partition]) -> None:
        self.paused = True

    def pause_all(self) -> None:
        self.paused = True

    def resume_all(self) -> None:
        self.paused = False

    def lag_inputs(self, *, timeout_s: float) -> Any:
        return {}, {}

    def close(self) -> None:
        pass


class WatchingCommitter:
    """Commits (after ``fail`` refusals), noting the work marker's state at each attempt."""

    def __init__(self, store: Store, fail: int) -> None:
        self.store = store
        self.fail = fail
        self.seen: list[str | None] = []
        self.results: list[bytes] = []

    def commit(self, records: Sequence[OutRecord], offsets: Mapping[Partition, int]) -> None:
        (key,) = self.store.markers()
        marker = self.store.marker(key)
        self.seen.append(marker.state if marker is not None else None)
        if self.fail:
            self.fail -= 1
            raise BusUnavailable("broker away")
        self.results += [value for topic, _, value in records if topic == names.TOPIC_RESULTS]


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        time.sleep(0.01)


def test_done_is_written_only_after_the_result_is_committed() -> None:
    """The marker says "done" only once the result has left with the offset: while a commit is
    refused (the broker away) it stays "running", so nothing is answered from a result that
    was never announced (it used to turn "done" as soon as the job had run). A copy of the
    event right behind it waits for that commit and is answered; it does not run again."""
    store = Store()
    runner = Runner(store)
    committer = WatchingCommitter(store, fail=2)
    bus = Bus()
    handler = IngestHandler(
        Settings(video_bucket="videos"),
        runner,  # type: ignore[arg-type]
        holding(bus.publish),
        markers=WorkMarkers(store, "timelines"),
    )
    settings = Settings(metrics_lag_interval_s=3600)
    stream = Records(ingest("evt-1"), ingest("evt-1"))
    loop = WorkerLoop(settings, stream, [handler], committer=committer)  # type: ignore[arg-type]
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=([names.TOPIC_INGEST], stop))
    thread.start()
    try:
        wait_for(lambda: len(committer.results) == 2)
    finally:
        stop.set()
        thread.join(10)
    assert committer.seen == ["running", "running", "running", "done"]
    assert bus.sent == []  # everything left through the committer
    assert runner.jobs == [derive_job_id("evt-1")]
    first, copy = (decode_result(r) for r in committer.results)
    assert copy == first  # the identical replay of the same event
    (key,) = store.markers()
    marker = store.marker(key)
    assert marker is not None and marker.state == "done"
