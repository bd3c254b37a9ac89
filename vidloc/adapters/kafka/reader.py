"""The one consumer loop abstraction: a :class:`TopicReader` yields plain :class:`BusRecord`s.

Two ways to read, both written once here:

- as a member of a consumer group (:meth:`TopicReader.join`, or :meth:`TopicReader.connect`
  then :meth:`~TopicReader.subscribe` with assignment callbacks): the worker and the bridge,
  which commit explicitly with ``{Partition: next offset}``;
- group-less, every partition of some topics assigned and each topic positioned at its
  beginning, its end, its last N records or a point in time (:meth:`TopicReader.replay`,
  :meth:`TopicReader.tail`): the API feed, ``vidloc watch`` and the submit follower.

Every kafka-python error is turned into :class:`vidloc.errors.BusUnavailable` here, so callers
handle one type. kafka-python's consumer is not thread-safe: one thread owns a reader.

A group member may subscribe before its topic exists (a deployment's bridge can start before
its init has created ``s3.events``): it joins with nothing assigned and starts consuming within
seconds of the topic's creation, with no restart. kafka-python 3 does this itself: while
a subscribed topic is unknown to the cluster (``UNKNOWN_TOPIC_OR_PARTITION``, a retriable
error) it asks for metadata again every 100 ms (its ``retry_backoff_ms``) instead of waiting
``metadata_max_age_ms`` (5 minutes), and the group leader rebalances once the topic's partitions
appear (docs/delivery.md, "A reader started before its topic";
tests/integration/test_kafka_topic_later.py). :meth:`TopicReader.replay` and
:meth:`TopicReader.tail` assign partitions instead, so a topic the cluster does not know then is
an error (BusUnavailable).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from vidloc.adapters.kafka.config import (
    ClosedOnExit,
    construct,
    describe,
    kafka_config,
    require_listener,
)
from vidloc.adapters.kafka.records import AssignmentCallback, BusRecord, Partition, Start
from vidloc.errors import BusUnavailable
from vidloc.settings import Settings

log = logging.getLogger(__name__)


def _partition(tp: Any) -> Partition:
    return Partition(tp.topic, tp.partition)


def _tp(part: Partition) -> TopicPartition:
    return TopicPartition(part.topic, part.partition)


class _Listener(ConsumerRebalanceListener):
    """Hands kafka-python's rebalance callbacks (run inside ``poll``) on as plain values.

    Partitions *lost* (the session expired: the group already gave them to another member)
    go to ``on_lost``, not ``on_revoked``: kafka-python 3's default sends them to
    ``on_partitions_revoked``, and calls it before it clears the assignment, so a listener
    could not tell them from a revocation it may still commit for.
    """

    def __init__(
        self,
        on_assigned: AssignmentCallback | None,
        on_revoked: AssignmentCallback | None,
        on_lost: AssignmentCallback | None = None,
    ) -> None:
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._on_lost = on_lost

    def on_partitions_lost(self, lost: Any) -> None:
        parts = {_partition(tp) for tp in lost}
        log.warning("partitions lost (this member was evicted): %s", sorted(map(str, parts)))
        callback = self._on_lost or self._on_revoked
        if callback is not None:
            callback(parts)

    def on_partitions_revoked(self, revoked: Any) -> None:
        parts = {_partition(tp) for tp in revoked}
        log.info("partitions revoked: %s", sorted(str(p) for p in parts))
        if self._on_revoked is not None:
            self._on_revoked(parts)

    def on_partitions_assigned(self, assigned: Any) -> None:
        parts = {_partition(tp) for tp in assigned}
        log.info("partitions assigned: %s", sorted(str(p) for p in parts))
        if self._on_assigned is not None:
            self._on_assigned(parts)


class TopicReader(ClosedOnExit):
    """A Kafka consumer with manual commits, speaking plain values and vidloc errors."""

    def __init__(self, consumer: Any, *, where: str = "Kafka") -> None:
        # ``consumer`` is a KafkaConsumer; injectable so the error mapping is tested without one.
        self._consumer = consumer
        self._where = where

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def connect(
        cls, settings: Settings, *, group_id: str | None = None, **overrides: Any
    ) -> TopicReader:
        """A consumer that reads nothing yet: :meth:`subscribe` it, or ask it for metadata."""
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
            # Workers publish results in transactions (vidloc/adapters/kafka/transactions.py):
            # a reader sees a result only once its input offset is committed, never an aborted
            # one. Harmless on topics nobody writes transactionally.
            isolation_level="read_committed",
            fetch_max_bytes=max(settings.max_message_bytes * 2, 1_048_576),
            max_partition_fetch_bytes=max(settings.max_message_bytes, 1_048_576),
        )
        config.update(overrides)
        require_listener(settings)
        try:
            consumer = construct(KafkaConsumer, config)
        except KafkaError as exc:
            raise BusUnavailable(
                f"cannot create a consumer on {describe(settings)}: {exc}"
            ) from exc
        if "allow_auto_create_topics" in config:
            pass_auto_create(consumer, bool(config["allow_auto_create_topics"]))
        return cls(consumer, where=describe(settings))

    @classmethod
    def join(
        cls, settings: Settings, group_id: str, topics: Sequence[str], **overrides: Any
    ) -> TopicReader:
        """A member of ``group_id`` consuming ``topics`` from the group's committed offsets."""
        stream = cls.connect(settings, group_id=group_id, **overrides)
        try:
            stream.subscribe(topics)
        except BusUnavailable:
            stream.close()
            raise
        return stream

    @classmethod
    def replay(
        cls,
        settings: Settings,
        starts: Mapping[str, Start],
        *,
        group_id: str | None = None,
        timeout_s: float = 15.0,
        **overrides: Any,
    ) -> TopicReader:
        """Every partition of each topic in ``starts`` assigned and positioned as it says.

        Positions are looked up before returning, so a record published after this call is
        seen even with :meth:`Start.end`: open the stream *before* triggering the work whose
        outputs you wait for.
        """
        overrides.setdefault("max_poll_records", 500)
        stream = cls.connect(settings, group_id=group_id, **overrides)
        try:
            stream._assign_all(starts, timeout_s)
        except BaseException:
            stream.close()
            raise
        return stream

    @classmethod
    def tail(
        cls, settings: Settings, topics: Sequence[str], *, timeout_s: float = 15.0
    ) -> TopicReader:
        """Only what ``topics`` receive after this call."""
        return cls.replay(
            settings,
            {topic: Start.end() for topic in topics},
            timeout_s=timeout_s,
            auto_offset_reset="latest",
        )

    def _assign_all(self, starts: Mapping[str, Start], timeout_s: float) -> None:
        timeout_ms = int(timeout_s * 1000)
        c = self._consumer
        try:
            # partitions_for_topic() answers None for a topic the broker does not know.
            parts = {
                topic: [
                    TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())
                ]
                for topic in starts
            }
            missing = [topic for topic, tps in parts.items() if not tps]
            if missing:
                raise BusUnavailable(f"topics {missing} do not exist on {self._where}")
            c.assign([tp for tps in parts.values() for tp in tps])
            for topic, start in starts.items():
                self._seek_all(parts[topic], start, timeout_ms)
            for tps in parts.values():
                for tp in tps:  # resolve lazy seeks now, before the caller publishes anything
                    c.position(tp, timeout_ms=timeout_ms)
        except KafkaError as exc:
            raise BusUnavailable(
                f"cannot read {sorted(starts)} on {self._where}: {type(exc).__name__}: {exc}"
            ) from exc

    def _seek_all(self, tps: list[TopicPartition], start: Start, timeout_ms: int) -> None:
        c = self._consumer
        if start.kind == "beginning":
            c.seek_to_beginning(*tps)
        elif start.kind == "end":
            c.seek_to_end(*tps)
        elif start.kind == "last":
            firsts = c.beginning_offsets(tps, timeout_ms=timeout_ms)
            ends = c.end_offsets(tps, timeout_ms=timeout_ms)
            for tp in tps:
                c.seek(tp, max(firsts[tp], ends[tp] - start.last_n))
        else:
            assert start.at is not None
            stamp_ms = int(start.at.timestamp() * 1000)
            found = c.offsets_for_times({tp: stamp_ms for tp in tps}, timeout_ms=timeout_ms)
            for tp in tps:
                hit = found.get(tp)
                if hit is None:
                    c.seek_to_end(tp)
                else:
                    c.seek(tp, hit.offset)

    def subscribe(
        self,
        topics: Sequence[str],
        *,
        on_assigned: AssignmentCallback | None = None,
        on_revoked: AssignmentCallback | None = None,
        on_lost: AssignmentCallback | None = None,
    ) -> None:
        """Join the group on ``topics``; the callbacks run while :meth:`poll` waits, on
        kafka-python's event loop (so they must not call the consumer's blocking methods).

        ``on_lost`` (default: ``on_revoked``) gets partitions this member lost by eviction:
        another member owns them already, so nothing of theirs may be committed from here.
        """
        listener = _Listener(on_assigned, on_revoked, on_lost)
        try:
            self._consumer.subscribe(list(topics), listener=listener)
        except KafkaError as exc:
            raise BusUnavailable(f"cannot subscribe to {list(topics)}: {exc}") from exc

    # -- reading -------------------------------------------------------------------------

    def poll(self, *, timeout_s: float, max_records: int | None = None) -> list[BusRecord]:
        """Fetched records in partition order (empty when nothing arrived within ``timeout_s``).

        Also keeps a group member alive: call it regularly even with every partition paused.
        """
        try:
            batch = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
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

    # -- positions -----------------------------------------------------------------------

    def commit(self, offsets: Mapping[Partition, int]) -> None:
        """Commit the next offset to read per partition: call only once outputs are acked.

        Raises BusUnavailable (code ``commit_rejected`` when a rebalance gave a partition to
        another member, which then replays from the last commit).
        """
        if not offsets:
            return
        request = {_tp(part): OffsetAndMetadata(offset, "", -1) for part, offset in offsets.items()}
        try:
            self._consumer.commit(request)
        except CommitFailedError as exc:
            raise BusUnavailable(
                f"commit of {_describe_offsets(offsets)} refused after a rebalance: {exc}",
                code="commit_rejected",
            ) from exc
        except KafkaError as exc:
            raise BusUnavailable(
                f"commit of {_describe_offsets(offsets)} failed: {type(exc).__name__}: {exc}"
            ) from exc

    def commit_past(self, record: BusRecord) -> None:
        """Commit past ``record`` (offset + 1)."""
        self.commit({record.where: record.offset + 1})

    def committed(
        self, parts: Collection[Partition], *, timeout_s: float = 10.0
    ) -> dict[Partition, int | None]:
        """The group's committed offset (next to read) per partition, None where none is.

        A read_committed consumer asks with ``require_stable``: the broker answers only once
        no transaction holding offsets of these partitions is pending, so the answer is final.
        """
        out: dict[Partition, int | None] = {}
        try:
            for part in parts:
                offset = self._consumer.committed(_tp(part), timeout_ms=int(timeout_s * 1000))
                out[part] = offset if offset is not None and offset >= 0 else None
        except KafkaError as exc:
            raise BusUnavailable(
                f"cannot read committed offsets on {self._where}: {type(exc).__name__}: {exc}"
            ) from exc
        return out

    def group_metadata(self) -> object:
        """This member's group id, member id and generation, for a producer transaction
        (:meth:`TransactionalPublisher.commit`): the broker refuses offsets a stale member
        commits (KIP-447). Opaque to callers.

        Raises BusUnavailable (``commit_rejected``) while this member has no generation (it was
        evicted and :meth:`poll` has not yet reported the partitions lost, or it is rejoining):
        the broker does not fence offsets sent without a member id and generation, so a commit
        then could land on partitions another member owns.
        """
        metadata = self._consumer.group_metadata()
        generation = getattr(metadata, "generation_id", None)
        member = getattr(metadata, "member_id", None)
        if generation is not None and (generation < 0 or not member):
            raise BusUnavailable(
                "not a member of the group now (evicted, or rejoining): nothing is committed"
                " until the next poll has settled the membership",
                code="commit_rejected",
            )
        return metadata

    def seek(self, part: Partition, offset: int) -> bool:
        """Make the next poll of ``part`` start at ``offset``; False when it is no longer ours.

        kafka-python refuses once a rebalance took the partition away; its new owner resumes
        from the last commit anyway.
        """
        try:
            self._consumer.seek(_tp(part), offset)
        except (KafkaError, ValueError, AssertionError) as exc:
            log.info("cannot seek %s to %d: %s", part, offset, exc)
            return False
        return True

    def rewind(self, records: Iterable[BusRecord]) -> None:
        """Make the next poll return these records again (after a transient failure)."""
        first: dict[Partition, int] = {}
        for record in records:
            first.setdefault(record.where, record.offset)
        for part, offset in first.items():
            self.seek(part, offset)

    def assignment(self) -> set[Partition]:
        return {_partition(tp) for tp in self._consumer.assignment()}

    def pause(self, parts: Collection[Partition]) -> None:
        """Stop fetching from ``parts`` while :meth:`poll` keeps the membership alive."""
        if parts:
            self._consumer.pause(*(_tp(p) for p in parts))

    def pause_all(self) -> None:
        self.pause(self.assignment())

    def resume_all(self) -> None:
        paused = self._consumer.paused()
        if paused:
            self._consumer.resume(*paused)
            release_parked(self._consumer)

    def lag_inputs(
        self, *, timeout_s: float = 2.0
    ) -> tuple[dict[Partition, int], dict[Partition, int | None]]:
        """End offsets and current positions of the assigned partitions (for lag metrics)."""
        timeout_ms = int(timeout_s * 1000)
        assigned = list(self._consumer.assignment())
        try:
            ends = self._consumer.end_offsets(assigned, timeout_ms=timeout_ms) if assigned else {}
            positions = {tp: self._consumer.position(tp, timeout_ms=timeout_ms) for tp in assigned}
        except KafkaError as exc:
            raise BusUnavailable(f"cannot read offsets on {self._where}: {exc}") from exc
        return (
            {_partition(tp): end for tp, end in ends.items()},
            {_partition(tp): pos for tp, pos in positions.items()},
        )

    def topics(self) -> set[str]:
        """The topics the cluster knows (a real metadata round trip)."""
        try:
            return set(self._consumer.topics())
        except Exception as exc:  # kafka-python raises several unrelated types here
            raise BusUnavailable(f"Kafka metadata request failed: {exc}") from exc

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Leave the group (if any) without committing anything not committed explicitly."""
        try:
            # Bounded: leaving the group during an outage must not hold up a stop.
            self._consumer.close(autocommit=False, timeout_ms=10_000)
        except KafkaError as exc:
            log.warning("closing a Kafka consumer failed: %s", exc)


def _describe_offsets(offsets: Mapping[Partition, int]) -> str:
    return ", ".join(f"{part}@{offset}" for part, offset in sorted(offsets.items()))


def park_group_at_end(settings: Settings, group_id: str, topic: str) -> None:
    """Commit ``topic``'s current end offsets for ``group_id``: it starts with what comes next.

    For groups that must not replay history, e.g. a demo or a test on a long-lived stack.
    """
    with TopicReader.replay(settings, {topic: Start.end()}, group_id=group_id) as stream:
        _, positions = stream.lag_inputs(timeout_s=15.0)
        stream.commit({part: pos for part, pos in positions.items() if pos is not None})


def pass_auto_create(consumer: Any, allowed: bool) -> None:
    """Make the consumer's metadata requests carry its ``allow_auto_create_topics``.

    kafka-python 3.0.12 builds a consumer's cluster metadata without that setting, so every
    metadata request asks the broker to create the topics it names (with the broker's default
    partition count) however the consumer was configured. Nothing has named a topic yet when this
    runs: the bootstrap asks for no topics.
    """
    cluster = getattr(getattr(consumer, "_client", None), "cluster", None)
    config = getattr(cluster, "config", None)
    if isinstance(config, dict) and "allow_auto_create_topics" in config:
        config["allow_auto_create_topics"] = allowed


def release_parked(consumer: KafkaConsumer) -> int:
    """Make resumed partitions fetchable again; returns how many were stuck.

    kafka-python 3.0 parks the records it had fetched for a partition that is paused before
    they were returned, and puts them back in line only on a poll that starts with no other
    partition's records in line; until then the partition is left out of every fetch. The worker
    loop pauses a topic at its cap while it keeps reading the others, so that poll never came:
    the third span order on one partition (and a video's reports) waited forever (a 2-hour video
    in 26 spans finished 20). Parked records were never returned, so the partition's position
    is still at the first of them: dropping them makes the next fetch read them again.
    """
    fetcher = getattr(consumer, "_fetcher", None)
    parked = getattr(fetcher, "_paused_partition_records", None)
    if not parked:
        return 0
    paused = consumer.paused()
    released = 0
    for tp in [tp for tp in parked if tp not in paused]:
        parked.pop(tp).drain()
        released += 1
    if released:
        log.debug("released %d parked partitions after resume", released)
    return released
