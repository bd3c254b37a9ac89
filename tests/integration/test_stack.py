"""The local stack does what the rest of vidloc relies on: topics, groups, objects, S3 events."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from minio import Minio

from devkit.stack import kafka as stack_kafka
from devkit.stack import stack_command
from devkit.stack.layout import StackLayout
from devkit.stack.processes import owns, read_cmdline, read_pid, spawn_detached, stop
from vidloc import names
from vidloc.adapters.kafka.admin import topic_partitions
from vidloc.settings import Settings

pytestmark = pytest.mark.integration


def _tail_consumer(bootstrap: str, topic: str) -> KafkaConsumer:
    """A group-less consumer on every partition of ``topic``, positioned at the current end."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = consumer.partitions_for_topic(topic)
    assert partitions, f"topic {topic} does not exist"
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    consumer.seek_to_end(*tps)
    for tp in tps:
        consumer.position(tp)  # resolve "end" now, before anything is produced
    return consumer


def _poll_until(
    consumer: KafkaConsumer, match: Callable[[bytes | None, bytes], bool], timeout_s: float
) -> tuple[bytes | None, bytes]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                if match(record.key, record.value):
                    return record.key, record.value
    raise AssertionError(f"no matching record within {timeout_s} s")


@pytest.mark.parametrize("topic", names.ALL_TOPICS)
def test_each_vidloc_topic_carries_a_message(kafka_bootstrap: str, topic: str) -> None:
    consumer = _tail_consumer(kafka_bootstrap, topic)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        key = f"stack-probe-{uuid.uuid4().hex}".encode()
        # Marked as a probe so a bridge or worker reading the shared topic can tell it apart.
        value = json.dumps({"probe": "vidloc-stack-test", "key": key.decode()}).encode()
        producer.send(topic, key=key, value=value).get(timeout=30)
        _, got_value = _poll_until(consumer, lambda k, _v: k == key, 30)
        assert json.loads(got_value) == json.loads(value)
    finally:
        producer.close()
        consumer.close()


def test_stack_created_topics_with_configured_partitions(
    kafka_bootstrap: str, settings: Settings
) -> None:
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    try:
        for topic, count in topic_partitions(settings).items():
            assert consumer.partitions_for_topic(topic) == set(range(count)), topic
    finally:
        consumer.close()


def test_two_group_members_split_the_ingest_partitions(
    kafka_bootstrap: str, settings: Settings, group_id: str
) -> None:
    members = [
        KafkaConsumer(
            bootstrap_servers=kafka_bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="latest",
        )
        for _ in range(2)
    ]
    try:
        for member in members:
            member.subscribe([names.TOPIC_INGEST])
        everything = {
            TopicPartition(names.TOPIC_INGEST, p) for p in range(settings.ingest_partitions)
        }
        deadline = time.monotonic() + 45
        assigned: list[set[TopicPartition]] = [set(), set()]
        # Both members must keep polling: a rebalance only completes when each rejoins.
        while time.monotonic() < deadline:
            for member in members:
                member.poll(timeout_ms=200)
            assigned = [set(m.assignment()) for m in members]
            if all(assigned) and assigned[0] | assigned[1] == everything:
                break
        assert assigned[0], "first member got no partitions"
        assert assigned[1], "second member got no partitions"
        assert not assigned[0] & assigned[1], "a partition was assigned to both members"
        assert assigned[0] | assigned[1] == everything
    finally:
        for member in members:
            member.close()


def test_objects_round_trip(minio_client: Minio, settings: Settings) -> None:
    data = b"vidloc stack object " + uuid.uuid4().bytes
    for bucket in (settings.video_bucket, settings.timeline_bucket):
        key = f"stack-test/{uuid.uuid4().hex}.bin"
        put = minio_client.put_object(bucket, key, io.BytesIO(data), len(data))
        try:
            response = minio_client.get_object(bucket, key)
            try:
                assert response.read() == data
            finally:
                response.close()
                response.release_conn()
            stat = minio_client.stat_object(bucket, key)
            assert stat.size == len(data)
            assert stat.etag == put.etag
        finally:
            minio_client.remove_object(bucket, key)


def test_put_object_arrives_on_s3_events(
    kafka_bootstrap: str, minio_client: Minio, settings: Settings
) -> None:
    consumer = _tail_consumer(kafka_bootstrap, names.TOPIC_S3_EVENTS)
    # Not a video extension, so a bridge listening on the shared topic ignores it.
    key = f"stack-test/{uuid.uuid4().hex}.bin"
    data = b"x" * 1234
    try:
        put = minio_client.put_object(settings.video_bucket, key, io.BytesIO(data), len(data))

        def is_ours(_key: bytes | None, value: bytes) -> bool:
            try:
                records = json.loads(value).get("Records") or []
            except (ValueError, AttributeError):
                return False  # test events and other probes share the topic
            return any(r.get("s3", {}).get("object", {}).get("key") == key for r in records)

        _, value = _poll_until(consumer, is_ours, 30)
        record = json.loads(value)["Records"][0]
        assert record["eventName"].startswith("s3:ObjectCreated:")
        assert record["s3"]["bucket"]["name"] == settings.video_bucket
        assert record["s3"]["object"]["size"] == len(data)
        # versitygw sends the HTTP ETag, quotes included.
        assert record["s3"]["object"]["eTag"].strip('"') == put.etag
    finally:
        consumer.close()
        minio_client.remove_object(settings.video_bucket, key)


def test_up_when_already_up_is_a_quick_no_op(
    stack: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = StackLayout.from_settings(stack)
    before = {c: read_pid(layout.pid_file(c)) for c in ("kafka", "s3")}
    assert all(before.values()), (
        f"no pid files in {layout.pids_dir}: this test needs the stack started from this checkout"
    )
    started = time.monotonic()
    assert stack_command("up", stack) == 0
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    assert out.count("already running") == 2, out
    assert "started pid" not in out
    assert {c: read_pid(layout.pid_file(c)) for c in ("kafka", "s3")} == before
    assert elapsed < 10, f"a no-op up took {elapsed:.1f} s"


def test_down_never_stops_a_process_it_did_not_start(stack: Settings) -> None:
    layout = StackLayout.from_settings(stack)
    stranger = spawn_detached(["sleep", "60"], layout.logs_dir / "stranger-test.log")
    try:
        # Right after the spawn the child may still be exec'ing (an empty command line): wait
        # until it is the stranger it is meant to be.
        deadline = time.monotonic() + 5
        while read_cmdline(stranger) != "sleep 60" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert read_cmdline(stranger) == "sleep 60"
        assert not owns(stranger, stack_kafka.markers(layout))
        assert stop(stranger, stack_kafka.markers(layout), grace_s=1) is False
        assert read_cmdline(stranger) is not None, "stop() killed a process without the markers"
    finally:
        stop(stranger, ("sleep", "60"), grace_s=5)
        (layout.logs_dir / "stranger-test.log").unlink(missing_ok=True)
    assert read_cmdline(stranger) is None
