"""Outputs and consumed offsets committed together: Kafka's exactly-once pattern (KIP-98, KIP-447).

A :class:`TransactionalPublisher` sends a batch of records and commits a consumer group's offsets
in one transaction: a ``read_committed`` reader sees the records exactly when the offsets are
committed, never one without the other. A worker killed mid-transaction leaves it open; the
broker aborts it after ``transaction_timeout_ms`` (or at once when a producer with the same
``transactional_id`` starts), so nothing it sent becomes visible.

Zombies are fenced by the consumer's group generation (KIP-447, Kafka >= 2.5): the offsets
carry the member id and generation the consumer had at :meth:`TopicReader.group_metadata`,
and a member that lost its partitions in a rebalance has its transaction refused and aborted.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
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
        """
        if self._producer is None:
            self._open()
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
                producer.send_offsets_to_transaction(request, group)
            producer.commit_transaction()
        except KafkaError as exc:
            self._abort()
            fenced = type(exc).__name__ in _FENCED
            raise BusUnavailable(
                f"transaction of {len(records)} records and offsets "
                f"{_describe(offsets)} failed: {type(exc).__name__}: {exc}",
                code="commit_rejected" if fenced else None,
            ) from exc
        log.debug("committed %d records with offsets %s", len(records), _describe(offsets))

    def _abort(self) -> None:
        """Abort the open transaction; a producer that cannot (fenced, fatal) is rebuilt later."""
        try:
            self._producer.abort_transaction()
        except Exception as exc:  # fatal state: only a new producer (new epoch) can go on
            log.warning("transactional producer %s reset: %s", self.transactional_id, exc)
            self._discard()

    def _discard(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.close(timeout=2)

    def close(self, timeout_s: float = 10.0) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=timeout_s)
        except KafkaError as exc:
            log.warning("closing the transactional producer failed: %s", exc)


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
