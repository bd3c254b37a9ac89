"""The one Kafka adapter (kafka-python 3.x): config, a blocking publisher, consumers.

Every kafka-python error that escapes this module is turned into
:class:`vidloc.errors.BusUnavailable` (``raise ... from exc``) so callers handle one type.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.net.compat import KafkaNetClient
from kafka.structs import OffsetAndMetadata, TopicPartition

from vidloc.errors import BusUnavailable
from vidloc.settings import Settings

log = logging.getLogger(__name__)

Client = TypeVar("Client")

# A dead broker should fail a CLI or a worker start in seconds, not after kafka-python's 30-60 s.
_BOOTSTRAP_TIMEOUT_MS = 10_000
_MAX_BLOCK_MS = 10_000


def kafka_config(settings: Settings) -> dict[str, Any]:
    """Connection and security options shared by producers, consumers and the admin client."""
    config: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in settings.kafka_bootstrap.split(",") if s.strip()],
        "security_protocol": settings.kafka_security_protocol,
        "bootstrap_timeout_ms": _BOOTSTRAP_TIMEOUT_MS,
    }
    if settings.kafka_sasl_mechanism:
        config["sasl_mechanism"] = settings.kafka_sasl_mechanism
    if settings.kafka_sasl_username:
        config["sasl_plain_username"] = settings.kafka_sasl_username
    if settings.kafka_sasl_password is not None:
        config["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_cafile:
        config["ssl_cafile"] = settings.kafka_ssl_cafile
    return config


def _construct(cls: Callable[..., Client], config: dict[str, Any]) -> Client:
    """Build a producer/consumer, closing its network client if the constructor fails.

    kafka-python bootstraps inside ``__init__``; when that times out the half-built object
    is dropped without closing its sockets, which leaks them in every retry loop.
    """
    created: list[Any] = []
    factory = config.get("kafka_client", KafkaNetClient)

    def tracking_factory(**kwargs: Any) -> Any:
        client = factory(**kwargs)
        created.append(client)
        return client

    try:
        return cls(**{**config, "kafka_client": tracking_factory})
    except BaseException:
        for client in created:
            with contextlib.suppress(Exception):
                client.close()
        raise


def _require_listener(settings: Settings, timeout_s: float = 3.0) -> None:
    """Fail fast (and leak nothing) when no bootstrap server even accepts a TCP connection.

    kafka-python's own bootstrap would wait ``bootstrap_timeout_ms`` and then leave its
    half-open sockets behind.
    """
    problems = []
    last: Exception | None = None
    for server in kafka_config(settings)["bootstrap_servers"]:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout_s):
                return
        except (OSError, ValueError) as exc:
            problems.append(f"{server}: {exc}")
            last = exc
    raise BusUnavailable(
        f"no Kafka broker answers at {_describe(settings)}: {'; '.join(problems)}"
    ) from last


def _describe(settings: Settings) -> str:
    # Only the address and protocol: the config dict may carry a SASL password.
    return f"{settings.kafka_bootstrap} ({settings.kafka_security_protocol})"


class EventPublisher:
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
            max_block_ms=_MAX_BLOCK_MS,
            max_request_size=settings.max_message_bytes,
        )
        config.update(overrides)
        self._where = _describe(settings)
        _require_listener(settings)
        try:
            self._producer = _construct(KafkaProducer, config)
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

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def make_consumer(
    settings: Settings,
    *,
    group_id: str | None,
    topics: Sequence[str],
    **overrides: Any,
) -> KafkaConsumer:
    """A consumer with manual commits; subscribes to ``topics`` unless the list is empty.

    Pass ``topics=()`` to get an unsubscribed consumer for manual ``assign`` (e.g. a follower).
    """
    config = kafka_config(settings)
    config.update(
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # Small batches: one record can mean minutes of model calls, and the poll interval
        # must cover a whole batch before the group evicts the member.
        max_poll_records=1,
        max_poll_interval_ms=30 * 60 * 1000,
        session_timeout_ms=45_000,
        fetch_max_bytes=max(settings.max_message_bytes * 2, 1_048_576),
        max_partition_fetch_bytes=max(settings.max_message_bytes, 1_048_576),
    )
    config.update(overrides)
    _require_listener(settings)
    try:
        consumer = _construct(KafkaConsumer, config)
        if topics:
            consumer.subscribe(list(topics))
    except KafkaError as exc:
        raise BusUnavailable(
            f"cannot create a consumer on {_describe(settings)} for {list(topics)}: {exc}"
        ) from exc
    return consumer


@dataclass(frozen=True)
class BusRecord:
    """One consumed message as plain values, so loops never touch kafka-python types."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes


def poll_records(
    consumer: KafkaConsumer, *, timeout_s: float, max_records: int | None = None
) -> list[BusRecord]:
    """Fetched records in partition order (empty when nothing arrived within ``timeout_s``)."""
    try:
        batch = consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
    except KafkaError as exc:
        raise BusUnavailable(f"polling Kafka failed: {type(exc).__name__}: {exc}") from exc
    records: list[BusRecord] = []
    for tp, messages in batch.items():
        for message in messages:
            key = message.key
            records.append(
                BusRecord(
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=message.offset,
                    key=key.decode("utf-8", "replace") if isinstance(key, bytes) else key,
                    value=message.value if message.value is not None else b"",
                )
            )
    return records


def commit_record(consumer: KafkaConsumer, record: BusRecord) -> None:
    """Commit past ``record`` (offset + 1): call only once its outputs are safely acked."""
    tp = TopicPartition(record.topic, record.partition)
    try:
        consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "", -1)})
    except KafkaError as exc:
        raise BusUnavailable(
            f"committing {record.topic}[{record.partition}]@{record.offset} failed: {exc}"
        ) from exc


def rewind_to(consumer: KafkaConsumer, record: BusRecord) -> None:
    """Make the next poll return ``record`` again (after a transient failure)."""
    try:
        consumer.seek(TopicPartition(record.topic, record.partition), record.offset)
    except (KafkaError, ValueError) as exc:
        # kafka-python refuses once a rebalance took the partition away; its new owner
        # resumes from the last commit anyway.
        log.info("cannot rewind %s[%d]: %s", record.topic, record.partition, exc)


def open_tail(
    settings: Settings, topics: Sequence[str], *, timeout_s: float = 15.0
) -> KafkaConsumer:
    """A group-less consumer on every partition of ``topics``, positioned at their current end.

    ``position()`` is forced before returning, so anything published after this call is seen:
    callers open the tail *before* triggering the work whose outputs they wait for.
    """
    consumer = make_consumer(settings, group_id=None, topics=(), auto_offset_reset="latest")
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic))
        ]
        missing = [t for t in topics if not any(tp.topic == t for tp in partitions)]
        if missing:
            raise BusUnavailable(f"topics {missing} do not exist on {_describe(settings)}")
        consumer.assign(partitions)
        consumer.seek_to_end(*partitions)
        for tp in partitions:
            consumer.position(tp, timeout_ms=int(timeout_s * 1000))
    except KafkaError as exc:
        consumer.close()
        raise BusUnavailable(f"cannot tail {list(topics)} on {_describe(settings)}: {exc}") from exc
    except BusUnavailable:
        consumer.close()
        raise
    return consumer


def close_consumer(consumer: KafkaConsumer) -> None:
    try:
        consumer.close()
    except KafkaError as exc:
        log.warning("closing a Kafka consumer failed: %s", exc)


def park_group_at_end(settings: Settings, group_id: str, topic: str) -> None:
    """Commit ``topic``'s current end offsets for ``group_id``: it starts with what comes next.

    For groups that must not replay history, e.g. a demo or a test on a long-lived stack.
    """
    consumer = make_consumer(settings, group_id=group_id, topics=())
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_end(*tps)
        consumer.commit({tp: OffsetAndMetadata(consumer.position(tp), "", -1) for tp in tps})
    except KafkaError as exc:
        raise BusUnavailable(f"cannot park group {group_id} at the end of {topic}: {exc}") from exc
    finally:
        close_consumer(consumer)
