"""Outputs and consumed offsets committed together: Kafka's exactly-once pattern (KIP-98, KIP-447).

A :class:`TransactionalPublisher` sends a batch of records and commits a consumer group's offsets
in one transaction: a ``read_committed`` reader sees the records exactly when the offsets are
committed, never one without the other. A worker killed mid-transaction leaves it open; the
broker aborts it after ``transaction_timeout_ms`` (or at once when a producer with the same
``transactional_id`` starts), so nothing it sent becomes visible.

Zombies are fenced by the consumer's group generation (KIP-447, Kafka >= 2.5): the offsets
carry the member id and generation the consumer had at :meth:`TopicReader.group_metadata`,
and a member that lost its partitions in a rebalance has its transaction refused and aborted.

Every call waits at most ``max_block_ms`` (as Java's producer does since KAFKA-7763 and
KAFKA-10309); kafka-python 3 waits without a bound in ``send_offsets_to_transaction``,
``commit_transaction`` and ``abort_transaction`` while no coordinator answers. A commit that
got no answer in time is *ambiguous*: the coordinator may have committed it or not. It is
reported as ``commit_ambiguous`` and the producer is dropped; the next one, with the same
``transactional_id``, settles the old transaction in ``init_transactions`` (completes a commit
the coordinator had prepared, aborts anything else), and the caller then asks the group which
offsets are committed (docs/delivery.md, "A commit without an answer").
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata, TopicPartition

from vidloc.adapters.kafka.config import (
    MAX_BLOCK_MS,
    ClosedOnExit,
    construct,
    describe,
    kafka_config,
    require_listener,
)
from vidloc.adapters.kafka.records import Partition
from vidloc.errors import BusUnavailable
from vidloc.settings import Settings

log = logging.getLogger(__name__)

# (topic, key, value): one record of a transaction.
OutRecord = tuple[str, str, bytes]


class TransactionalPublisher(ClosedOnExit):
    """One transactional producer; :meth:`commit` is the only way anything leaves it.

    Not thread-safe: the consumer loop's thread owns it (a transaction spans one call).
    """

    def __init__(
        self,
        settings: Settings,
        transactional_id: str,
        *,
        transaction_timeout_ms: int = 15_000,
        producer_factory: Callable[[dict[str, Any]], Any] | None = None,
        **overrides: Any,
    ) -> None:
        config = kafka_config(settings)
        config.update(
            acks="all",
            enable_idempotence=True,
            transactional_id=transactional_id,
            transaction_timeout_ms=transaction_timeout_ms,
            max_block_ms=MAX_BLOCK_MS,
            max_request_size=settings.max_message_bytes,
        )
        config.update(overrides)
        self._config = config
        self._wait_ms = int(config["max_block_ms"])
        self._where = describe(settings)
        self.transactional_id = transactional_id
        # A KafkaProducer; injectable so the failure handling is tested without a broker.
        self._factory = producer_factory or (lambda config: construct(KafkaProducer, config))
        if producer_factory is None:
            require_listener(settings)
        self._producer: Any = None
        self._open()

    def _open(self) -> None:
        try:
            self._producer = self._factory(self._config)
            # Aborts whatever an earlier producer with this id left open (a SIGKILLed worker).
            self._producer.init_transactions()
        except KafkaError as exc:
            self._discard()
            raise BusUnavailable(
                f"cannot start transactions as {self.transactional_id!r} on {self._where}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def commit(
        self,
        records: Sequence[OutRecord],
        offsets: Mapping[Partition, int],
        group: object,
    ) -> None:
        """Publish ``records`` and commit ``offsets`` (next offset to read) atomically.

        ``group`` is :meth:`TopicReader.group_metadata` of the consumer that read the input.
        Raises BusUnavailable when the transaction did not commit (code ``commit_rejected``
        when the group refused the offsets: the partitions belong to another member now);
        nothing of it is then visible to read_committed readers, and the call may be repeated.
        Code ``commit_ambiguous``: the commit got no answer within ``max_block_ms`` and may
        or may not have committed; do not repeat it before asking the group's committed
        offsets (after :meth:`recover`).
        """
        self.recover()
        producer = self._producer
        request = {
            TopicPartition(p.topic, p.partition): OffsetAndMetadata(o, "", -1)
            for p, o in offsets.items()
        }
        try:
            producer.begin_transaction()
            for topic, key, value in records:
                producer.send(topic, key=key.encode("utf-8"), value=value)
            if request:
                self._bounded(producer, "send_offsets_to_transaction", request, group)
        except _NoAnswer as exc:
            # Never committed (no EndTxn was sent); the next producer aborts what is open.
            self._discard()
            raise BusUnavailable(
                f"transaction of {len(records)} records and offsets {_describe(offsets)}"
                f" not committed: {exc}"
            ) from exc
        except KafkaError as exc:
            raise self._failed(exc, records, offsets) from exc
        try:
            self._bounded(producer, "commit_transaction")
        except _NoAnswer as exc:
            self._discard()
            raise BusUnavailable(
                f"commit of {len(records)} records and offsets {_describe(offsets)}"
                f" unanswered, outcome unknown: {exc}",
                code="commit_ambiguous",
            ) from exc
        except KafkaError as exc:
            raise self._failed(exc, records, offsets) from exc
        log.debug("committed %d records with offsets %s", len(records), _describe(offsets))

    def _failed(
        self, exc: KafkaError, records: Sequence[OutRecord], offsets: Mapping[Partition, int]
    ) -> BusUnavailable:
        """The coordinator answered with an error: nothing committed; abort, and say so."""
        self._abort()
        fenced = type(exc).__name__ in _FENCED
        return BusUnavailable(
            f"transaction of {len(records)} records and offsets "
            f"{_describe(offsets)} failed: {type(exc).__name__}: {exc}",
            code="commit_rejected" if fenced else None,
        )

    def recover(self) -> None:
        """Have a producer ready, opening one if the last was dropped: its
        ``init_transactions`` (at most ``max_block_ms``) settles whatever transaction the
        dropped one left, so offsets fetched afterwards are final. BusUnavailable."""
        if self._producer is None:
            self._open()

    def _bounded(self, producer: Any, step: str, *args: Any) -> None:
        """``producer.<step>(*args)``, waiting at most ``max_block_ms`` for the coordinator.

        kafka-python's own methods are ``result = manager.<start>(...); sender.wakeup();
        result.wait()`` with no timeout; this is the same with one. A producer without
        kafka-python's transaction manager (a test double) is called as it is.
        """
        manager = getattr(producer, "_transaction_manager", None)
        if manager is None:
            getattr(producer, step)(*args)
            return
        start = {
            "send_offsets_to_transaction": manager.send_offsets_to_transaction,
            "commit_transaction": manager.begin_commit,
            "abort_transaction": manager.begin_abort,
        }[step]
        result = start(*args)
        producer._sender.wakeup()
        try:
            answered = result.wait(timeout_ms=self._wait_ms)
        except KafkaTimeoutError as exc:  # kafka-python's own timeout: also no answer
            raise _NoAnswer(f"{step}: {exc}") from exc
        if not answered:
            raise _NoAnswer(f"{step}: no answer within {self._wait_ms} ms")

    def _abort(self) -> None:
        """Abort the open transaction; a producer that cannot (fenced, fatal) is rebuilt later."""
        try:
            self._bounded(self._producer, "abort_transaction")
        except Exception as exc:  # fatal state: only a new producer (new epoch) can go on
            log.warning("transactional producer %s reset: %s", self.transactional_id, exc)
            self._discard()

    def _discard(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                # No waiting: a producer dropped for an unanswered call would wait for that
                # same coordinator; its successor's epoch fences whatever it still sends.
                producer.close(timeout=0)

    def close(self, timeout_s: float = 10.0) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=timeout_s)
        except KafkaError as exc:
            log.warning("closing the transactional producer failed: %s", exc)


class _NoAnswer(Exception):
    """A transactional call got no answer within ``max_block_ms``."""


# The group or the transaction coordinator says this member no longer owns what it commits.
_FENCED = frozenset(
    {
        "ProducerFencedError",
        "InvalidProducerEpochError",
        "IllegalGenerationError",
        "UnknownMemberIdError",
        "FencedInstanceIdError",
        "CommitFailedError",
        "RebalanceInProgressError",
    }
)


def _describe(offsets: Mapping[Partition, int]) -> str:
    return ", ".join(f"{part}@{offset}" for part, offset in sorted(offsets.items())) or "none"
