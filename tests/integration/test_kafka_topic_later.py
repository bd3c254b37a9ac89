"""A group member that subscribed before its topic existed reads the topic once it is created.

A deployment's bridge can subscribe to ``s3.events`` before its init has created the topic. The
member joins with nothing assigned; the record produced after the topic's creation must reach it
without a restart, well before kafka-python's 5-minute ``metadata_max_age_ms`` would refresh the
metadata (vidloc/adapters/kafka/reader.py, docs/delivery.md).

The local stack's broker auto-creates topics, so the reader asks it not to: otherwise its own
metadata requests would create the topic, and the race would never happen here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from vidloc.adapters.kafka import BusRecord, EventPublisher, Partition, TopicReader
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

# Generous: the bound under test is "without waiting for the 5-minute metadata refresh".
WAIT_S = 60.0


def test_a_member_subscribed_before_its_topic_exists_reads_it_once_created(
    stack: Settings,
    kafka_admin: KafkaAdminClient,
    unique_name: Callable[[str], str],
    group_id: str,
) -> None:
    topic = unique_name("test-later")
    assignments: list[set[Partition]] = []
    reader = TopicReader.connect(stack, group_id=group_id, allow_auto_create_topics=False)
    created = False
    try:
        reader.subscribe([topic], on_assigned=assignments.append)
        deadline = time.monotonic() + WAIT_S
        while not assignments and time.monotonic() < deadline:
            assert reader.poll(timeout_s=0.2) == []
        # The race of the bridge: a member of the group, with nothing to read yet.
        assert assignments and not set().union(*assignments)
        assert topic not in kafka_admin.list_topics(), "the reader created its topic itself"

        kafka_admin.create_topics(
            [NewTopic(name=topic, num_partitions=2, replication_factor=1)], wait_for_metadata=True
        )
        created = True
        with EventPublisher(stack) as publisher:
            publisher.publish(topic, "k", b"after the topic was created")

        got: list[BusRecord] = []
        deadline = time.monotonic() + WAIT_S
        while not got and time.monotonic() < deadline:
            got = reader.poll(timeout_s=0.5)
        assert [(r.topic, r.key, r.value) for r in got] == [
            (topic, "k", b"after the topic was created")
        ]
        assert assignments[-1] == {Partition(topic, 0), Partition(topic, 1)}
    finally:
        reader.close()
        if created:
            kafka_admin.delete_topics([topic])
