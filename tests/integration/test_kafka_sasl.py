"""The Kafka adapter's SASL/PLAIN path against a real broker, not only its client config.

A Kafka of this module's own (ports 39092/39093, SASL_PLAINTEXT clients on 39094, its own stack
dir, the shared jar cache) accepts one user. With the right password a message goes through
EventPublisher and a TopicReader; with a wrong one both fail with BusUnavailable in
bounded time, and the password shows up in no exception and in no log record that vidloc's
logging set-up lets through.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from pipeline import own_stack
from pydantic import SecretStr

from vidloc.adapters.kafka import EventPublisher, TopicReader
from vidloc.errors import BusUnavailable
from vidloc.logs import RedactSecrets
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

KAFKA_PORT, CONTROLLER_PORT, SASL_PORT = 39092, 39093, 39094
USER = "vidloc-sasl-test"
# A wrong password must fail within this (the adapter's bootstrap timeout is 10 s).
REFUSAL_BOUND_S = 30.0


@pytest.fixture(scope="module")
def sasl_broker(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The broker's settings: plaintext bootstrap for admin work, the SASL user configured."""
    with own_stack(
        settings,
        tmp_path_factory.mktemp("sasl-stack"),
        kafka_port=KAFKA_PORT,
        controller_port=CONTROLLER_PORT,
        stack_kafka_sasl_port=SASL_PORT,
        kafka_security_protocol="PLAINTEXT",
        kafka_sasl_username=USER,
        kafka_sasl_password=SecretStr(f"right-{uuid.uuid4().hex}"),
    ) as broker:
        yield broker


def sasl_client(broker: Settings, password: str) -> Settings:
    return broker.model_copy(
        update={
            "kafka_bootstrap": f"127.0.0.1:{SASL_PORT}",
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_mechanism": "PLAIN",
            "kafka_sasl_username": USER,
            "kafka_sasl_password": SecretStr(password),
        }
    )


@pytest.fixture
def topic(sasl_broker: Settings) -> str:
    name = f"sasl-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=sasl_broker.kafka_bootstrap, client_id="sasl-test")
    try:
        admin.create_topics(
            [NewTopic(name=name, num_partitions=1, replication_factor=1)],
            wait_for_metadata=True,
        )
    finally:
        admin.close()
    return name


def test_right_password_round_trips_a_message(sasl_broker: Settings, topic: str) -> None:
    assert sasl_broker.kafka_sasl_password is not None
    client = sasl_client(sasl_broker, sasl_broker.kafka_sasl_password.get_secret_value())
    value = uuid.uuid4().hex.encode()
    with EventPublisher(client) as publisher:
        publisher.publish(topic, "k1", value)
    with TopicReader.join(client, f"sasl-{uuid.uuid4().hex[:8]}", [topic]) as stream:
        received = []
        deadline = time.monotonic() + 20
        while not received and time.monotonic() < deadline:
            received = stream.poll(timeout_s=1.0)
    assert [(r.topic, r.key, r.value) for r in received] == [(topic, "k1", value)]


def test_wrong_password_is_refused_without_leaking_it(
    sasl_broker: Settings, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    client = sasl_client(sasl_broker, wrong)
    caplog.set_level(logging.DEBUG)
    failures: list[BaseException] = []

    started = time.monotonic()
    with pytest.raises(BusUnavailable) as publisher_error, EventPublisher(client) as publisher:
        publisher.publish(topic, "k1", b"never", timeout_s=REFUSAL_BOUND_S)
    failures.append(publisher_error.value)
    assert time.monotonic() - started < REFUSAL_BOUND_S

    started = time.monotonic()
    group = f"sasl-{uuid.uuid4().hex[:8]}"
    with (
        pytest.raises(BusUnavailable) as consumer_error,
        TopicReader.join(client, group, [topic]) as stream,
    ):
        stream.poll(timeout_s=REFUSAL_BOUND_S)
    failures.append(consumer_error.value)
    assert time.monotonic() - started < REFUSAL_BOUND_S

    texts = []
    for failure in failures:
        cause: BaseException | None = failure
        while cause is not None:  # the translated error and every library error under it
            texts += [str(cause), repr(cause)]
            cause = cause.__cause__ or cause.__context__
    assert not [t for t in texts if wrong in t]

    # kafka-python's own DEBUG lines print the SASL auth bytes, password included, in the
    # clear. configure_logging holds the "kafka" loggers at WARNING whatever the level, so
    # what an entrypoint can emit is this subset, and it must be clean without any redaction.
    emitted = [r for r in caplog.records if not is_kafka_debug(r)]
    assert any(r.name.startswith("kafka") for r in emitted), "no kafka-python warning seen"
    leaked = [f"{r.name}: {r.getMessage()}" for r in emitted if wrong in r.getMessage()]
    assert not leaked
    # And if someone lowers that level, the handler's secret filter is the second line.
    debug = [r for r in caplog.records if is_kafka_debug(r)]
    assert any(wrong in r.getMessage() for r in debug), "the leak this guards against moved"
    redact = RedactSecrets(client.secrets())
    assert all(redact.filter(r) and wrong not in r.getMessage() for r in debug)


def is_kafka_debug(record: logging.LogRecord) -> bool:
    return record.name.split(".")[0] == "kafka" and record.levelno < logging.WARNING
