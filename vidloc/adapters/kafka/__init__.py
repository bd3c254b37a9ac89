"""The one Kafka adapter (kafka-python 3.x): the only place in the product that imports it.

- :func:`kafka_config`: connection and security options shared by every client;
- :class:`EventPublisher`: the producer side, one acked message at a time;
- :class:`TransactionalPublisher`: records and consumed offsets in one transaction (workers);
- :class:`TopicReader`: the consumer side, one loop abstraction for group members (worker,
  bridge) and group-less readers (API feed, ``vidloc watch``, the submit follower).

Every kafka-python error that escapes is :class:`vidloc.errors.BusUnavailable`
(``raise ... from exc``), so callers handle one type.
"""

from vidloc.adapters.kafka.config import kafka_config
from vidloc.adapters.kafka.publisher import EventPublisher, partition_for_key
from vidloc.adapters.kafka.reader import TopicReader, park_group_at_end
from vidloc.adapters.kafka.records import AssignmentCallback, BusRecord, Partition, Start
from vidloc.adapters.kafka.transactions import OutRecord, TransactionalPublisher

__all__ = [
    "AssignmentCallback",
    "BusRecord",
    "EventPublisher",
    "OutRecord",
    "Partition",
    "Start",
    "TopicReader",
    "TransactionalPublisher",
    "kafka_config",
    "park_group_at_end",
    "partition_for_key",
]
