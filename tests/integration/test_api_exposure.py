"""What the API tells whom, on the live stack: the readiness details (admin keys only), Swagger
UI (never loaded from a CDN onto a keyed origin) and the client address behind a proxy (trusted
only where configured)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from apistack import isolated_settings

from devkit.serve_api import serve_in_thread
from vidloc.api.app import create_app
from vidloc.api.keys import KeysFile, add_key, write_keys_file
from vidloc.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def keyed(stack: Settings, tmp_path: Path) -> tuple[Settings, dict[str, str]]:
    file, keys = KeysFile(), {}
    for scope in ("read", "admin"):
        file, _, keys[scope] = add_key(file, "acme", (scope,))
    write_keys_file(tmp_path / "keys.json", file)
    settings = isolated_settings(stack, "exposure").model_copy(
        update={"api_keys_file": tmp_path / "keys.json"}
    )
    return settings, keys


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_readiness_details_are_for_admin_keys_only(keyed: tuple[Settings, dict[str, str]]) -> None:
    settings, keys = keyed
    # Both probes fail for real: no broker on that port, no such bucket on the store.
    broken = settings.model_copy(
        update={"kafka_bootstrap": "127.0.0.1:1", "timeline_bucket": "readyz-no-such-bucket"}
    )
    base_url, stop = serve_in_thread(create_app(broken, follow_bus=False))
    try:
        with httpx.Client(base_url=base_url, timeout=30.0) as http:
            read = http.get("/readyz", headers=_auth(keys["read"]))
            admin = http.get("/readyz", headers=_auth(keys["admin"]))
    finally:
        stop()
    assert read.status_code == admin.status_code == 503
    assert read.json()["error"]["code"] == admin.json()["error"]["code"] == "not_ready"
    told = read.json()["error"]["message"]
    details = ("127.0.0.1:1", "readyz-no-such-bucket", settings.s3_endpoint, "_unavailable")
    assert not [d for d in details if d in told], told
    assert "kafka" in told and "s3" in told  # which check failed, not why
    full = admin.json()["error"]["message"]
    assert "kafka: bus_unavailable" in full and "readyz-no-such-bucket" in full, full


def test_readiness_notes_are_for_admin_keys_only(keyed: tuple[Settings, dict[str, str]]) -> None:
    settings, keys = keyed
    base_url, stop = serve_in_thread(create_app(settings, follow_bus=False))
    try:
        with httpx.Client(base_url=base_url, timeout=30.0) as http:
            read = http.get("/readyz", headers=_auth(keys["read"]))
            admin = http.get("/readyz", headers=_auth(keys["admin"]))
    finally:
        stop()
    assert read.status_code == admin.status_code == 200
    assert read.json()["checks"] == {"kafka": "ok", "s3": "ok"}
    assert "topics" in admin.json()["checks"]["kafka"]


def test_no_swagger_ui_from_a_cdn_where_keys_live(keyed: tuple[Settings, dict[str, str]]) -> None:
    """The viewer keeps a key in sessionStorage on this origin; a page here that runs a CDN's
    script could read it."""
    settings, _ = keyed
    base_url, stop = serve_in_thread(create_app(settings, follow_bus=False))
    try:
        with httpx.Client(base_url=base_url, timeout=30.0) as http:
            pages = {path: http.get(path) for path in ("/docs", "/redoc", "/docs/oauth2-redirect")}
            spec = http.get("/openapi.json")
            viewer = http.get("/viewer/some-video")
    finally:
        stop()
    for path, page in pages.items():
        assert page.status_code == 404, (path, page.status_code)
        assert "cdn.jsdelivr.net" not in page.text
    assert spec.status_code == 200 and "/videos" in spec.json()["paths"]
    assert viewer.status_code == 200 and "sessionStorage" in viewer.text


# --- the address behind a proxy: `vidloc api` as deployed, in a subprocess ----------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _vidloc_api(keys_file: Path, log: Path, **env: str) -> Iterator[str]:
    port = _free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VIDLOC_API_")}
    environ.update(VIDLOC_API_KEYS_FILE=str(keys_file), **env)
    # uvicorn's own variable: it must not widen what vidloc trusts.
    environ["FORWARDED_ALLOW_IPS"] = "*"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vidloc", "api", "--no-follow", "--port", str(port)],
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{base_url}/healthz", timeout=1.0)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"vidloc api never answered: {log.read_text()}")
                    time.sleep(0.2)
            yield base_url
        finally:
            proc.terminate()
            proc.wait(10)


def _forged(base_url: str, count: int) -> list[int]:
    """``count`` requests with a wrong key, each claiming another client address."""
    return [
        httpx.get(
            f"{base_url}/videos",
            headers={**_auth("vk_aaaaaaaaaaaa_" + "x" * 43), "X-Forwarded-For": f"203.0.113.{i}"},
            timeout=10.0,
        ).status_code
        for i in range(1, count + 1)
    ]


def _denials(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if "denied GET /videos" in line]


def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(
    keyed: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    settings, _ = keyed
    assert settings.api_keys_file is not None
    limits = {"VIDLOC_API_RATE_PER_S": "0.01", "VIDLOC_API_RATE_BURST": "3"}
    # Not configured: one bucket for the one real address, whatever the header claims.
    log = tmp_path / "direct.log"
    with _vidloc_api(settings.api_keys_file, log, **limits) as base_url:
        assert _forged(base_url, 5) == [401, 401, 401, 429, 429]
    denials = _denials(log)
    assert len(denials) == 5 and all("from 127.0.0.1)" in line for line in denials), denials
    assert "203.0.113." not in log.read_text()
    # Behind a proxy on loopback that is configured: the header names the client.
    log = tmp_path / "proxied.log"
    trusted = {**limits, "VIDLOC_API_TRUSTED_PROXIES": "127.0.0.1"}
    with _vidloc_api(settings.api_keys_file, log, **trusted) as base_url:
        assert _forged(base_url, 5) == [401] * 5
    denials = _denials(log)
    assert [line.rsplit("from ", 1)[1] for line in denials] == [
        f"203.0.113.{i})" for i in range(1, 6)
    ], denials
