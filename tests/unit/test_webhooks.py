"""Webhooks' pure parts: signatures, the target allow-list, the offset ledger, retry delays,
and the client's error mapping (httpx MockTransport). The submit quota: test_submit_quota.py."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from vidloc.adapters.kafka import Partition
from vidloc.client import Client, InvalidRequest, NotFound, RateLimited, Unauthorized
from vidloc.settings import Settings
from vidloc.webhooks import TargetPolicy, TargetRefused, Webhook, delivery_id, signature, verify
from vidloc.webhooks.ledger import OffsetLedger
from vidloc.webhooks.sender import Delivery, retry_delay

SECRET = "whsec_test"


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"video_id":"v"}'
    header = signature(SECRET, 1700000000, body)
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert verify(SECRET, header, body, now=1700000010)


@pytest.mark.parametrize(
    ("secret", "body", "now", "header_edit"),
    [
        pytest.param("whsec_other", b"{}", 1700000000, None, id="wrong-secret"),
        pytest.param(SECRET, b"{ }", 1700000000, None, id="changed-body"),
        pytest.param(SECRET, b"{}", 1700000000 + 301, None, id="too-old"),
        pytest.param(SECRET, b"{}", 1700000000, ("t=1700000000", "t=1700000001"), id="new-time"),
        pytest.param(SECRET, b"{}", 1700000000, ("t=1700000000,", ""), id="no-time"),
    ],
)
def test_verify_refuses(
    secret: str, body: bytes, now: float, header_edit: tuple[str, str] | None
) -> None:
    header = signature(SECRET, 1700000000, b"{}")
    if header_edit is not None:
        header = header.replace(*header_edit)
    assert not verify(secret, header, body, now=now)


def test_delivery_id_is_stable_per_webhook_and_event() -> None:
    assert delivery_id("wh_1", "ev") == delivery_id("wh_1", "ev")
    assert delivery_id("wh_1", "ev") != delivery_id("wh_2", "ev")
    assert delivery_id("wh_1", "ev") != delivery_id("wh_1", "ev2")


def _resolver(addresses: list[str]):  # type: ignore[no-untyped-def]
    return lambda host, port: addresses


@pytest.mark.parametrize(
    ("url", "addresses"),
    [
        pytest.param("http://localhost/h", ["127.0.0.1"], id="loopback"),
        pytest.param("http://10.1.2.3/h", ["10.1.2.3"], id="private"),
        pytest.param("http://169.254.169.254/latest", ["169.254.169.254"], id="metadata"),
        pytest.param("http://[::1]/h", ["::1"], id="v6-loopback"),
        pytest.param("http://x.example/h", ["93.184.216.34", "10.0.0.1"], id="one-private"),
        pytest.param("http://[::ffff:127.0.0.1]/h", ["::ffff:127.0.0.1"], id="v4-mapped"),
        pytest.param("ftp://x.example/h", ["93.184.216.34"], id="scheme"),
        pytest.param("http://u:p@x.example/h", ["93.184.216.34"], id="credentials"),
    ],
)
def test_internal_targets_are_refused_by_default(url: str, addresses: list[str]) -> None:
    with pytest.raises(TargetRefused):
        TargetPolicy().check(url, _resolver(addresses))


def test_operator_allows_networks_and_restricts_hosts() -> None:
    TargetPolicy().check("https://hooks.example.com/h", _resolver(["93.184.216.34"]))
    local = TargetPolicy.parse("127.0.0.1/32", "")
    local.check("http://127.0.0.1:9999/h", _resolver(["127.0.0.1"]))
    with pytest.raises(TargetRefused):
        local.check("http://10.0.0.1/h", _resolver(["10.0.0.1"]))
    only = TargetPolicy.parse("", "*.example.com, api.partner.net")
    only.check("https://a.example.com/h", _resolver(["93.184.216.34"]))
    only.check("https://api.partner.net/h", _resolver(["93.184.216.34"]))
    with pytest.raises(TargetRefused):
        only.check("https://evil.net/h", _resolver(["93.184.216.34"]))
    with pytest.raises(ValueError, match="not a network"):
        TargetPolicy.parse("nope", "")


def test_ledger_commits_below_the_oldest_unsettled_delivery() -> None:
    part = Partition("video.results", 0)
    ledger = OffsetLedger()
    ledger.seen(part, 10, 0)
    assert ledger.committable() == {part: 11}
    ledger.seen(part, 11, 2)
    ledger.seen(part, 12, 1)
    ledger.seen(part, 13, 0)
    assert ledger.committable() == {part: 11} and ledger.pending() == 3
    ledger.settle(part, 12)
    ledger.settle(part, 11)
    assert ledger.committable() == {part: 11}
    ledger.settle(part, 11)
    assert ledger.committable() == {part: 14} and ledger.pending() == 0
    ledger.forget({part})
    ledger.settle(part, 11)  # a revoked partition's late settlement is ignored
    assert ledger.committable() == {}


def test_retry_delay_is_capped_and_honours_retry_after() -> None:
    hook = Webhook(id="wh_1", url="http://x", secret=SECRET, created_at=datetime.now(UTC))
    delivery = Delivery(hook=hook, kind="result", event_id="e", video_id="v", body=b"{}")
    delivery.attempts = 30
    assert 0 <= retry_delay(delivery, 5.0) <= 5.0
    delivery.retry_after_s = 4.0
    assert retry_delay(delivery, 60.0) >= 4.0
    delivery.retry_after_s = 3600.0
    assert retry_delay(delivery, 60.0) <= 60.0


def _client(status: int, body: dict[str, object], headers: dict[str, str] | None = None) -> Client:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer k"
        return httpx.Response(status, json=body, headers=headers)

    return Client("http://api", "k", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        pytest.param(401, "unauthorized", Unauthorized, id="401"),
        pytest.param(404, "video_not_found", NotFound, id="404"),
        pytest.param(422, "target_not_allowed", InvalidRequest, id="422"),
    ],
)
def test_client_raises_the_apis_codes(status: int, code: str, kind: type[Exception]) -> None:
    error = {"error": {"code": code, "message": "m"}}
    with _client(status, error) as client, pytest.raises(kind) as caught:
        client.video("v1")
    assert getattr(caught.value, "code", None) == code


def test_client_rate_limit_carries_retry_after() -> None:
    body = {"error": {"code": "submit_quota_exceeded", "message": "m"}}
    with _client(429, body, {"Retry-After": "7"}) as client, pytest.raises(RateLimited) as caught:
        client.submit_object("clips/a.mp4")
    assert caught.value.retry_after_s == 7.0 and caught.value.code == "submit_quota_exceeded"


def test_the_readme_settings_table_names_every_front_door_setting() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    ours = [
        f"VIDLOC_{name.upper()}"
        for name in Settings.model_fields
        if name.startswith(("webhook_", "api_submit_", "api_upload_"))
        # The local stack's (unused since the skeleton), not the deliverer's.
        and name != "webhook_port"
    ]
    assert len(ours) >= 14
    assert [name for name in ours if f"`{name}`" not in table] == []
