"""The transactional publisher without a broker: records and offsets go in one transaction, a
failed one is aborted and raises BusUnavailable (commit_rejected when the group or coordinator
fenced this member), and a producer that cannot even abort is replaced by a fresh one."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.errors import IllegalGenerationError, KafkaTimeoutError, ProducerFencedError

from vidloc.adapters.kafka import Partition, TransactionalPublisher
from vidloc.errors import BusUnavailable
from vidloc.settings import Settings

PART = Partition("video.ingest", 2)
RECORDS = [("video.results", "v-1", b"result"), ("video.progress", "v-1", b"done")]


class FakeProducer:
    def __init__(self, fail_at: str | None, error: Exception, abort_fails: bool) -> None:
        self.calls: list[str] = []
        self.fail_at = fail_at
        self.error = error
        self.abort_fails = abort_fails
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.offsets: list[tuple[dict[Any, Any], object]] = []

    def _step(self, name: str) -> None:
        self.calls.append(name)
        if name == self.fail_at:
            raise self.error

    def init_transactions(self) -> None:
        self._step("init")

    def begin_transaction(self) -> None:
        self._step("begin")

    def send(self, topic: str, *, key: bytes, value: bytes) -> None:
        self._step("send")
        self.sent.append((topic, key, value))

    def send_offsets_to_transaction(self, offsets: dict[Any, Any], group: object) -> None:
        self._step("offsets")
        self.offsets.append((offsets, group))

    def commit_transaction(self) -> None:
        self._step("commit")

    def abort_transaction(self) -> None:
        self.calls.append("abort")
        if self.abort_fails:
            raise ProducerFencedError()

    def close(self, timeout: float | None = None) -> None:
        self.calls.append("close")


def publisher(*producers: FakeProducer) -> tuple[TransactionalPublisher, list[dict[str, Any]]]:
    queue = list(producers)
    configs: list[dict[str, Any]] = []

    def factory(config: dict[str, Any]) -> FakeProducer:
        configs.append(config)
        return queue.pop(0)

    return TransactionalPublisher(Settings(), "tx-1", producer_factory=factory), configs


def test_records_and_offsets_commit_in_one_transaction() -> None:
    producer = FakeProducer(None, KafkaTimeoutError(), abort_fails=False)
    txn, configs = publisher(producer)
    group = object()
    txn.commit(RECORDS, {PART: 8}, group)
    assert producer.calls == ["init", "begin", "send", "send", "offsets", "commit"]
    assert [s[0] for s in producer.sent] == ["video.results", "video.progress"]
    ((offsets, seen_group),) = producer.offsets
    assert seen_group is group
    assert [(tp.topic, tp.partition, meta.offset) for tp, meta in offsets.items()] == [
        ("video.ingest", 2, 8)
    ]
    assert configs[0]["transactional_id"] == "tx-1" and configs[0]["enable_idempotence"]


@pytest.mark.parametrize(
    ("fail_at", "error", "code"),
    [
        pytest.param("commit", KafkaTimeoutError(), "bus_unavailable", id="broker-slow"),
        pytest.param("offsets", IllegalGenerationError(), "commit_rejected", id="zombie-member"),
        pytest.param("send", KafkaTimeoutError(), "bus_unavailable", id="send-failed"),
    ],
)
def test_a_failed_transaction_is_aborted_and_reported(
    fail_at: str, error: Exception, code: str
) -> None:
    producer = FakeProducer(fail_at, error, abort_fails=False)
    txn, _ = publisher(producer)
    with pytest.raises(BusUnavailable) as raised:
        txn.commit(RECORDS, {PART: 8}, object())
    assert raised.value.code == code
    # The failing step, then the abort: nothing after it was attempted.
    assert producer.calls[-2:] == [fail_at, "abort"]


def test_a_producer_that_cannot_abort_is_replaced_before_the_next_transaction() -> None:
    fenced = FakeProducer("commit", ProducerFencedError(), abort_fails=True)
    fresh = FakeProducer(None, KafkaTimeoutError(), abort_fails=False)
    txn, configs = publisher(fenced, fresh)
    with pytest.raises(BusUnavailable) as raised:
        txn.commit(RECORDS, {PART: 8}, object())
    assert raised.value.code == "commit_rejected"
    assert fenced.calls[-2:] == ["abort", "close"]
    txn.commit(RECORDS, {PART: 8}, object())  # the retry goes through a new producer
    assert fresh.calls == ["init", "begin", "send", "send", "offsets", "commit"]
    assert len(configs) == 2
