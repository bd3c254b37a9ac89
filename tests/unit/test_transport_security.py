"""TLS and SASL settings reach the Kafka, S3 and model clients; secrets stay out of reprs."""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi
import pytest

from vidloc.adapters.kafka import kafka_config
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings
from workers.model.client import http_client_from_settings


def test_kafka_sasl_ssl_settings_reach_the_client_config() -> None:
    settings = Settings(
        kafka_bootstrap="broker-1:9093,broker-2:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="vidloc",
        kafka_sasl_password="kafka-pass",
        kafka_ssl_cafile="/etc/ssl/kafka-ca.pem",
    )
    config = kafka_config(settings)
    assert config["bootstrap_servers"] == ["broker-1:9093", "broker-2:9093"]
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert config["sasl_plain_username"] == "vidloc"
    assert config["sasl_plain_password"] == "kafka-pass"
    assert config["ssl_cafile"] == "/etc/ssl/kafka-ca.pem"


def test_s3_uses_the_configured_ca_file_and_https() -> None:
    ca = certifi.where()  # any readable bundle stands in for a private CA
    store = ObjectStore(Settings(s3_endpoint="https://s3.internal:9443", s3_ca_file=ca))
    assert store.endpoint == "https://s3.internal:9443"
    pool_kw = store._client._http.connection_pool_kw
    assert pool_kw["ca_certs"] == ca and pool_kw["cert_reqs"] == "CERT_REQUIRED"


def test_model_client_verifies_with_the_configured_ca(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[str | None] = []
    real = ssl.create_default_context

    def spy(*args: object, cafile: str | None = None, **kwargs: object) -> ssl.SSLContext:
        seen.append(cafile)
        return real(cafile=cafile)

    monkeypatch.setattr(ssl, "create_default_context", spy)
    with http_client_from_settings(Settings(vlm_ca_file=certifi.where())):
        pass
    assert seen == [certifi.where()]


def test_secrets_are_masked_in_settings_repr() -> None:
    settings = Settings(
        s3_secret_key="s3-secret-value",
        vlm_api_key="model-key-value",
        kafka_sasl_password="sasl-value",
    )
    text = repr(settings) + str(settings) + settings.model_dump_json()
    for secret in ("s3-secret-value", "model-key-value", "sasl-value"):
        assert secret not in text
    assert set(settings.secrets()) == {"s3-secret-value", "model-key-value", "sasl-value"}
