"""The pure parts of API access: keys file, hashing, verification, scopes, token buckets,
the loopback rule and tenant key prefixes."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vidloc.api.auth import KeyRing
from vidloc.api.exposure import bind_refusal, is_loopback_host, proxy_options
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
from vidloc.settings import load_settings
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


def test_a_rewrite_keeps_the_owner_group_and_mode_the_api_reads_it_by(tmp_path: Path) -> None:
    """The API runs as another user (uid 10001 in the image): revoking as root or as the
    operator must leave it a file it can read, not a 0600 file of the operator's."""
    from vidloc.api.keys import create_key_in_file, revoke_key_in_file

    path = tmp_path / "keys.json"
    entry, _ = create_key_in_file(path, "acme", ("read",))
    # As root: the image's user, as docs/deploy.md says; otherwise one's own uid and group.
    owner = (10001, 10001) if os.geteuid() == 0 else (os.geteuid(), os.getegid())
    os.chown(path, *owner)
    path.chmod(0o640)
    create_key_in_file(path, "acme", ("read",))
    revoke_key_in_file(path, entry.id)
    after = path.stat()
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (*owner, 0o640)
    assert load_keys_file(path).find(entry.id).revoked  # type: ignore[union-attr]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can make a file another user's")
def test_a_rewrite_that_cannot_keep_the_owner_replaces_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vidloc.api.keys import create_key_in_file

    path = tmp_path / "keys.json"
    create_key_in_file(path, "acme", ("read",))
    os.chown(path, 10001, 10001)
    before = path.read_bytes()

    def refused(fd: int, uid: int, gid: int) -> None:  # what fchown does for a non-root user
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "fchown", refused)
    with pytest.raises(ConfigError, match="owner 10001:10001"):
        create_key_in_file(path, "acme", ("read",))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".keys.json.lock", "keys.json"]


def test_the_keyring_sees_a_rewrite_in_place_that_stat_cannot(tmp_path: Path) -> None:
    """Same inode, size and mtime (a rewrite within one mtime tick): seen within recheck_s."""
    path = tmp_path / "keys.json"
    keys, entry, key = add_key(KeysFile(), "acme", ("read",), NOW)
    write_keys_file(path, keys)
    ring = KeyRing(path, recheck_s=0.2)
    assert verify(ring.current(), key)[0] == entry
    before = path.stat()
    body = path.read_bytes()
    assert body.count(b'"revoked": false') == 1
    with path.open("r+b") as fh:  # the same length, in place
        fh.write(body.replace(b'"revoked": false', b'"revoked": true '))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_ino, path.stat().st_size, path.stat().st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    deadline = time.monotonic() + 2.0
    while verify(ring.current(), key)[0] is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert verify(ring.current(), key) == (None, f"key id {entry.id} is revoked")


def test_a_keys_file_replaced_out_of_sight_refuses_every_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A mount of the file itself keeps the old inode (link count 0 once replaced): the API
    cannot see the change, so it refuses every key rather than accept a revoked one."""
    path = tmp_path / "keys.json"
    keys, entry, key = add_key(KeysFile(), "acme", ("read",), NOW)
    write_keys_file(path, keys)
    fd = os.open(path, os.O_RDONLY)  # what a bind mount of the file holds
    try:
        ring = KeyRing(Path(f"/proc/self/fd/{fd}"))
        assert verify(ring.current(), key)[0] == entry
        write_keys_file(path, add_key(keys, "acme", ("read",), NOW)[0])  # any change
        with caplog.at_level(logging.ERROR, logger="vidloc.api.auth"):
            assert ring.current() == KeysFile() and ring.current() == KeysFile()
    finally:
        os.close(fd)
    (message,) = [r.getMessage() for r in caplog.records]
    assert "refusing every key" in message and "docs/deploy.md" in message


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


@pytest.mark.parametrize(
    ("trusted", "options"),
    [
        pytest.param("", {"proxy_headers": False}, id="none"),
        pytest.param(" , ", {"proxy_headers": False}, id="blank"),
        pytest.param(
            "10.0.0.5, 10.1.0.0/16",
            {"proxy_headers": True, "forwarded_allow_ips": ["10.0.0.5", "10.1.0.0/16"]},
            id="listed",
        ),
        pytest.param("*", {"proxy_headers": True, "forwarded_allow_ips": ["*"]}, id="any"),
    ],
)
def test_proxy_headers_only_from_configured_proxies(
    trusted: str, options: dict[str, object]
) -> None:
    assert proxy_options(trusted) == options


@pytest.mark.parametrize("bad", ["proxy.internal", "10.0.0.1/8", "10.0.0.300"])
def test_trusted_proxies_are_addresses_or_networks(bad: str) -> None:
    # uvicorn would take any of these as a literal that never matches: say so at start instead.
    with pytest.raises(ConfigError, match="VIDLOC_API_TRUSTED_PROXIES"):
        load_settings(api_trusted_proxies=f"127.0.0.1,{bad}")
    assert load_settings(api_trusted_proxies="::1, 10.0.0.0/8, *").api_trusted_proxies


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
