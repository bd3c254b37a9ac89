"""Fixtures for tests that run against the real local stack (Kafka on 9092, versitygw on 9000).

Nothing here skips: if the stack does not answer, every test that needs it fails with a message
telling how to start it, so a broken stack can never turn CI green by skipping.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError
from minio import Minio

from devkit.stack import s3 as stack_s3
from devkit.stack.processes import port_open
from vidloc.settings import Settings, load_settings

_HOW_TO_START = "start it with `make up` (or `python -m devkit.stack up`), or run `make test`"


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    """Fails (never skips) when Kafka or S3 of the local stack cannot be reached."""
    host, _, port = settings.kafka_bootstrap.split(",")[0].rpartition(":")
    if not port_open(host or "127.0.0.1", int(port), timeout_s=2.0):
        pytest.fail(f"Kafka is not reachable at {settings.kafka_bootstrap}: {_HOW_TO_START}")
    s3_url = urlsplit(settings.s3_endpoint)
    if not port_open(s3_url.hostname or "127.0.0.1", s3_url.port or 80, timeout_s=2.0):
        pytest.fail(f"S3 is not reachable at {settings.s3_endpoint}: {_HOW_TO_START}")
    return settings


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: Settings) -> str:
    return stack.kafka_bootstrap


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> Iterator[KafkaAdminClient]:
    try:
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="vidloc-tests")
    except KafkaError as exc:
        pytest.fail(f"Kafka at {kafka_bootstrap} does not answer ({exc}): {_HOW_TO_START}")
    yield admin
    admin.close()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``unique_name("group")`` -> a Kafka/S3-safe name unique to this test and call."""

    def make(prefix: str) -> str:
        test = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
        return f"{prefix}-{test}-{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture
def group_id(unique_name: Callable[[str], str]) -> str:
    """A consumer group nobody else uses, so tests never steal each other's partitions."""
    return unique_name("test-group")


@pytest.fixture
def make_topic(
    kafka_admin: KafkaAdminClient, unique_name: Callable[[str], str]
) -> Iterator[Callable[[int], str]]:
    """``make_topic(partitions)`` -> the name of a fresh topic, deleted after the test."""
    created: list[str] = []

    def make(partitions: int = 4) -> str:
        name = unique_name("test-topic")
        kafka_admin.create_topics(
            [NewTopic(name=name, num_partitions=partitions, replication_factor=1)],
            wait_for_metadata=True,
        )
        created.append(name)
        return name

    yield make
    if created:
        kafka_admin.delete_topics(created)


@pytest.fixture(scope="session")
def minio_client(stack: Settings) -> Minio:
    return stack_s3.client(stack)


@pytest.fixture(scope="module")
def fake_vlm() -> Iterator[str]:
    """The fake OpenAI-compatible model server on a real socket: its base URL (``.../v1``)."""
    from devkit.fake_vlm.server import serve_in_thread

    base_url, stop = serve_in_thread()
    yield base_url
    stop()
