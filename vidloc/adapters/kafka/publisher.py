"""The blocking publisher: one message at a time, returned only once the broker acked it."""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2

from vidloc.adapters.kafka.config import (
    MAX_BLOCK_MS,
    ClosedOnExit,
    construct,
    describe,
    kafka_config,
    require_listener,
)
from vidloc.errors import BusUnavailable
from vidloc.settings import Settings

log = logging.getLogger(__name__)


class EventPublisher(ClosedOnExit):
    """Publishes one message at a time and returns only once the broker has acknowledged it.

    ``acks="all"`` plus idempotence means an acked message is on every in-sync replica and a
    retried send is not written twice; callers commit their own input offsets after ``publish``.
    """

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        config = kafka_config(settings)
        config.update(
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_block_ms=MAX_BLOCK_MS,
            max_request_size=settings.max_message_bytes,
        )
        config.update(overrides)
        self._where = describe(settings)
        require_listener(settings)
        try:
            self._producer = construct(KafkaProducer, config)
        except KafkaError as exc:
            raise BusUnavailable(
                f"cannot connect a producer to Kafka at {self._where}: {exc}"
            ) from exc

    def publish(self, topic: str, key: str, value: bytes, *, timeout_s: float = 30.0) -> None:
        """Send ``value`` keyed by ``key`` and block until acked (or raise BusUnavailable)."""
        try:
            future = self._producer.send(topic, key=key.encode("utf-8"), value=value)
            metadata = future.get(timeout=timeout_s)
        except KafkaError as exc:
            raise BusUnavailable(
                f"publishing to {topic} on {self._where} failed: {type(exc).__name__}: {exc}"
            ) from exc
        log.debug(
            "published %s key=%s partition=%s offset=%s",
            topic,
            key,
            metadata.partition,
            metadata.offset,
        )

    def publish_soon(self, topic: str, key: str, value: bytes) -> None:
        """Send ``value`` keyed by ``key`` without waiting for the broker's ack.

        For advisory events (a job's in-flight progress), where a job thread waiting a round
        trip per event only delays the work. Order per key still holds (idempotent producer);
        a send the broker never acks is logged, not raised; a send refused at once (buffer full
        past ``max_block_ms``, no metadata) raises BusUnavailable like :meth:`publish`.
        """
        try:
            future = self._producer.send(topic, key=key.encode("utf-8"), value=value)
        except KafkaError as exc:
            raise BusUnavailable(
                f"publishing to {topic} on {self._where} failed: {type(exc).__name__}: {exc}"
            ) from exc
        future.add_errback(_log_undelivered, topic, key)

    def flush(self, timeout_s: float | None = None) -> None:
        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaError as exc:
            raise BusUnavailable(f"flushing to {self._where} failed: {exc}") from exc

    def close(self, timeout_s: float = 10.0) -> None:
        try:
            self._producer.close(timeout=timeout_s)
        except KafkaError as exc:
            raise BusUnavailable(f"closing the producer for {self._where} failed: {exc}") from exc


def _log_undelivered(topic: str, key: str, exc: BaseException) -> None:
    # kafka-python's errback: the bound arguments first, the exception last.
    log.warning("event for %s key=%s not delivered: %s: %s", topic, key, type(exc).__name__, exc)


def partition_for_key(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a message keyed ``key`` (UTF-8), as every
    producer here sends keys: the same murmur2 hash as the Java client's."""
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions
