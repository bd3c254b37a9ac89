"""Long videos in spans: the split (pure), the merging member's ledger, the orders and reports
as they travel (the ingest contract's ``span`` part), and the loop's room for short videos."""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import ContractError, decode_ingest, encode
from vidloc.adapters.kafka import BusRecord, OutRecord, Partition
from vidloc.settings import Settings
from workers.frames.plan import plan_chunks, plan_sample_times
from workers.pipeline.spans import LEAD_IN, plan_spans, should_split
from workers.service.consumer import WorkerLoop
from workers.service.handler import Delivery, Disposition
from workers.service.spans import SpanLedger, span_orders, span_report
from workers.types import TokenTally, VideoInfo

INGEST = {
    "schema": "vidloc.ingest.v1",
    "event_id": "e-1",
    "source": {"bucket": "videos", "key": "tenants/acme/long.mp4", "etag": "abc", "size": 9},
    "submitted_at": "2026-12-04T12:00:00Z",
}


def _chunks(duration_s: float, chunk_s: float = 30.0) -> tuple[Any, ...]:
    return plan_chunks(plan_sample_times(duration_s, 1.0), chunk_s, 2.0, 64)


@given(
    duration=st.floats(min_value=1.0, max_value=4 * 3600.0),
    span_s=st.floats(min_value=30.0, max_value=1800.0),
    spread=st.sampled_from([1, 4, 16]),
)
def test_spans_cover_every_chunk_once_in_order(duration: float, span_s: float, spread: int) -> None:
    chunks = _chunks(duration)
    spans = plan_spans(chunks, duration, span_s, spread)
    owned = [i for s in spans for i in range(s.first_chunk, s.end_chunk)]
    assert owned == [c.index for c in chunks]  # each chunk in exactly one span, in order
    assert all(s.first_chunk < s.end_chunk for s in spans)
    assert [s.index for s in spans] == list(range(len(spans)))
    assert all(s.count == len(spans) for s in spans)
    sizes = [s.end_chunk - s.first_chunk for s in spans]
    rest = sizes[len(LEAD_IN) :]
    even = max(sizes) - min(sizes) <= 1
    # Even by chunk count, or a short lead-in and then even spans longer than it.
    led_in = sizes[: len(LEAD_IN)] == list(LEAD_IN) and bool(rest)
    assert even or (led_in and max(rest) - min(rest) <= 1 and min(rest) > max(LEAD_IN)), sizes


def test_a_two_hour_video_makes_spans_of_about_the_asked_length() -> None:
    chunks = _chunks(7200.0)
    spans = plan_spans(chunks, 7200.0, 300.0)
    assert len(spans) == 25  # a one-chunk lead-in first, for an early partial timeline
    assert [s.end_chunk - s.first_chunk for s in spans[:3]] == [1, 10, 10]
    assert spans[0].start_s == 0.0 and spans[-1].end_s == 7200.0
    assert all(260.0 <= s.end_s - s.start_s <= 320.0 for s in spans[1:])
    assert all(a.end_s == b.start_s for a, b in itertools.pairwise(spans))
    assert should_split(7200.0, 300.0, len(chunks))
    assert not should_split(299.0, 300.0, 10)
    assert not should_split(7200.0, 0.0, 240)  # 0 turns spans off


@pytest.mark.parametrize(
    ("duration", "slots", "count"),
    [
        pytest.param(3600.0, 8, 8, id="an hour, 8 slots: 12 to one round of 8 (450 s)"),
        pytest.param(3600.0, 16, 16, id="an hour, 16 slots: 12 up to one round of 16"),
        pytest.param(3600.0, 2, 12, id="an hour, one member of 2: 12 as asked"),
        pytest.param(3600.0, 6, 12, id="an hour, 3 members of 2: 12 is two rounds"),
        pytest.param(7200.0, 8, 24, id="two hours, 8 slots: three rounds"),
        pytest.param(7200.0, 16, 16, id="two hours, 16 slots: 24 is 1.5 rounds, down to one"),
        pytest.param(4000.0, 8, 16, id="67 minutes, 8 slots: 14 up to two rounds"),
        pytest.param(1200.0, 16, 16, id="20 minutes: 4 up to one round of 16 (75 s)"),
        pytest.param(600.0, 16, 8, id="10 minutes: no shorter than a quarter span"),
        pytest.param(310.0, 16, 4, id="just over a span"),
    ],
)
def test_the_span_count_is_whole_rounds_of_the_groups_slots_near_the_asked_length(
    duration: float, slots: int, count: int
) -> None:
    from workers.pipeline.spans import SHORTEST_SHARE, span_count

    assert span_count(duration, 300.0, slots) == count
    assert span_count(duration, 300.0) == math.ceil(duration / 300.0)  # no slots: as asked
    assert 300.0 / SHORTEST_SHARE - 1e-9 <= duration / count <= 1.5 * 300.0
    spans = plan_spans(_chunks(duration), duration, 300.0, slots)
    assert len(spans) == count + len(LEAD_IN)


@pytest.mark.parametrize(
    ("owned", "members"),
    [(16, 1), (8, 2), (6, 3), (5, 3), (4, 4), (2, 8), (1, 16), (0, 16)],
)
def test_a_member_judges_the_group_by_its_share_of_the_span_partitions(
    owned: int, members: int
) -> None:
    """The range assignor over 16 partitions: 3 members own 6, 5 and 5, each judging three; a
    member owning none is one of more than 16."""
    from workers.pipeline.spans import group_slots

    assert group_slots(owned, 16, 2) == 2 * members
    assert group_slots(owned, 16, 0) == members  # a member always runs one span at least


def test_the_ledger_merges_on_the_report_that_completes_it_and_on_no_other() -> None:
    ledger = SpanLedger(3)
    for index in (2, 0):
        ledger.add(index)
        assert not ledger.merges_on(index)
    ledger.add(1)
    assert ledger.merges_on(1)
    again = SpanLedger.decode(ledger.encode(), 3)
    again.add(1)  # the completing report delivered again (a crash before its commit)
    assert again.merges_on(1) and not again.merges_on(0) and not again.merges_on(2)
    again.add(0)  # a replayed earlier report after the merge
    assert again.completed_by == 1 and again.reported == [2, 0, 1]


def test_a_failed_span_fails_the_video_once_and_stops_the_merge() -> None:
    ledger = SpanLedger(3)
    ledger.add(0)
    assert ledger.fail(1, "decode_failed", "frames stop at 90 s")
    assert not ledger.fail(2, "decode_failed", "again")  # the first failure is the video's
    assert ledger.failed == {"index": 1, "code": "decode_failed", "message": "frames stop at 90 s"}
    assert not any(ledger.merges_on(i) for i in range(3))
    assert SpanLedger.decode(ledger.encode(), 3).failed == ledger.failed


def test_orders_and_reports_travel_as_ingest_events() -> None:
    event = decode_ingest(INGEST)
    chunks = _chunks(900.0)
    spans = plan_spans(chunks, 900.0, 300.0, 4)
    info = VideoInfo(900.0, 25.0, 1920, 1080, "h264")
    orders = span_orders(event, spans, info, len(chunks))
    assert len(orders) == 5  # a one-chunk lead-in, then four of 7-8 (rounded up to 4)
    for order, span in zip(orders, spans, strict=True):
        back = decode_ingest(encode(order))
        assert back.span is not None and back.span.role == "order"
        assert (back.span.first_chunk, back.span.end_chunk) == (span.first_chunk, span.end_chunk)
        assert back.job_id == event.job_id  # one job: the spans share its checkpoints
        assert back.span.video.duration_s == 900.0
    done = decode_ingest(encode(span_report(orders[1], TokenTally(100, 20, 4))))
    assert done.span is not None and done.span.role == "report" and done.span.error is None
    assert done.span.tokens is not None and done.span.tokens.requests == 4
    failed = decode_ingest(encode(span_report(orders[2], error=("decode_failed", "no frames"))))
    assert failed.span is not None and failed.span.error is not None
    assert failed.span.label == "span 3 of 5 (240.0-450.0 s)"


@pytest.mark.parametrize(
    ("span", "field"),
    [
        ({"index": 3, "count": 3}, "index"),
        ({"first_chunk": 5, "end_chunk": 5}, "end_chunk"),
        ({"end_chunk": 40, "chunks_total": 30}, "end_chunk"),
        ({"start_s": 10.0, "end_s": 5.0}, "end_s"),
    ],
)
def test_an_inconsistent_span_part_is_refused(span: dict[str, Any], field: str) -> None:
    base = {
        "role": "order",
        "index": 0,
        "count": 3,
        "first_chunk": 0,
        "end_chunk": 10,
        "chunks_total": 30,
        "start_s": 0.0,
        "end_s": 300.0,
        "video": {"duration_s": 900, "fps": 25, "width": 64, "height": 64, "codec": "h264"},
    }
    with pytest.raises(ContractError) as caught:
        decode_ingest({**INGEST, "span": {**base, **span}})
    assert caught.value.field == f"span.{field}"


# -- the loop keeps a slot for short videos ------------------------------------------------------

SPANS, INGEST_TOPIC = "video.spans", "video.ingest"


class TwoTopics:
    """Ten span orders waiting, and one ingest event that arrives later."""

    def __init__(self) -> None:
        self.spans = [BusRecord(SPANS, 0, o, f"v.span-{o}", b"{}") for o in range(10)]
        self.ingest: list[BusRecord] = []
        self.paused: set[str] = set()
        self.fetched_spans = 0

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        pass

    def poll(self, *, timeout_s: float, max_records: int | None = None) -> list[BusRecord]:
        time.sleep(0.005)
        room = max_records or 1
        batch: list[BusRecord] = []
        if INGEST_TOPIC not in self.paused:
            batch, self.ingest = self.ingest[:room], self.ingest[room:]
        if SPANS not in self.paused and len(batch) < room:
            take = room - len(batch)
            batch += self.spans[self.fetched_spans : self.fetched_spans + take]
            self.fetched_spans = min(len(self.spans), self.fetched_spans + take)
        return batch

    def commit(self, offsets: Mapping[Partition, int]) -> None:
        pass

    def seek(self, part: Partition, offset: int) -> bool:
        return True

    def assignment(self) -> set[Partition]:
        return {Partition(SPANS, 0), Partition(INGEST_TOPIC, 0)}

    def pause(self, parts: Collection[Partition]) -> None:
        self.paused |= {p.topic for p in parts}

    def pause_all(self) -> None:
        self.paused = {SPANS, INGEST_TOPIC}

    def resume_all(self) -> None:
        self.paused = set()

    def lag_inputs(self, *, timeout_s: float) -> Any:
        return {}, {}

    def close(self) -> None:
        pass


class Slot:
    """Span orders run until released; an ingest job finishes at once."""

    def __init__(self, release: threading.Event, started: list[str]) -> None:
        self.release = release
        self.started = started
        self.cancel = threading.Event()
        self.retry_hint_s = 0.0

    def handle(self, delivery: Delivery) -> Disposition:
        self.started.append(delivery.topic)
        while delivery.topic == SPANS and not self.release.wait(0.01):
            if self.cancel.is_set():
                return Disposition.HAND_BACK
        return Disposition.COMMIT

    def give_up(self, delivery: Delivery, exc: BaseException) -> Disposition:
        raise AssertionError("no crash expected")


class NoOutputs:
    def commit(self, records: Sequence[OutRecord], offsets: Mapping[Partition, int]) -> None:
        pass


@contextlib.contextmanager
def _loop_running(stream: TwoTopics, slots: int, release: threading.Event) -> Iterator[list[str]]:
    """A worker loop over ``stream`` with span orders capped at two, in a thread; yields the
    topics of the records its slots started, in order. Stopped (spans released) on leaving."""
    started: list[str] = []
    loop = WorkerLoop(
        Settings(metrics_lag_interval_s=3600),
        stream,  # type: ignore[arg-type]
        [Slot(release, started) for _ in range(slots)],  # type: ignore[arg-type]
        committer=NoOutputs(),
        topic_caps={SPANS: 2},
    )
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=([SPANS, INGEST_TOPIC], stop))
    thread.start()
    try:
        yield started
    finally:
        release.set()
        stop.set()
        thread.join(20)


def test_span_orders_never_take_the_last_slot() -> None:
    stream = TwoTopics()
    release = threading.Event()
    with _loop_running(stream, 3, release) as started:
        deadline = time.monotonic() + 10
        while started.count(SPANS) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # time enough to take a third span if the cap let it
        assert started.count(SPANS) == 2 and stream.fetched_spans == 2
        stream.ingest.append(BusRecord(INGEST_TOPIC, 0, 0, "short", b"{}"))
        while INGEST_TOPIC not in started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert INGEST_TOPIC in started, "the short video found no slot"
        release.set()
        while started.count(SPANS) < 10 and time.monotonic() < deadline + 10:
            time.sleep(0.01)
        assert started.count(SPANS) == 10  # the rest ran as slots freed


class Rebalanced(TwoTopics):
    """Once two span orders run, a rebalance hands this member another span partition (a
    killed member's), unpaused as kafka-python hands new partitions over, holding five
    orders; the callback runs inside the poll that then fetches."""

    def __init__(self) -> None:
        super().__init__()
        self.spans = self.spans[:2]  # partition 0: the two orders the member runs first
        self.moved = [BusRecord(SPANS, 1, o, f"w.span-{o}", b"{}") for o in range(5)]
        self.on_assigned: Any = None
        self.paused_parts: set[Partition] = set()
        self.rebalanced = False

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.on_assigned = callbacks["on_assigned"]

    def poll(self, *, timeout_s: float, max_records: int | None = None) -> list[BusRecord]:
        if self.fetched_spans == 2 and not self.rebalanced:
            self.rebalanced = True
            self.on_assigned({Partition(SPANS, 1)})
        batch = super().poll(timeout_s=timeout_s, max_records=max_records)
        room = (max_records or 1) - len(batch)
        if self.rebalanced and Partition(SPANS, 1) not in self.paused_parts and room > 0:
            batch += self.moved[:room]
            self.moved = self.moved[room:]
        return batch

    def assignment(self) -> set[Partition]:
        moved = {Partition(SPANS, 1)} if self.rebalanced else set()
        return {Partition(SPANS, 0), Partition(INGEST_TOPIC, 0)} | moved

    def pause(self, parts: Collection[Partition]) -> None:
        super().pause(parts)
        self.paused_parts |= set(parts)

    def pause_all(self) -> None:
        super().pause_all()
        self.paused_parts |= self.assignment()

    def resume_all(self) -> None:
        super().resume_all()
        self.paused_parts = set()


def test_a_rebalance_never_gives_a_member_more_span_orders_than_its_cap() -> None:
    stream = Rebalanced()
    release = threading.Event()
    with _loop_running(stream, 8, release) as started:
        deadline = time.monotonic() + 10
        while not stream.rebalanced and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # time enough to start the moved orders if the cap let it
        assert stream.rebalanced and started.count(SPANS) == 2, started
        release.set()
        while started.count(SPANS) < 7 and time.monotonic() < deadline + 10:
            time.sleep(0.01)
        assert started.count(SPANS) == 7  # the moved ones ran as the first two finished


# -- the merging member, with a fake runner and store -------------------------------------------


class MemoryStore:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def get_bytes(self, bucket: str, key: str) -> bytes:
        from vidloc.errors import ObjectMissing

        try:
            return self.objects[(bucket, key)]
        except KeyError:
            raise ObjectMissing(key) from None

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "") -> None:
        self.objects[(bucket, key)] = data


class MergeRunner:
    """What the merging member asks of the runner: partial timelines and the one merge."""

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.calls: list[str] = []

    def partial(self, event: Any, job_id: str, reported: int) -> Any:
        self.calls.append(f"partial-{reported}")
        return _outcome(event, job_id)

    def merge(self, event: Any, job_id: str, progress: Any) -> Any:
        assert event.span is None  # the merge runs the whole video
        self.calls.append("merge")
        return _outcome(event, job_id)


def _outcome(event: Any, job_id: str) -> Any:
    from api_fixtures import make_timeline

    from workers.pipeline.job import JobOutcome

    timeline = make_timeline(event.effective_video_id, job_id=job_id, localizer="cv", model=None)
    return JobOutcome(timeline, "timelines", "t.json", TokenTally(10, 2, 1), 0.0)


class Bus:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes]] = []

    def publish(self, topic: str, key: str, value: bytes) -> None:
        self.sent.append((topic, key, value))

    def results(self) -> list[Any]:
        from contracts import decode_result

        return [decode_result(v) for t, _, v in self.sent if t == "video.results"]


def _reports(errors: dict[int, tuple[str, str]] | None = None) -> list[bytes]:
    event = decode_ingest(INGEST)
    chunks = _chunks(900.0)
    spans = plan_spans(chunks, 900.0, 300.0, 4)
    orders = span_orders(event, spans, VideoInfo(900.0, 25.0, 64, 64, "h264"), len(chunks))
    errors = errors or {}
    return [
        encode(span_report(o, error=errors.get(i)) if i in errors else span_report(o, TokenTally()))
        for i, o in enumerate(orders)
    ]


def _merging_member() -> tuple[Any, MergeRunner, Bus]:
    from workers.service.handler import IngestHandler

    runner, bus = MergeRunner(), Bus()
    settings = Settings(video_bucket="videos", localizer="cv")
    return IngestHandler(settings, runner, bus.publish), runner, bus  # type: ignore[arg-type]


def _report(value: bytes, offset: int) -> Delivery:
    return Delivery("video.spans.done", 0, offset, b"v", value)


def test_reports_give_partial_results_then_one_merge() -> None:
    member, runner, bus = _merging_member()
    reports = _reports()
    arrival = (1, 0, 3, 4, 2)  # spans finish in any order
    for offset, index in enumerate(arrival):
        assert member.handle(_report(reports[index], offset)) is Disposition.COMMIT
    assert runner.calls == ["partial-1", "partial-2", "partial-3", "partial-4", "merge"]
    results = bus.results()
    assert [r.partial for r in results] == [True, True, True, True, None]
    assert len({r.event_id for r in results}) == 5 and results[-1].status == "succeeded"
    # The completing report delivered again (a crash before its commit): the same merge again,
    # the same result id; an earlier report replayed after the merge: nothing.
    assert member.handle(_report(reports[2], 5)) is Disposition.COMMIT
    assert member.handle(_report(reports[0], 6)) is Disposition.COMMIT
    assert runner.calls[-2:] == ["merge", "merge"] and len(runner.calls) == 6
    assert bus.results()[-1].event_id == results[-1].event_id


def test_a_failed_span_fails_the_video_naming_it_and_later_reports_change_nothing() -> None:
    member, runner, bus = _merging_member()
    reports = _reports({3: ("decode_failed", "frames stop at 510.0 s")})
    for offset, index in enumerate((0, 3, 1, 2, 4)):
        assert member.handle(_report(reports[index], offset)) is Disposition.COMMIT
    assert runner.calls == ["partial-1"]
    final = [r for r in bus.results() if not r.partial]
    assert len(final) == 1 and final[0].status == "failed" and final[0].error is not None
    assert final[0].error.code == "decode_failed"
    assert final[0].error.message.startswith("span 4 of 5 (450.0-690.0 s): frames stop")


def test_span_parts_only_on_span_topics() -> None:
    member, runner, bus = _merging_member()
    order = encode(
        span_orders(
            decode_ingest(INGEST),
            plan_spans(_chunks(900.0), 900.0, 300.0, 4),
            VideoInfo(900.0, 25.0, 64, 64, "h264"),
            30,
        )[0]
    )
    assert member.handle(Delivery("video.ingest", 0, 0, b"v", order)) is Disposition.COMMIT
    assert member.handle(Delivery("video.spans", 0, 0, b"v", encode(decode_ingest(INGEST))))
    codes = [r.error.code for r in bus.results() if r.error is not None]
    assert codes == ["span_not_allowed", "span_not_allowed"] and runner.calls == []


@pytest.mark.parametrize(("slots", "rounds"), [(16, 2), (8, 1)])
def test_orders_spread_over_the_partitions_by_work(slots: int, rounds: int) -> None:
    """Four members each own four of 16 partitions (a contiguous range): each gets about a
    quarter of the chunks, in as many orders as rounds of its two span slots."""
    from vidloc.adapters.kafka import partition_for_key
    from workers.pipeline.spans import group_slots, runs_at_merge
    from workers.service.spans import span_key

    assert group_slots(4, 16, 2) == 8  # what each of the four members judges
    chunks = _chunks(3600.0)
    spans = plan_spans(chunks, 3600.0, 300.0, slots)
    orders = span_orders(
        decode_ingest(INGEST), spans, VideoInfo(3600.0, 25.0, 64, 64, "h264"), len(chunks)
    )
    per_member = [0, 0, 0, 0]
    orders_per_member = [0, 0, 0, 0]
    per_partition = [0] * 16
    for order in orders:
        assert order.span is not None
        chunks_in = order.span.end_chunk - order.span.first_chunk
        if runs_at_merge(order.span.index, chunks_in):
            continue  # the lead-in is run by the merging member, not from video.spans
        key = span_key(order.span, "v-1", 16, lambda k: partition_for_key(k, 16))
        per_partition[partition_for_key(key, 16)] += 1
        per_member[partition_for_key(key, 16) // 4] += chunks_in
        orders_per_member[partition_for_key(key, 16) // 4] += 1
    assert sum(per_member) == len(chunks) - 1 == 119
    # At most one order per partition; each member runs the same number.
    assert max(per_partition) == 1 and sum(per_partition) == slots
    assert orders_per_member == [2 * rounds] * 4
    assert max(per_member) - min(per_member) <= 1, per_member


# -- the lead-in span: run by the merging member, counted in as its own report ------------------


class LeadInRunner(MergeRunner):
    """Hands a 15-minute video off, and runs spans (the lead-in one, at the merging member)."""

    def __init__(self, fail_span: bool = False) -> None:
        super().__init__()
        self.fail_span = fail_span

    def run_or_hand_off(self, event: Any, job_id: str, progress: Any) -> Any:
        from workers.pipeline.job import HandOff

        chunks = _chunks(900.0)
        spans = plan_spans(chunks, 900.0, 300.0, 4)
        return HandOff(spans, VideoInfo(900.0, 25.0, 64, 64, "h264"), len(chunks))

    def run_span(self, event: Any, job_id: str, progress: Any) -> Any:
        from vidloc.errors import DecodeFailed
        from workers.pipeline.job import SpanOutcome

        self.calls.append(f"span-{event.span.index}")
        if self.fail_span:
            raise DecodeFailed("no frame before 12.0 s")
        chunks = event.span.end_chunk - event.span.first_chunk
        return SpanOutcome(TokenTally(7, 3, chunks), chunks, 0)


def _lead_in_member(fail_span: bool = False) -> tuple[Any, LeadInRunner, Bus]:
    from workers.service.handler import IngestHandler

    runner, bus = LeadInRunner(fail_span), Bus()
    settings = Settings(video_bucket="videos", localizer="cv")
    return IngestHandler(settings, runner, bus.publish), runner, bus  # type: ignore[arg-type]


def _orders() -> list[bytes]:
    chunks = _chunks(900.0)
    orders = span_orders(
        decode_ingest(INGEST),
        plan_spans(chunks, 900.0, 300.0, 4),
        VideoInfo(900.0, 25.0, 64, 64, "h264"),
        len(chunks),
    )
    return [encode(o) for o in orders]


def test_the_hand_off_sends_the_lead_in_span_to_the_merging_member() -> None:
    member, runner, bus = _lead_in_member()
    ingest = Delivery("video.ingest", 0, 0, b"v", encode(decode_ingest(INGEST)))
    assert member.handle(ingest) is Disposition.COMMIT
    sent = [(t, k, decode_ingest(v)) for t, k, v in bus.sent if t.startswith("video.spans")]
    # The one-chunk span rides with the video's reports (keyed by the video, so read in order
    # by its merging member); the others go to the group.
    assert [(t, e.span.index) for t, _, e in sent if e.span is not None] == [
        ("video.spans.done", 0),
        *[("video.spans", i) for i in range(1, 5)],
    ]
    assert sent[0][1] == decode_ingest(INGEST).effective_video_id
    assert all(e.span is not None and e.span.role == "order" for _, _, e in sent)
    assert runner.calls == []  # nothing localized at the hand-off


def test_the_merging_member_runs_the_lead_in_span_and_publishes_the_first_partial() -> None:
    member, runner, bus = _lead_in_member()
    orders, reports = _orders(), _reports()
    assert member.handle(_report(orders[0], 0)) is Disposition.COMMIT
    assert runner.calls == ["span-0", "partial-1"]
    (first,) = bus.results()
    assert first.partial and first.status == "succeeded"
    # No report of it leaves: it is counted in where it ran, in the same transaction.
    assert not [t for t, _, _ in bus.sent if t == "video.spans.done"]
    for offset, index in enumerate((2, 1, 4, 3), start=1):
        assert member.handle(_report(reports[index], offset)) is Disposition.COMMIT
    assert runner.calls[1:] == ["partial-1", "partial-2", "partial-3", "partial-4", "merge"]
    assert [r.partial for r in bus.results()] == [True, True, True, True, None]


def test_a_lead_in_span_that_fails_for_good_fails_the_video_naming_it() -> None:
    member, runner, bus = _lead_in_member(fail_span=True)
    assert member.handle(_report(_orders()[0], 0)) is Disposition.COMMIT
    (final,) = bus.results()
    assert final.status == "failed" and not final.partial and final.error is not None
    assert final.error.code == "decode_failed"
    assert final.error.message.startswith("span 1 of 5 (0.0-30.0 s): no frame before 12.0 s")
    # The other spans' reports change nothing once the video failed.
    assert member.handle(_report(_reports()[1], 1)) is Disposition.COMMIT
    assert runner.calls == ["span-0"] and len(bus.results()) == 1


def test_a_lead_in_order_goes_to_the_merging_member_and_no_other_order_does() -> None:
    member, runner, bus = _lead_in_member()
    orders = _orders()
    assert member.handle(Delivery("video.spans", 0, 0, b"v", orders[0])) is Disposition.COMMIT
    assert member.handle(_report(orders[2], 1)) is Disposition.COMMIT
    failed = [r.error for r in bus.results() if r.error is not None]
    assert [e.code for e in failed] == ["span_not_allowed", "span_not_allowed"]
    assert "lead-in order" in failed[0].message and "span order" in failed[1].message
    assert runner.calls == []
