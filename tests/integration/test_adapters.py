"""The Kafka and S3 adapters against the real local stack (Kafka 4, versitygw)."""

from __future__ import annotations

import hashlib
import os
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from vidloc.adapters.kafka import (
    BusRecord,
    EventPublisher,
    Partition,
    Start,
    TopicReader,
    partition_for_key,
)
from vidloc.adapters.object_store import ObjectStore
from vidloc.errors import BusUnavailable, ObjectMissing, ObjectTooLarge, StorageUnavailable
from vidloc.settings import Settings

pytestmark = pytest.mark.integration


def poll_until(stream: TopicReader, want: int, *, timeout_s: float = 30.0) -> list[BusRecord]:
    records: list[BusRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < want and time.monotonic() < deadline:
        records += stream.poll(timeout_s=0.5)
    return records


# -- Kafka ----------------------------------------------------------------------------------


def test_publish_consume_and_commit_resumes_after_the_committed_record(
    stack: Settings, make_topic: Callable[[int], str], group_id: str
) -> None:
    topic, key = make_topic(1), f"video-{uuid.uuid4().hex}"
    publish_all(stack, topic, key, [f"message {n}".encode() for n in range(3)], soon=False)

    with TopicReader.join(stack, group_id, [topic]) as first:
        records = poll_until(first, 3)
        assert [r.value for r in records] == [b"message 0", b"message 1", b"message 2"]
        assert {r.key for r in records} == {key}
        assert [r.offset for r in records] == [0, 1, 2]
        first.commit_past(records[1])  # as if the third had not been finished

    with TopicReader.join(stack, group_id, [topic]) as second:
        again = poll_until(second, 1)
        assert [(r.offset, r.value) for r in again] == [(2, b"message 2")]


def test_publish_soon_returns_before_the_ack_and_keeps_the_order_per_key(
    stack: Settings, make_topic: Callable[[int], str], group_id: str
) -> None:
    topic, key = make_topic(1), f"video-{uuid.uuid4().hex}"
    values = [f"progress {n}".encode() for n in range(20)]
    publish_all(stack, topic, key, values, soon=True)
    with TopicReader.join(stack, group_id, [topic]) as reader:
        assert [r.value for r in poll_until(reader, 20)] == values


def test_partition_for_key_is_where_the_producer_puts_the_key(
    stack: Settings, make_topic: Callable[[int], str], group_id: str
) -> None:
    topic = make_topic(4)
    keys = [f"v-{uuid.uuid4().hex[:24]}" for _ in range(24)]
    with EventPublisher(stack) as publisher:
        for key in keys:
            publisher.publish(topic, key, b"x")
    with TopicReader.join(stack, group_id, [topic]) as reader:
        placed = {r.key: r.partition for r in poll_until(reader, len(keys))}
    assert placed == {key: partition_for_key(key, 4) for key in keys}
    assert len(set(placed.values())) > 1  # the keys did spread: the check compares something


def publish_all(stack: Settings, topic: str, key: str, values: list[bytes], *, soon: bool) -> None:
    """Publish ``values`` in order, each acked (``publish``) or not waited for (flushed after)."""
    with EventPublisher(stack) as publisher:
        for value in values:
            if soon:
                publisher.publish_soon(topic, key, value)
            else:
                publisher.publish(topic, key, value)
        publisher.flush(30)


def test_tail_sees_only_what_is_published_after_it_opens(
    stack: Settings, make_topic: Callable[[int], str]
) -> None:
    topic = make_topic(3)
    with EventPublisher(stack) as publisher:
        for n in range(3):
            publisher.publish(topic, f"before-{n}", b"old")
        with TopicReader.tail(stack, [topic]) as tail:
            for n in range(3):
                publisher.publish(topic, f"after-{n}", b"new")
            records = poll_until(tail, 3, timeout_s=20)
    assert sorted(r.key or "" for r in records) == ["after-0", "after-1", "after-2"]
    assert {r.value for r in records} == {b"new"}


def test_tail_of_a_missing_topic_is_bus_unavailable(stack: Settings) -> None:
    with pytest.raises(BusUnavailable, match="do not exist"):
        TopicReader.tail(stack, [f"no-such-topic-{uuid.uuid4().hex}"], timeout_s=5)


def test_dead_broker_is_bus_unavailable_quickly(stack: Settings) -> None:
    dead = stack.model_copy(update={"kafka_bootstrap": "127.0.0.1:1"})
    started = time.monotonic()
    with pytest.raises(BusUnavailable) as info:
        EventPublisher(dead, bootstrap_timeout_ms=2000)
    assert time.monotonic() - started < 20
    assert "127.0.0.1:1" in str(info.value)
    assert info.value.__cause__ is not None


def test_replay_starts_each_topic_where_asked(
    stack: Settings, make_topic: Callable[[int], str]
) -> None:
    """Beginning, the last N per partition, a point in time: one assign-and-seek for all."""
    whole, recent, timed = make_topic(1), make_topic(1), make_topic(1)
    with EventPublisher(stack) as publisher:
        for n in range(4):
            publisher.publish(whole, "k", f"w{n}".encode())
            publisher.publish(recent, "k", f"r{n}".encode())
            publisher.publish(timed, "k", f"early{n}".encode())
        time.sleep(0.05)  # timestamps are milliseconds: leave a gap before the cut
        cut = datetime.now(UTC)
        time.sleep(0.05)
        publisher.publish(timed, "k", b"late0")
        publisher.publish(timed, "k", b"late1")
    starts = {whole: Start.beginning(), recent: Start.last(2), timed: Start.at_time(cut)}
    with TopicReader.replay(stack, starts) as stream:
        records = poll_until(stream, 8)
    by_topic = {t: [r.value for r in records if r.topic == t] for t in starts}
    assert by_topic == {
        whole: [b"w0", b"w1", b"w2", b"w3"],
        recent: [b"r2", b"r3"],
        timed: [b"late0", b"late1"],
    }


def test_group_member_pauses_seeks_and_commits_partition_offsets(
    stack: Settings, make_topic: Callable[[int], str], group_id: str
) -> None:
    """The worker's calls: assignment callback, pause/resume, seek back, explicit commit."""
    topic = make_topic(2)
    with EventPublisher(stack) as publisher:
        for n in range(4):
            publisher.publish(topic, f"key-{n}", f"m{n}".encode())
    assigned: list[set[Partition]] = []
    with TopicReader.connect(stack, group_id=group_id, max_poll_records=10) as stream:
        stream.subscribe([topic], on_assigned=assigned.append)
        records = poll_until(stream, 4)
        assert assigned and assigned[-1] == stream.assignment()
        assert stream.assignment() == {Partition(topic, 0), Partition(topic, 1)}
        stream.pause_all()
        first = min(records, key=lambda r: (r.partition, r.offset))
        assert stream.seek(first.where, first.offset)
        assert stream.poll(timeout_s=1.0) == []  # paused: nothing fetched
        stream.resume_all()
        again = poll_until(stream, 1)
        assert (again[0].where, again[0].offset) == (first.where, first.offset)
        ends, positions = stream.lag_inputs()
        assert set(ends) == set(positions) == stream.assignment()
        stream.commit({part: end for part, end in ends.items()})
    with TopicReader.join(stack, group_id, [topic]) as rejoined:
        assert rejoined.poll(timeout_s=3.0) == []  # everything was committed


def test_seeking_a_partition_not_owned_says_so(
    stack: Settings, make_topic: Callable[[int], str]
) -> None:
    topic = make_topic(1)
    with TopicReader.tail(stack, [topic]) as tail:
        assert not tail.seek(Partition(topic, 7), 0)


# -- S3 -------------------------------------------------------------------------------------


@pytest.fixture
def store(stack: Settings) -> ObjectStore:
    return ObjectStore(stack)


@pytest.fixture
def prefix(store: ObjectStore, stack: Settings) -> Iterator[str]:
    """A key prefix unique to the test, emptied afterwards (in the timeline bucket, which the
    bridge does not watch, so these objects never become ingest events)."""
    value = f"test-adapters/{uuid.uuid4().hex}/"
    yield value
    for key in list(store.list_keys(stack.timeline_bucket, value)):
        store.delete(stack.timeline_bucket, key)


def test_put_get_stat_list_delete(store: ObjectStore, stack: Settings, prefix: str) -> None:
    bucket = stack.timeline_bucket
    data = b'{"hello": "w\xc3\xb6rld"}'
    key = f"{prefix}dir with space/ü.json"
    put = store.put_bytes(bucket, key, data)
    assert put.etag == hashlib.md5(data).hexdigest()
    assert store.get_bytes(bucket, key) == data
    info = store.stat(bucket, key)
    assert (info.size, info.etag, info.content_type) == (len(data), put.etag, "application/json")
    assert store.exists(bucket, key)
    store.put_bytes(bucket, f"{prefix}other.json", b"{}")
    assert sorted(store.list_keys(bucket, prefix)) == [
        f"{prefix}dir with space/ü.json",
        f"{prefix}other.json",
    ]
    store.delete(bucket, key)
    assert not store.exists(bucket, key)
    store.delete(bucket, key)  # deleting what is gone is fine, as in S3


def test_missing_objects_are_object_missing(
    store: ObjectStore, stack: Settings, prefix: str, tmp_path: Path
) -> None:
    bucket = stack.timeline_bucket
    with pytest.raises(ObjectMissing):
        store.stat(bucket, f"{prefix}nope.mp4")
    with pytest.raises(ObjectMissing):
        store.get_bytes(bucket, f"{prefix}nope.mp4")
    with pytest.raises(ObjectMissing):
        store.download(bucket, f"{prefix}nope.mp4", tmp_path / "x", max_bytes=10)
    with pytest.raises(ObjectMissing):
        store.stat(f"no-such-bucket-{uuid.uuid4().hex[:8]}", "x")
    assert not (tmp_path / "x").exists()


def test_download_checks_etag_and_size(
    store: ObjectStore, stack: Settings, prefix: str, tmp_path: Path
) -> None:
    bucket = stack.timeline_bucket
    data = os.urandom(300_000)
    key = f"{prefix}clip.bin"
    put = store.put_bytes(bucket, key, data, content_type="application/octet-stream")
    dest = tmp_path / "sub" / "clip.bin"

    info = store.download(bucket, key, dest, max_bytes=len(data), expected_etag=f'"{put.etag}"')
    assert dest.read_bytes() == data
    assert info.etag == put.etag

    with pytest.raises(ObjectMissing, match="replaced"):
        store.download(bucket, key, tmp_path / "b", max_bytes=10**9, expected_etag="0" * 32)
    with pytest.raises(ObjectTooLarge, match="300000 bytes"):
        store.download(bucket, key, tmp_path / "c", max_bytes=len(data) - 1)
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
    assert list(tmp_path.glob("*.part")) == []


def test_multipart_upload_roundtrip(
    store: ObjectStore, stack: Settings, prefix: str, tmp_path: Path
) -> None:
    bucket = stack.timeline_bucket
    source = tmp_path / "big.bin"
    data = os.urandom(11 * 1024 * 1024)
    source.write_bytes(data)
    seen: list[int] = []
    key = f"{prefix}big.bin"
    info = store.upload_file(
        bucket, key, source, progress=seen.append, part_size=5 * 1024 * 1024, metadata={"a": "b"}
    )
    assert info.etag.endswith("-3")  # S3's multipart etag: md5 of part md5s, dash, part count
    assert sum(seen) == len(data)
    stat = store.stat(bucket, key)
    assert (stat.size, stat.etag, stat.metadata.get("a")) == (len(data), info.etag, "b")
    back = tmp_path / "back.bin"
    store.download(bucket, key, back, max_bytes=len(data), expected_etag=info.etag)
    assert back.read_bytes() == data


def test_presigned_url_serves_the_object(store: ObjectStore, stack: Settings, prefix: str) -> None:
    key = f"{prefix}p.json"
    store.put_bytes(stack.timeline_bucket, key, b'{"p": 1}')
    url = store.presigned_get_url(stack.timeline_bucket, key, expires_s=60)
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b'{"p": 1}'


def test_bad_credentials_are_storage_unavailable_without_the_secret(stack: Settings) -> None:
    secret = "not-the-right-secret-" + uuid.uuid4().hex
    wrong = ObjectStore(stack.model_copy(update={"s3_secret_key": SecretStr(secret)}))
    with pytest.raises(StorageUnavailable) as info:
        wrong.stat(stack.timeline_bucket, "anything")
    assert secret not in str(info.value)
    assert stack.s3_secret_key.get_secret_value() not in str(info.value)


def test_dead_store_fails_fast(stack: Settings) -> None:
    dead = ObjectStore(
        stack.model_copy(update={"s3_endpoint": "http://127.0.0.1:1"}), connect_timeout_s=1
    )
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match=r"127\.0\.0\.1:1"):
        dead.stat("videos", "x.mp4")
    assert time.monotonic() - started < 15
