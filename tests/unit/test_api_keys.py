"""The pure parts of API access: keys file, hashing, verification, scopes, token buckets,
the loopback rule and tenant key prefixes."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vidloc.api.exposure import bind_refusal, is_loopback_host
from vidloc.api.keys import (
    KeysFile,
    add_key,
    hash_key,
    key_id_of,
    load_keys_file,
    parse_scopes,
    revoke_key,
    verify,
    write_keys_file,
)
from vidloc.api.ratelimit import RateLimiter, TokenBucket, retry_after_header
from vidloc.errors import ConfigError
from vidloc.names import timeline_key
from vidloc.tenancy import check_tenant, tenant_key, tenant_of_key

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_add_key_stores_only_the_hash() -> None:
    keys, entry, key = add_key(KeysFile(), "acme", ("read",), NOW)
    assert key.startswith(f"vk_{entry.id}_") and key_id_of(key) == entry.id
    assert entry.hash == hash_key(key) and key not in keys.model_dump_json()
    assert verify(keys, key) == (entry, None)


def test_two_keys_differ() -> None:
    keys, a, key_a = add_key(KeysFile(), "acme", ("read",), NOW)
    keys, b, key_b = add_key(keys, "acme", ("read",), NOW)
    assert a.id != b.id and key_a != key_b and len(keys.keys) == 2


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        pytest.param(lambda k: "", "malformed key", id="empty"),
        pytest.param(lambda k: "hunter2", "malformed key", id="not-a-key"),
        pytest.param(
            lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"), "wrong secret", id="secret"
        ),
        pytest.param(lambda k: "vk_aaaaaaaaaaaa_" + k.split("_", 2)[2], "unknown key id", id="id"),
        pytest.param(lambda k: k + "x", "malformed key", id="longer"),
    ],
)
def test_wrong_keys_are_refused_without_echoing_them(mutate, why) -> None:  # type: ignore[no-untyped-def]
    keys, _, key = add_key(KeysFile(), "acme", ("read",), NOW)
    presented = mutate(key)
    entry, reason = verify(keys, presented)
    assert entry is None and reason is not None and reason.startswith(why)
    secret = key.split("_", 2)[2]
    assert secret not in reason and (not presented or presented not in reason)


def test_revoked_key_is_refused_and_kept() -> None:
    keys, entry, key = add_key(KeysFile(), "acme", ("read",), NOW)
    keys = revoke_key(keys, entry.id, NOW)
    found, why = verify(keys, key)
    assert found is None and why == f"key id {entry.id} is revoked"
    assert keys.find(entry.id) is not None and keys.find(entry.id).revoked  # type: ignore[union-attr]
    with pytest.raises(KeyError):
        revoke_key(keys, "nosuchkeyid0")


def test_scopes() -> None:
    _, reader, _ = add_key(KeysFile(), "a", ("read",), NOW)
    _, submitter, _ = add_key(KeysFile(), "a", ("submit",), NOW)
    _, admin, _ = add_key(KeysFile(), "a", ("admin",), NOW)
    assert [reader.grants(s) for s in ("read", "submit", "admin")] == [True, False, False]
    assert [submitter.grants(s) for s in ("read", "submit", "admin")] == [False, True, False]
    assert [admin.grants(s) for s in ("read", "submit", "admin")] == [True, True, True]
    assert parse_scopes("submit, read") == ("read", "submit")
    for bad in ("", "read,write", "root"):
        with pytest.raises(ValueError):
            parse_scopes(bad)


def test_keys_file_is_written_atomically_0600_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "keys.json"
    keys, _, key = add_key(KeysFile(), "acme", ("read", "submit"), NOW)
    write_keys_file(path, keys)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keys_file(path) == keys
    assert key not in path.read_text() and [p.name for p in path.parent.iterdir()] == ["keys.json"]


def test_bad_keys_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_keys_file(tmp_path / "missing.json")
    assert load_keys_file(tmp_path / "missing.json", missing_ok=True) == KeysFile()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "keys": [{"id": "x"}]}))
    with pytest.raises(ConfigError, match="not a valid keys file"):
        load_keys_file(bad)


def test_token_bucket() -> None:
    bucket = TokenBucket.full(rate_per_s=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.25) == pytest.approx(0.25)  # half a token back, nothing taken
    assert bucket.take(0.5) == 0.0
    assert bucket.take(100.0) == 0.0 and bucket.tokens == pytest.approx(2.0)  # capped at burst
    assert bucket.take(50.0) == 0.0  # a clock going back refills nothing
    assert retry_after_header(0.01) == "1" and retry_after_header(1.2) == "2"


def test_rate_limiter_keeps_clients_apart_and_bounded() -> None:
    limiter = RateLimiter(1.0, 1, max_clients=2)
    assert limiter.take("a", 0.0) == 0.0 and limiter.take("a", 0.0) > 0
    assert limiter.take("b", 0.0) == 0.0
    limiter.take("c", 0.0)  # evicts "a", the least recently used
    assert limiter.take("a", 0.0) == 0.0


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.1.2.3", False),
        ("192.168.0.1", False),
        ("no-such-host.invalid", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_bind_refusal() -> None:
    assert bind_refusal("127.0.0.1", keys_configured=False) is None
    assert bind_refusal("0.0.0.0", keys_configured=True) is None
    why = bind_refusal("0.0.0.0", keys_configured=False)
    assert why is not None and "without API keys" in why and "VIDLOC_API_KEYS_FILE" in why


def test_tenant_prefixes() -> None:
    assert tenant_of_key("tenants/acme/up/v.mp4") == "acme"
    for key in ("up/v.mp4", "tenants/acme", "tenants//v.mp4", "tenants/-x/v.mp4", "tenantsx/a/b"):
        assert tenant_of_key(key) is None, key
    assert tenant_key("acme", "up/v.mp4") == "tenants/acme/up/v.mp4"
    assert tenant_key("acme", "tenants/acme/up/v.mp4") == "tenants/acme/up/v.mp4"
    assert tenant_key(None, "up/v.mp4") == "up/v.mp4"
    assert timeline_key("v1") == "timelines/v1/timeline.json"
    assert timeline_key("v1", "acme") == "tenants/acme/timelines/v1/timeline.json"
    with pytest.raises(ValueError):
        check_tenant("a/b")
