"""A user's cancel in the handler's paths, with a fake runner over an in-memory store: a span
order stops before it starts or between chunks and reports ``cancelled``; the merging member
fails the video once (no merge, no partial, no DLQ record, billed with the chunks paid); a
plain job stops between chunks; a shutdown still hands the work back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from contracts import decode_ingest, decode_result, derive_job_id, encode
from vidloc import names
from vidloc.errors import ObjectMissing
from vidloc.settings import Settings
from workers.frames.plan import plan_chunks, plan_sample_times
from workers.pipeline.checkpoint import encode_checkpoint
from workers.pipeline.job import JobOutcome, SpanOutcome
from workers.pipeline.spans import plan_spans
from workers.service.dedup import Verdict
from workers.service.handler import Delivery, Disposition, IngestHandler
from workers.service.spans import span_orders, span_report
from workers.service.work_markers import WorkMarkers
from workers.types import ChunkResult, TokenTally, VideoInfo

INGEST = {
    "schema": "vidloc.ingest.v1",
    "event_id": "e-cancel",
    "source": {"bucket": "videos", "key": "tenants/acme/long.mp4", "etag": "abc", "size": 9},
    "submitted_at": "2026-12-04T12:00:00Z",
}
EVENT = decode_ingest(INGEST)
JOB = derive_job_id(EVENT.event_id)
VIDEO = EVENT.effective_video_id
MARKER = names.cancel_key(VIDEO, JOB, "acme")
BUCKET = "timelines"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Store:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.marker_reads = 0

    def get_bytes(self, bucket: str, key: str) -> bytes:
        if key == MARKER:
            self.marker_reads += 1
        try:
            return self.objects[key]
        except KeyError:
            raise ObjectMissing(key) from None

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "") -> None:
        self.objects[key] = data

    # S3's versions and compare-and-set, as the work markers use them (etag: the bytes' hash).
    def get_versioned(self, bucket: str, key: str) -> tuple[bytes, str]:
        data = self.get_bytes(bucket, key)
        return data, str(hash(data))

    def put_bytes_if(
        self, bucket: str, key: str, data: bytes, *, etag: str | None, content_type: str = ""
    ) -> str | None:
        current = self.objects.get(key)
        if (None if current is None else str(hash(current))) != etag:
            return None
        self.objects[key] = data
        return str(hash(data))

    def delete_if(self, bucket: str, key: str, etag: str) -> bool:
        current = self.objects.get(key)
        if current is not None and str(hash(current)) != etag:
            return False
        self.objects.pop(key, None)
        return True

    def list_keys(self, bucket: str, prefix: str = "") -> Iterator[str]:
        return iter(sorted(k for k in self.objects if k.startswith(prefix)))

    def cancel(self) -> None:
        """What the API or ``vidloc cancel`` writes."""
        self.objects[MARKER] = b'{"job_id": "' + JOB.encode() + b'"}'

    def paid(self, index: int) -> None:
        """A chunk localized and checkpointed (100 prompt + 10 completion tokens)."""
        result = ChunkResult(index, (), TokenTally(100, 10, 1))
        key = names.checkpoint_key(VIDEO, JOB, index, "acme")
        self.objects[key] = encode_checkpoint(result, "fp")


class Runner:
    """Runs chunks one by one, reporting progress after each (where a job stops); the test
    may cancel after a given chunk."""

    def __init__(self, clock: Clock, cancel_after: int | None = None) -> None:
        self.store = Store()
        self.clock = clock
        self.cancel_after = cancel_after
        self.calls: list[str] = []
        self.chunks_run = 0

    def _chunks(self, indices: range, progress: Any) -> None:
        for n, index in enumerate(indices, start=1):
            self.chunks_run += 1
            self.store.paid(index)
            if self.cancel_after == n:
                self.store.cancel()
            self.clock.now += 1.0  # a chunk takes a second
            progress("localizing", n, len(indices), f"chunk {index} done")

    def run_span(self, event: Any, job_id: str, progress: Any) -> SpanOutcome:
        span = event.span
        self.calls.append(f"span-{span.index}")
        self._chunks(range(span.first_chunk, span.end_chunk), progress)
        chunks = span.end_chunk - span.first_chunk
        return SpanOutcome(TokenTally(100 * chunks, 10 * chunks, chunks), chunks, 0)

    def run_or_hand_off(self, event: Any, job_id: str, progress: Any) -> JobOutcome:
        self.calls.append("run")
        self._chunks(range(6), progress)
        raise AssertionError("a cancelled job must not finish")

    def partial(self, event: Any, job_id: str, reported: int) -> Any:
        self.calls.append(f"partial-{reported}")
        return _outcome(event, job_id)

    def merge(self, event: Any, job_id: str, progress: Any) -> Any:
        self.calls.append("merge")
        self.clock.now += 1.0
        progress("merging", 0, 0, "merging")
        return _outcome(event, job_id)


def _outcome(event: Any, job_id: str) -> JobOutcome:
    from api_fixtures import make_timeline

    timeline = make_timeline(event.effective_video_id, job_id=job_id, localizer="cv", model=None)
    return JobOutcome(timeline, BUCKET, "t.json", TokenTally(10, 2, 1), 0.0)


class Bus:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes]] = []

    def publish(self, topic: str, key: str, value: bytes) -> None:
        self.sent.append((topic, key, value))

    def on(self, topic: str) -> list[bytes]:
        return [v for t, _, v in self.sent if t == topic]

    def results(self) -> list[Any]:
        return [decode_result(v) for v in self.on(names.TOPIC_RESULTS)]


def _member(
    cancel_after: int | None = None, markers: bool = False
) -> tuple[IngestHandler, Runner, Bus]:
    clock = Clock()
    runner, bus = Runner(clock, cancel_after), Bus()
    settings = Settings(video_bucket="videos", localizer="cv", timeline_bucket=BUCKET)
    handler = IngestHandler(
        settings,
        runner,  # type: ignore[arg-type]
        bus.publish,
        clock=clock,
        markers=WorkMarkers(runner.store, BUCKET) if markers else None,  # type: ignore[arg-type]
    )
    return handler, runner, bus


def _orders() -> list[Any]:
    chunks = plan_chunks(plan_sample_times(900.0, 1.0), 30.0, 2.0, 64)
    spans = plan_spans(chunks, 900.0, 300.0, 4)
    return span_orders(EVENT, spans, VideoInfo(900.0, 25.0, 64, 64, "h264"), len(chunks))


def _deliver(topic: str, event: Any, offset: int = 0) -> Delivery:
    return Delivery(topic, 0, offset, VIDEO.encode(), encode(event))


def _reported_error(bus: Bus) -> Any:
    (report,) = [decode_ingest(v) for v in bus.on(names.TOPIC_SPANS_DONE)]
    assert report.span is not None and report.span.role == "report"
    return report.span.error


def test_a_span_cancelled_before_it_starts_runs_nothing_and_reports_cancelled() -> None:
    member, runner, bus = _member()
    runner.store.cancel()
    order = _orders()[2]
    assert member.handle(_deliver(names.TOPIC_SPANS, order)) is Disposition.COMMIT
    assert runner.calls == [] and runner.chunks_run == 0
    error = _reported_error(bus)
    assert error is not None and error.code == "cancelled"
    # The merging member announces the video's end, once; a span announces nothing itself.
    assert bus.results() == [] and bus.on(names.TOPIC_DLQ) == []


def test_a_span_stops_between_chunks_once_the_marker_is_there() -> None:
    member, runner, bus = _member(cancel_after=2)
    order = _orders()[2]
    assert order.span is not None
    chunks = order.span.end_chunk - order.span.first_chunk
    assert chunks > 3
    assert member.handle(_deliver(names.TOPIC_SPANS, order)) is Disposition.COMMIT
    # Seen after the chunk during which it was written: no third chunk.
    assert runner.chunks_run == 2
    error = _reported_error(bus)
    assert error is not None and error.code == "cancelled"
    # One look before the span and at most one per chunk (a second each here) after it.
    assert runner.store.marker_reads <= 1 + runner.chunks_run


def _reports(errors: dict[int, tuple[str, str]] | None = None) -> list[Any]:
    errors = errors or {}
    return [
        span_report(o, error=errors[i]) if i in errors else span_report(o, TokenTally(1, 1, 1))
        for i, o in enumerate(_orders())
    ]


def test_the_merging_member_fails_a_cancelled_video_once_billed_without_a_dead_letter() -> None:
    member, runner, bus = _member()
    for index in (0, 1, 2):
        runner.store.paid(index)
    reports = _reports({3: ("cancelled", "cancelled by the user")})
    for offset, index in enumerate((0, 3, 1, 2, 4)):
        assert member.handle(_deliver(names.TOPIC_SPANS_DONE, reports[index], offset)) is (
            Disposition.COMMIT
        )
    assert runner.calls == ["partial-1"]  # nothing after the cancel: no partial, no merge
    finals = [r for r in bus.results() if not r.partial]
    assert len(finals) == 1
    (final,) = finals
    assert final.status == "failed" and final.error is not None
    assert final.error.code == "cancelled"
    assert final.error.message == "cancelled by the user"
    # The chunks paid stay in the bill; a user's cancel is not a dead letter.
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (300, 30)
    assert final.usage.requests == 3 and final.usage.cost > 0
    assert bus.on(names.TOPIC_DLQ) == []
    # The cancelled report delivered again (a crash after the ledger's write, before the
    # commit, announced nothing): the same failed result again, one for readers.
    assert member.handle(_deliver(names.TOPIC_SPANS_DONE, reports[3], 5)) is Disposition.COMMIT
    again = [r for r in bus.results() if not r.partial]
    assert len(again) == 2 and again[1].event_id == final.event_id
    assert again[1].error == final.error and runner.calls == ["partial-1"]


def test_the_merging_member_looks_for_the_marker_before_it_merges() -> None:
    member, runner, bus = _member()
    reports = _reports()
    for offset, index in enumerate((0, 1, 2, 3)):
        member.handle(_deliver(names.TOPIC_SPANS_DONE, reports[index], offset))
    runner.store.cancel()  # every span but the last has reported
    assert member.handle(_deliver(names.TOPIC_SPANS_DONE, reports[4], 4)) is Disposition.COMMIT
    assert "merge" not in runner.calls
    final = bus.results()[-1]
    assert not final.partial and final.error is not None and final.error.code == "cancelled"
    # The completing report delivered again (a crash before its commit): the same failure,
    # still no merge.
    assert member.handle(_deliver(names.TOPIC_SPANS_DONE, reports[4], 4)) is Disposition.COMMIT
    assert "merge" not in runner.calls
    assert len({r.event_id for r in bus.results() if not r.partial}) == 1


def test_a_cancel_seen_while_merging_fails_the_video_instead() -> None:
    member, runner, bus = _member()
    reports = _reports()
    for offset, index in enumerate((0, 1, 2, 3)):
        member.handle(_deliver(names.TOPIC_SPANS_DONE, reports[index], offset))
    real_merge = runner.merge

    def merge(event: Any, job_id: str, progress: Any) -> Any:
        runner.store.cancel()  # written just after the member looked before merging
        return real_merge(event, job_id, progress)

    runner.merge = merge  # type: ignore[method-assign]
    assert member.handle(_deliver(names.TOPIC_SPANS_DONE, reports[4], 4)) is Disposition.COMMIT
    finals = [r for r in bus.results() if not r.partial]
    assert [(r.status, r.error.code if r.error else None) for r in finals] == [
        ("failed", "cancelled")
    ]
    assert bus.on(names.TOPIC_DLQ) == []
    # Delivered again before its commit: the ledger says cancelled; no merge is tried again.
    runner.calls.clear()
    assert member.handle(_deliver(names.TOPIC_SPANS_DONE, reports[4], 4)) is Disposition.COMMIT
    assert runner.calls == []
    finals = [r for r in bus.results() if not r.partial]
    assert len(finals) == 2 and len({r.event_id for r in finals}) == 1


def test_a_plain_job_stops_between_chunks_and_fails_cancelled() -> None:
    member, runner, bus = _member(cancel_after=3)
    assert member.handle(_deliver(names.TOPIC_INGEST, EVENT)) is Disposition.COMMIT
    assert runner.chunks_run == 3
    (final,) = bus.results()
    assert final.status == "failed" and final.error is not None
    assert final.error.code == "cancelled" and final.error.message == "cancelled by the user"
    assert final.usage.requests == 3
    assert bus.on(names.TOPIC_DLQ) == []


def test_a_shutdown_still_hands_the_work_back_whatever_the_marker_says() -> None:
    member, runner, bus = _member(cancel_after=1)
    member.cancel.set()  # the worker is shutting down
    assert member.handle(_deliver(names.TOPIC_SPANS, _orders()[2])) is Disposition.HAND_BACK
    # Stopped after its first chunk, and nothing reported: the next owner of the order finds
    # the marker and reports the cancel itself.
    assert runner.chunks_run == 1 and MARKER in runner.store.objects
    assert bus.sent == []


def test_a_cancelled_long_video_may_be_submitted_again_at_once() -> None:
    """The hand-off leaves the video's work marker "running" for the merge to finish; a cancel
    removes it (once its failure is committed), so the same video submitted again runs."""
    member, runner, bus = _member(markers=True)
    markers = WorkMarkers(runner.store, BUCKET)
    lease = markers.claim(markers.check(EVENT, JOB, "cv"), JOB)
    assert lease is not None
    lease.stop()  # what the hand-off does: the marker stays "running" under the job id
    again = EVENT.model_copy(update={"event_id": "e-again"})
    assert markers.check(again, derive_job_id("e-again"), "cv").verdict is Verdict.WAIT
    reports = _reports({2: ("cancelled", "cancelled by the user")})
    assert member.handle(_deliver(names.TOPIC_SPANS_DONE, reports[2])) is Disposition.COMMIT
    assert [r.error.code for r in bus.results() if r.error is not None] == ["cancelled"]
    assert markers.check(again, derive_job_id("e-again"), "cv").verdict is Verdict.RUN


def test_a_span_failure_delivered_again_before_its_commit_is_announced_again() -> None:
    """The ledger is written before the commit; a crash between them must not leave the
    failure unannounced (the replay used to find it recorded and commit nothing)."""
    member, runner, bus = _member()
    runner.store.cancel()  # a cancel marker changes neither the failure's code nor its count
    reports = _reports({1: ("decode_failed", "frames stop at 200.0 s")})
    for offset in (0, 1):  # report 1 arrives twice: the first delivery's outputs were lost
        assert member.handle(_deliver(names.TOPIC_SPANS_DONE, reports[1], offset)) is (
            Disposition.COMMIT
        )
    failed = [r for r in bus.results() if r.status == "failed"]
    assert len(failed) == 2 and failed[0].event_id == failed[1].event_id
    assert failed[0].error is not None and failed[0].error.code == "decode_failed"
    assert len(bus.on(names.TOPIC_DLQ)) == 2  # a real failure keeps its dead letter
    # Another span's report changes nothing.
    assert member.handle(_deliver(names.TOPIC_SPANS_DONE, reports[2], 2)) is Disposition.COMMIT
    assert len([r for r in bus.results() if r.status == "failed"]) == 2
