"""Pure parts of the local Kafka launcher."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from devkit.stack.kafka import new_cluster_id, ports, render_server_properties
from devkit.stack.layout import StackLayout
from vidloc.errors import StackError
from vidloc.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_cluster_id_never_starts_with_a_dash() -> None:
    # 0xf8 encodes to "-" as the first URL-safe base64 character: StorageTool would take
    # "-t -..." for an option. The generator must draw again.
    draws = iter([b"\xf8" + b"\x00" * 15, b"\x10" * 16])
    cluster_id = new_cluster_id(lambda: next(draws))
    assert cluster_id == base64.urlsafe_b64encode(b"\x10" * 16).rstrip(b"=").decode()


def test_cluster_id_has_kafkas_shape() -> None:
    for _ in range(200):
        cluster_id = new_cluster_id()
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", cluster_id), cluster_id


TEMPLATE = (REPO / "infra" / "kafka" / "server.properties.template").read_text()
LAYOUT = StackLayout(stack_dir=Path("/stack"), cache_dir=Path("/cache"))


def _render(**overrides: object) -> str:
    return render_server_properties(TEMPLATE, Settings(**overrides), LAYOUT)


def _props(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_default_config_has_no_sasl_listener() -> None:
    text = _render(kafka_port=9092, kafka_controller_port=9093)
    props = _props(text)
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == props["listeners"]
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
    assert "sasl" not in text.lower()
    # Byte-for-byte the template with the SASL placeholders empty: nothing else moves.
    expected = TEMPLATE.replace("$sasl_listener", "").replace("$sasl_protocol", "")
    expected = expected.replace("$kafka_port", "9092").replace("$controller_port", "9093")
    expected = expected.replace("$log_dirs", "/stack/kafka-data")
    assert text == expected.replace("$message_max_bytes", "1000000")


def test_sasl_port_adds_a_plain_listener_for_the_configured_user() -> None:
    props = _props(
        _render(
            kafka_port=39092,
            kafka_controller_port=39093,
            stack_kafka_sasl_port=39094,
            kafka_sasl_username="vidloc-app",
            kafka_sasl_password="pa$$ word#1",
        )
    )
    assert props["listeners"] == (
        "PLAINTEXT://127.0.0.1:39092,CONTROLLER://127.0.0.1:39093,SASL_PLAINTEXT://127.0.0.1:39094"
    )
    assert props["advertised.listeners"] == props["listeners"]
    assert props["listener.security.protocol.map"].endswith(",SASL_PLAINTEXT:SASL_PLAINTEXT")
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["sasl.enabled.mechanisms"] == "PLAIN"
    assert props["listener.name.sasl_plaintext.plain.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.plain.PlainLoginModule required"
        ' user_vidloc-app="pa$$ word#1";'
    )
    assert ports(Settings(stack_kafka_sasl_port=39094)) == (9092, 9093, 39094)
    assert ports(Settings()) == (9092, 9093)


@pytest.mark.parametrize(
    ("username", "password", "complaint"),
    [
        pytest.param(None, "pw", "needs", id="no-user"),
        pytest.param("alice", None, "needs", id="no-password"),
        pytest.param("al ice", "pw", "USERNAME", id="space-in-user"),
        pytest.param("alice", 'p"w', "PASSWORD", id="quote-in-password"),
        pytest.param("alice", "p\\w", "PASSWORD", id="backslash-in-password"),
        pytest.param("alice", "pässword", "PASSWORD", id="non-ascii-password"),
        pytest.param("alice", "pw\nx=1", "PASSWORD", id="newline-in-password"),
    ],
)
def test_sasl_user_that_cannot_be_written_safely_is_refused(
    username: str | None, password: str | None, complaint: str
) -> None:
    with pytest.raises(StackError, match=complaint) as info:
        _render(
            stack_kafka_sasl_port=39094,
            kafka_sasl_username=username,
            kafka_sasl_password=password,
        )
    if password:
        assert password not in str(info.value)
