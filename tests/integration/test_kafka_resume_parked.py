"""A partition paused with fetched records in hand is read again once resumed (real Kafka).

The worker loop pauses the span topic at its cap while it keeps reading the others. kafka-python
3.0 parks the records it had fetched for a paused partition and, once other partitions' records
went through, never puts them back nor fetches the partition again: the third span order on one
partition never ran, and a 2-hour video in 26 spans finished 20 of them. TopicReader.resume_all
releases what is parked (vidloc.adapters.kafka.reader.release_parked).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from vidloc.adapters.kafka.reader import release_parked

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[str]:
    name = f"test-parked-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(name, 2, 1)])
    try:
        yield name
    finally:
        admin.delete_topics([name])
        admin.close()


def _take(consumer: KafkaConsumer, into: list[bytes], seconds: float, most: int | None) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and (most is None or len(into) < most):
        for messages in consumer.poll(timeout_ms=200, max_records=1).values():
            into.extend(m.value for m in messages)


def test_a_partition_paused_with_records_in_hand_is_read_after_resume(
    kafka_bootstrap: str, topic: str
) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for i in range(3):
        producer.send(topic, f"order-{i}".encode(), partition=0)
    producer.flush()
    consumer = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        group_id=topic,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        consumer.subscribe([topic])
        got: list[bytes] = []
        _take(consumer, got, 20.0, 1)  # one record at a time, as the loop asks at a cap
        assert got == [b"order-0"]
        orders = TopicPartition(topic, 0)
        consumer.pause(orders)  # at the cap: order-0 runs, orders 1 and 2 are in hand
        producer.send(topic, b"other", partition=1)  # the other topics keep being read
        producer.flush()
        _take(consumer, got, 3.0, None)
        assert got == [b"order-0", b"other"]
        consumer.resume(orders)
        release_parked(consumer)
        _take(consumer, got, 15.0, 4)
        assert got == [b"order-0", b"other", b"order-1", b"order-2"]
    finally:
        consumer.close()
        producer.close()
