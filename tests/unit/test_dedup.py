"""Idempotent work (issue 16, finding 4): one object version with the same options runs once,
however many events ask for it; duplicates are answered from the stored result."""

from __future__ import annotations

from typing import Any

import pytest
from api_fixtures import make_timeline

from contracts import IngestEvent, decode_result, derive_job_id, encode
from vidloc import names
from vidloc.errors import DecodeFailed, ObjectMissing, StorageUnavailable
from vidloc.settings import Settings
from workers.pipeline.job import JobOutcome
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
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.down = False

    def get_bytes(self, bucket: str, key: str) -> bytes:
        if self.down:
            raise StorageUnavailable("down")
        try:
            return self.objects[(bucket, key)]
        except KeyError:
            raise ObjectMissing(key) from None

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "") -> None:
        if self.down:
            raise StorageUnavailable("down")
        self.objects[(bucket, key)] = data

    def delete(self, bucket: str, key: str) -> None:
        self.objects.pop((bucket, key), None)

    def markers(self) -> list[str]:
        return [k for _, k in self.objects if k.startswith("work/")]


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
    running_elsewhere.start(check.key, "j-elsewhere")
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
