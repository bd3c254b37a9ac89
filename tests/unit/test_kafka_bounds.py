"""The Kafka adapter under the faults of issue 23, without a broker: partitions lost by eviction
reach their own callback, a member without a generation commits nothing, and every
transactional call is bounded (a commit without an answer is reported as ambiguous)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from kafka import ConsumerGroupMetadata
from kafka.structs import TopicPartition

from vidloc.adapters.kafka import Partition, TopicReader, TransactionalPublisher
from vidloc.errors import BusUnavailable
from vidloc.settings import Settings

PART = Partition("video.ingest", 0)


class ListeningConsumer:
    """Keeps the rebalance listener, as KafkaConsumer.subscribe does."""

    def __init__(self, generation: int = 3, member: str = "m-1") -> None:
        self.listener: Any = None
        self.metadata = ConsumerGroupMetadata(
            group_id="g", generation_id=generation, member_id=member
        )

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        self.listener = listener

    def group_metadata(self) -> Any:
        return self.metadata


def test_lost_partitions_go_to_on_lost_not_to_on_revoked() -> None:
    consumer = ListeningConsumer()
    stream = TopicReader(consumer)
    seen: dict[str, set[Partition]] = {}
    stream.subscribe(
        ["video.ingest"],
        on_revoked=lambda parts: seen.setdefault("revoked", parts),
        on_lost=lambda parts: seen.setdefault("lost", parts),
    )
    # kafka-python calls this on a session expiry, before it clears the assignment.
    consumer.listener.on_partitions_lost({TopicPartition("video.ingest", 0)})
    assert seen == {"lost": {PART}}


@pytest.mark.parametrize(("generation", "member"), [(-1, ""), (-1, "m-1"), (4, "")])
def test_a_member_without_a_generation_commits_nothing(generation: int, member: str) -> None:
    # The broker does not fence TxnOffsetCommit without a member id and generation: between
    # an eviction and the poll that reports it, a commit would land on another's partitions.
    stream = TopicReader(ListeningConsumer(generation, member))
    with pytest.raises(BusUnavailable) as raised:
        stream.group_metadata()
    assert raised.value.code == "commit_rejected"
    assert TopicReader(ListeningConsumer(4, "m-1")).group_metadata() is not None


class Result:
    """kafka-python's TransactionalRequestResult: a latch, optionally never set."""

    def __init__(self, answered: bool) -> None:
        self._latch = threading.Event()
        if answered:
            self._latch.set()

    def wait(self, timeout_ms: float | None = None) -> bool:
        return self._latch.wait(None if timeout_ms is None else timeout_ms / 1000)


class Manager:
    def __init__(self, silent: set[str]) -> None:
        self.silent = silent
        self.calls: list[str] = []

    def _result(self, name: str) -> Result:
        self.calls.append(name)
        return Result(answered=name not in self.silent)

    def send_offsets_to_transaction(self, offsets: Any, group: Any) -> Result:
        return self._result("offsets")

    def begin_commit(self) -> Result:
        return self._result("commit")

    def begin_abort(self) -> Result:
        return self._result("abort")


class KafkaLikeProducer:
    """KafkaProducer's transactional surface as kafka-python 3 writes it: each public call
    starts a request on the transaction manager and waits for its result without a bound."""

    def __init__(self, silent: set[str]) -> None:
        self._transaction_manager = Manager(silent)
        self._sender = self
        self.closed_with: list[float | None] = []

    def wakeup(self) -> None:
        pass

    def init_transactions(self) -> None:
        pass

    def begin_transaction(self) -> None:
        pass

    def send(self, topic: str, *, key: bytes, value: bytes) -> None:
        pass

    def send_offsets_to_transaction(self, offsets: Any, group: Any) -> None:
        self._transaction_manager.send_offsets_to_transaction(offsets, group).wait()

    def commit_transaction(self) -> None:
        self._transaction_manager.begin_commit().wait()

    def abort_transaction(self) -> None:
        self._transaction_manager.begin_abort().wait()

    def close(self, timeout: float | None = None) -> None:
        self.closed_with.append(timeout)


def _commit_in_thread(txn: TransactionalPublisher) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            txn.commit([("video.results", "v", b"r")], {PART: 5}, object())
            outcome.append("committed")
        except BusUnavailable as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize(
    ("silent", "code"),
    [
        pytest.param({"commit"}, "commit_ambiguous", id="commit-unanswered"),
        pytest.param({"offsets", "abort"}, "bus_unavailable", id="offsets-unanswered"),
    ],
)
def test_a_transactional_call_without_an_answer_returns_within_max_block_ms(
    silent: set[str], code: str
) -> None:
    producers = [KafkaLikeProducer(silent), KafkaLikeProducer(set())]
    txn = TransactionalPublisher(
        Settings(), "tx-1", producer_factory=lambda _: producers.pop(0), max_block_ms=300
    )
    started = time.monotonic()
    thread, outcome = _commit_in_thread(txn)
    thread.join(5.0)
    assert not thread.is_alive(), "the commit waited without a bound for the coordinator"
    assert time.monotonic() - started < 2.0
    (error,) = outcome
    assert isinstance(error, BusUnavailable) and error.code == code
    # The silent producer is dropped without waiting; the next commit gets a fresh one,
    # whose init_transactions settles what the old one left open.
    txn.recover()
    assert not producers
