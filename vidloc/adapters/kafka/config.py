"""Connection settings shared by every Kafka client, and safe construction of those clients."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar

from kafka.net.compat import KafkaNetClient

from vidloc.errors import BusUnavailable
from vidloc.settings import Settings

Client = TypeVar("Client")

# A dead broker should fail a CLI or a worker start in seconds, not after kafka-python's 30-60 s.
_BOOTSTRAP_TIMEOUT_MS = 10_000
MAX_BLOCK_MS = 10_000


def kafka_config(settings: Settings) -> dict[str, Any]:
    """Connection and security options shared by producers, consumers and the admin client."""
    config: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in settings.kafka_bootstrap.split(",") if s.strip()],
        "security_protocol": settings.kafka_security_protocol,
        "bootstrap_timeout_ms": _BOOTSTRAP_TIMEOUT_MS,
    }
    if settings.kafka_sasl_mechanism:
        config["sasl_mechanism"] = settings.kafka_sasl_mechanism
    if settings.kafka_sasl_username:
        config["sasl_plain_username"] = settings.kafka_sasl_username
    if settings.kafka_sasl_password is not None:
        config["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_cafile:
        config["ssl_cafile"] = settings.kafka_ssl_cafile
    return config


def construct(cls: Callable[..., Client], config: dict[str, Any]) -> Client:
    """Build a producer/consumer, closing its network client if the constructor fails.

    kafka-python bootstraps inside ``__init__``; when that times out the half-built object
    is dropped without closing its sockets, which leaks them in every retry loop.
    """
    created: list[Any] = []
    factory = config.get("kafka_client", KafkaNetClient)

    def tracking_factory(**kwargs: Any) -> Any:
        client = factory(**kwargs)
        created.append(client)
        return client

    try:
        return cls(**{**config, "kafka_client": tracking_factory})
    except BaseException:
        for client in created:
            with contextlib.suppress(Exception):
                client.close()
        raise


def require_listener(settings: Settings, timeout_s: float = 3.0) -> None:
    """Fail fast (and leak nothing) when no bootstrap server even accepts a TCP connection.

    kafka-python's own bootstrap would wait ``bootstrap_timeout_ms`` and then leave its
    half-open sockets behind.
    """
    problems = []
    last: Exception | None = None
    for server in kafka_config(settings)["bootstrap_servers"]:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout_s):
                return
        except (OSError, ValueError) as exc:
            problems.append(f"{server}: {exc}")
            last = exc
    raise BusUnavailable(
        f"no Kafka broker answers at {describe(settings)}: {'; '.join(problems)}"
    ) from last


def describe(settings: Settings) -> str:
    # Only the address and protocol: the config dict may carry a SASL password.
    return f"{settings.kafka_bootstrap} ({settings.kafka_security_protocol})"


class ClosedOnExit:
    """``with client as c:`` closes the client on the way out; each client defines ``close``."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
