"""vidloc's topics, and creating the missing ones (what ``vidloc init`` and the local stack do).

The partition counts are defined here once: the deployment's one-shot init and
``vidloc stack up`` create the same topics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from vidloc import names
from vidloc.adapters.kafka.config import kafka_config
from vidloc.errors import BusUnavailable
from vidloc.settings import Settings


def topic_partitions(settings: Settings) -> dict[str, int]:
    """Partitions per vidloc topic: the ingest fan-out is configurable, the rest is fixed."""
    counts = {
        names.TOPIC_S3_EVENTS: 4,
        names.TOPIC_INGEST: settings.ingest_partitions,
        names.TOPIC_PROGRESS: 4,
        names.TOPIC_RESULTS: 4,
        names.TOPIC_DLQ: 1,
        # Span orders spread over the group: more partitions than members, so every member
        # gets some; reports go to the one partition their video's key names.
        names.TOPIC_SPANS: settings.span_partitions,
        names.TOPIC_SPANS_DONE: settings.ingest_partitions,
    }
    assert set(counts) == set(names.ALL_TOPICS), "every vidloc topic needs a partition count"
    return counts


def topic_configs(replication_factor: int) -> dict[str, str]:
    """Per-topic durability for ``replication_factor`` replicas.

    ``min.insync.replicas`` 2 of 3 (1 below that): a record acked with acks=all is on two
    brokers, and one broker may be down without stopping producers. Unclean leader election
    off: an out-of-sync replica never becomes leader, so an acked record (a committed result)
    is never lost to a failover.
    """
    return {
        "min.insync.replicas": str(max(1, min(2, replication_factor - 1))),
        "unclean.leader.election.enable": "false",
    }


def create_missing_topics(
    admin: KafkaAdminClient, wanted: Mapping[str, int], replication_factor: int
) -> list[str]:
    """Create the topics of ``wanted`` (name -> partitions) that do not exist; their names.

    Raises KafkaError; callers translate it into their own vidloc error.
    """
    existing = set(admin.list_topics())
    configs = topic_configs(replication_factor)
    missing = [
        NewTopic(
            name=t,
            num_partitions=n,
            replication_factor=replication_factor,
            topic_configs=configs,
        )
        for t, n in wanted.items()
        if t not in existing
    ]
    # Another init may have raced us; an existing topic is all we want.
    if missing:
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(missing)
    return [t.name for t in missing]


def _admin(settings: Settings, bootstrap: str | None, client_id: str) -> KafkaAdminClient:
    # A plain ``bootstrap`` is the local dev broker's own listener (no TLS/SASL); without it the
    # deployment's settings, security included, decide.
    config = {"bootstrap_servers": bootstrap} if bootstrap else kafka_config(settings)
    return KafkaAdminClient(**config, client_id=client_id, request_timeout_ms=10_000)


def broker_topics(settings: Settings, *, bootstrap: str | None = None) -> set[str]:
    """The broker's topic names: one metadata round trip, a readiness probe. BusUnavailable."""
    try:
        admin = _admin(settings, bootstrap, "vidloc-probe")
    except KafkaError as exc:
        raise BusUnavailable(f"Kafka at {bootstrap or settings.kafka_bootstrap}: {exc}") from exc
    try:
        return set(admin.list_topics())
    except KafkaError as exc:
        raise BusUnavailable(f"Kafka at {bootstrap or settings.kafka_bootstrap}: {exc}") from exc
    finally:
        admin.close()


def live_brokers(settings: Settings, *, bootstrap: str | None = None) -> int:
    """How many brokers the cluster's metadata lists now. BusUnavailable."""
    try:
        admin = _admin(settings, bootstrap, "vidloc-probe")
    except KafkaError as exc:
        raise BusUnavailable(f"Kafka at {bootstrap or settings.kafka_bootstrap}: {exc}") from exc
    try:
        return len(admin.describe_cluster()["brokers"])
    except KafkaError as exc:
        raise BusUnavailable(f"Kafka at {bootstrap or settings.kafka_bootstrap}: {exc}") from exc
    finally:
        admin.close()


def ensure_topics(
    settings: Settings, *, bootstrap: str | None = None, replication: int | None = None
) -> list[str]:
    """Create the vidloc topics missing on the broker; return their names. BusUnavailable."""
    where = bootstrap or settings.kafka_bootstrap
    try:
        admin = _admin(settings, bootstrap, "vidloc-init")
    except KafkaError as exc:
        raise BusUnavailable(f"Kafka at {where} not ready: {exc}") from exc
    try:
        factor = settings.topic_replication if replication is None else replication
        return create_missing_topics(admin, topic_partitions(settings), factor)
    except KafkaError as exc:
        raise BusUnavailable(f"could not create topics: {exc}") from exc
    finally:
        admin.close()
