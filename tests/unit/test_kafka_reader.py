"""TopicReader without a broker: every kafka-python error leaves it as BusUnavailable, and
records and partitions come out as plain values."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from kafka.cluster import ClusterMetadata
from kafka.errors import CommitFailedError, KafkaConnectionError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata, TopicPartition

from vidloc.adapters.kafka import BusRecord, Partition, TopicReader
from vidloc.adapters.kafka.reader import pass_auto_create, release_parked
from vidloc.errors import BusUnavailable


class Message:
    def __init__(self, offset: int, key: bytes | None, value: bytes | None) -> None:
        self.offset, self.key, self.value = offset, key, value


class FakeConsumer:
    """Records calls; ``fail`` makes every network call raise the given kafka-python error."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.committed: list[dict[TopicPartition, OffsetAndMetadata]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.assigned = {TopicPartition("t", 0), TopicPartition("t", 1)}
        self.paused_parts: set[TopicPartition] = set()
        self.batch: dict[TopicPartition, list[Message]] = {}

    def _maybe_fail(self) -> None:
        if self.fail is not None:
            raise self.fail

    def poll(self, timeout_ms: int, max_records: int | None = None) -> Any:
        self._maybe_fail()
        return self.batch

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self._maybe_fail()
        self.committed.append(offsets)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp not in self.assigned:
            raise AssertionError("Unassigned partition")
        self.seeks.append((tp, offset))

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        self._maybe_fail()

    def end_offsets(self, tps: list[TopicPartition], timeout_ms: int) -> Any:
        self._maybe_fail()
        return {tp: 10 for tp in tps}

    def position(self, tp: TopicPartition, timeout_ms: int) -> int:
        self._maybe_fail()
        return 4

    def topics(self) -> set[str]:
        self._maybe_fail()
        return {"t"}

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, *tps: TopicPartition) -> None:
        self.paused_parts.update(tps)

    def paused(self) -> set[TopicPartition]:
        return set(self.paused_parts)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused_parts.difference_update(tps)


CALLS: list[tuple[str, Callable[[TopicReader], object]]] = [
    ("poll", lambda s: s.poll(timeout_s=0.1)),
    ("commit", lambda s: s.commit({Partition("t", 0): 3})),
    ("subscribe", lambda s: s.subscribe(["t"])),
    ("lag_inputs", lambda s: s.lag_inputs()),
    ("topics", lambda s: s.topics()),
]


@pytest.mark.parametrize("call", [c for _, c in CALLS], ids=[name for name, _ in CALLS])
@pytest.mark.parametrize("error", [KafkaConnectionError("down"), KafkaTimeoutError("slow")])
def test_every_kafka_error_becomes_bus_unavailable(
    call: Callable[[TopicReader], object], error: Exception
) -> None:
    stream = TopicReader(FakeConsumer(fail=error), where="127.0.0.1:9092")
    with pytest.raises(BusUnavailable) as info:
        call(stream)
    assert info.value.__cause__ is error


def test_a_commit_refused_after_a_rebalance_has_its_own_code() -> None:
    stream = TopicReader(FakeConsumer(fail=CommitFailedError("rebalanced")))
    with pytest.raises(BusUnavailable) as info:
        stream.commit({Partition("t", 1): 8})
    assert info.value.code == "commit_rejected"
    assert "t[1]@8" in str(info.value)


def test_commit_sends_the_next_offset_per_partition() -> None:
    consumer = FakeConsumer()
    stream = TopicReader(consumer)
    stream.commit({Partition("t", 0): 3, Partition("t", 1): 9})
    stream.commit_past(BusRecord("t", 1, 11, "k", b"v"))
    stream.commit({})  # nothing to commit is no request at all
    assert [{tp: meta.offset for tp, meta in c.items()} for c in consumer.committed] == [
        {TopicPartition("t", 0): 3, TopicPartition("t", 1): 9},
        {TopicPartition("t", 1): 12},
    ]


def test_poll_gives_plain_records_with_decoded_keys() -> None:
    consumer = FakeConsumer()
    consumer.batch = {
        TopicPartition("t", 1): [Message(5, b"vid-1", b"{}"), Message(6, None, None)],
        TopicPartition("t", 0): [Message(2, b"\xff", b"x")],
    }
    records = TopicReader(consumer).poll(timeout_s=0.1)
    assert records == [
        BusRecord("t", 1, 5, "vid-1", b"{}"),
        BusRecord("t", 1, 6, None, b""),
        BusRecord("t", 0, 2, "\ufffd", b"x"),
    ]
    assert records[0].where == Partition("t", 1)


def test_rewind_seeks_each_partition_to_its_first_record_and_skips_lost_ones() -> None:
    consumer = FakeConsumer()
    stream = TopicReader(consumer)
    stream.rewind(
        [
            BusRecord("t", 0, 7, None, b""),
            BusRecord("t", 0, 8, None, b""),
            BusRecord("t", 1, 3, None, b""),
            BusRecord("t", 5, 1, None, b""),  # not ours any more: no error, nothing sought
        ]
    )
    assert consumer.seeks == [(TopicPartition("t", 0), 7), (TopicPartition("t", 1), 3)]
    assert not stream.seek(Partition("t", 5), 0)


def test_pause_all_resume_all_and_lag_inputs_speak_partitions() -> None:
    consumer = FakeConsumer()
    stream = TopicReader(consumer)
    stream.pause_all()
    assert consumer.paused() == consumer.assigned
    stream.resume_all()
    assert consumer.paused() == set()
    ends, positions = stream.lag_inputs()
    assert ends == {Partition("t", 0): 10, Partition("t", 1): 10}
    assert positions == {Partition("t", 0): 4, Partition("t", 1): 4}


class Parked:
    """A kafka-python PartitionRecords stand-in: parked records, drained when dropped."""

    def __init__(self) -> None:
        self.drained = False

    def drain(self) -> None:
        self.drained = True


class Fetcher:
    def __init__(self, parked: dict[TopicPartition, Parked]) -> None:
        self._paused_partition_records = parked


def test_resume_all_releases_records_parked_for_resumed_partitions() -> None:
    """kafka-python 3.0 keeps a resumed partition out of every fetch while records it fetched
    before the pause stay parked (tests/integration/test_kafka_resume_parked.py); resume_all
    drops them (never returned: the position still points at them), a still-paused one keeps
    its own."""
    consumer = FakeConsumer()
    resumed, held = TopicPartition("t", 0), TopicPartition("t", 1)
    parked = {resumed: Parked(), held: Parked()}
    consumer._fetcher = Fetcher(dict(parked))  # type: ignore[attr-defined]
    stream = TopicReader(consumer)
    stream.pause_all()
    stream.resume_all()
    assert parked[resumed].drained and parked[held].drained
    assert consumer._fetcher._paused_partition_records == {}  # type: ignore[attr-defined]

    parked = {resumed: Parked(), held: Parked()}
    consumer._fetcher = Fetcher(dict(parked))  # type: ignore[attr-defined]
    consumer.pause(resumed, held)
    consumer.resume(resumed)
    assert release_parked(consumer) == 1  # type: ignore[arg-type]
    assert parked[resumed].drained and not parked[held].drained
    assert list(consumer._fetcher._paused_partition_records) == [held]  # type: ignore[attr-defined]


def test_a_reader_asked_not_to_create_topics_sends_metadata_requests_that_say_so() -> None:
    """kafka-python 3.0.12 leaves a consumer's allow_auto_create_topics out of its cluster
    metadata, whose requests then ask the broker to create every topic they name
    (tests/integration/test_kafka_topic_later.py meets it on the local stack)."""
    cluster = ClusterMetadata()
    cluster.set_topics(["not-yet"])
    consumer = SimpleNamespace(_client=SimpleNamespace(cluster=cluster))
    assert cluster.metadata_request().allow_auto_topic_creation  # kafka-python's default

    pass_auto_create(consumer, False)
    assert not cluster.metadata_request().allow_auto_topic_creation
    pass_auto_create(consumer, True)
    assert cluster.metadata_request().allow_auto_topic_creation
    pass_auto_create(FakeConsumer(), False)  # a consumer without that inner shape is left alone
