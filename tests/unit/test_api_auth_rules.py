"""API keys, tenants and abuse limits on the app over an in-memory store (no services)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from api_fixtures import MemoryStore, make_progress, make_result, make_timeline

from contracts import encode
from devkit.serve_api import serve_in_thread
from vidloc import names
from vidloc.api.app import create_app
from vidloc.api.keys import KeysFile, add_key, load_keys_file, revoke_key, write_keys_file
from vidloc.api.status import StatusBook
from vidloc.settings import Settings


class Keys:
    def __init__(self, path: Path) -> None:
        self.path = path
        keys = KeysFile()
        keys, self.a_read_entry, self.a_read = add_key(keys, "acme", ("read",))
        keys, _, self.a_submit = add_key(keys, "acme", ("submit",))
        keys, _, self.a_admin = add_key(keys, "acme", ("admin",))
        keys, _, self.b_read = add_key(keys, "bravo", ("read",))
        write_keys_file(path, keys)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path / "keys.json")


def _put(store: MemoryStore, video_id: str, tenant: str | None) -> None:
    timeline = make_timeline(video_id)
    store.objects[("timelines", names.timeline_key(video_id, tenant))] = encode(timeline)


@pytest.fixture
def client(keys: Keys) -> Iterator[httpx.Client]:
    store = MemoryStore()
    _put(store, "a-1", "acme")
    _put(store, "shared", "acme")  # two tenants may reuse an id: each sees its own
    _put(store, "shared", "bravo")
    _put(store, "b-1", "bravo")
    _put(store, "legacy", None)
    book = StatusBook()
    book.apply_result(make_result("a-bad", "failed").model_copy(update={"tenant": "acme"}))
    book.apply_progress(
        make_progress("a-run", at=datetime.now(UTC).isoformat()).model_copy(
            update={"tenant": "acme"}
        )
    )
    settings = Settings(api_keys_file=keys.path, api_rate_per_s=1.0, api_rate_burst=200)
    app = create_app(settings, store=store, book=book, follow_bus=False, probes={})  # type: ignore[arg-type]
    base_url, stop = serve_in_thread(app)
    try:
        with httpx.Client(base_url=base_url, timeout=10.0) as http:
            yield http
    finally:
        stop()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {
        "error": {"code": code, "message": response.json()["error"]["message"]}
    }


def test_no_or_wrong_key_is_401_with_a_bearer_challenge(client: httpx.Client, keys: Keys) -> None:
    for headers in (
        {},
        _auth("nope"),
        _auth(keys.a_read[:-2] + "xx"),
        {"Authorization": keys.a_read},
    ):
        response = client.get("/videos", headers=headers)
        _error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/healthz").status_code == 200


def test_scopes_decide_403(client: httpx.Client, keys: Keys) -> None:
    _error(client.get("/videos", headers=_auth(keys.a_submit)), 403, "forbidden")
    _error(client.get("/metrics", headers=_auth(keys.a_read)), 403, "forbidden")
    assert client.get("/metrics", headers=_auth(keys.a_admin)).status_code == 200
    assert client.get("/readyz", headers=_auth(keys.b_read)).status_code == 200
    assert client.get("/videos", headers=_auth(keys.a_admin)).status_code == 200


def test_a_key_sees_only_its_tenant(client: httpx.Client, keys: Keys) -> None:
    acme = client.get("/videos", headers=_auth(keys.a_read)).json()
    assert {v["video_id"]: v["status"] for v in acme["videos"]} == {
        "a-1": "succeeded",
        "a-bad": "failed",
        "a-run": "running",
        "shared": "succeeded",
    }
    bravo = client.get("/videos", headers=_auth(keys.b_read)).json()
    assert sorted(v["video_id"] for v in bravo["videos"]) == ["b-1", "shared"]
    for path in ("/videos/{}", "/videos/{}/timeline", "/videos/{}/events", "/videos/{}/view"):
        assert client.get(path.format("a-1"), headers=_auth(keys.a_read)).status_code == 200
        # Another tenant's id answers exactly like an id nobody has.
        other = client.get(path.format("a-1"), headers=_auth(keys.b_read))
        unknown = client.get(path.format("zzz"), headers=_auth(keys.b_read))
        _error(other, 404, "video_not_found")
        assert (
            other.json()["error"]["message"].replace("a-1", "zzz")
            == unknown.json()["error"]["message"]
        )
    # The legacy (untenanted) layout is invisible to every key.
    _error(client.get("/videos/legacy", headers=_auth(keys.a_admin)), 404, "video_not_found")


def test_revocation_applies_to_the_running_api(client: httpx.Client, keys: Keys) -> None:
    assert client.get("/videos", headers=_auth(keys.a_read)).status_code == 200
    write_keys_file(keys.path, revoke_key(load_keys_file(keys.path), keys.a_read_entry.id))
    _error(client.get("/videos", headers=_auth(keys.a_read)), 401, "unauthorized")


def test_denials_are_logged_with_the_key_id_never_the_key(
    client: httpx.Client, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="vidloc.api.auth"):
        client.get("/videos", headers=_auth(keys.a_submit))
        client.get("/videos", headers=_auth(keys.a_read[:-2] + "xx"))
        client.get("/videos")
        client.request("GET", "/videos", headers=_auth(keys.a_read), content=b"x" * 70_000)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines
    submit_id = keys.a_submit.split("_")[1]
    assert f"key id {submit_id}" in lines[0] and "403" in lines[0]
    assert f"key id {keys.a_read_entry.id}" in lines[1] and "wrong secret" in lines[1]
    assert "key id -" in lines[2] and "no API key" in lines[2]
    assert f"key id {keys.a_read_entry.id}" in lines[3] and "413" in lines[3]
    text = "\n".join(lines)
    for key in (keys.a_read, keys.a_submit, keys.a_read[:-2] + "xx"):
        assert key not in text and key.split("_", 2)[2][:16] not in text


def test_rate_limit_is_per_key_with_retry_after(keys: Keys) -> None:
    settings = Settings(api_keys_file=keys.path, api_rate_per_s=0.01, api_rate_burst=3)
    app = create_app(settings, store=MemoryStore(), follow_bus=False, probes={})  # type: ignore[arg-type]
    base_url, stop = serve_in_thread(app)
    try:
        with httpx.Client(base_url=base_url, timeout=10.0) as http:
            codes = [http.get("/videos", headers=_auth(keys.a_read)).status_code for _ in range(4)]
            assert codes == [200, 200, 200, 429]
            limited = http.get("/videos", headers=_auth(keys.a_read))
            _error(limited, 429, "rate_limited")
            assert int(limited.headers["retry-after"]) >= 1
            # Another key has its own bucket.
            assert http.get("/videos", headers=_auth(keys.b_read)).status_code == 200
    finally:
        stop()


def test_size_limits_and_no_cors_by_default(client: httpx.Client, keys: Keys) -> None:
    _error(
        client.request("GET", "/videos", headers=_auth(keys.a_read), content=b"x" * 70_000),
        413,
        "request_too_large",
    )
    _error(client.get("/videos/a-1/events", params={"label": "x" * 9000}), 414, "uri_too_long")
    response = client.get(
        "/videos", headers={**_auth(keys.a_read), "Origin": "https://evil.example"}
    )
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers


def test_cors_when_configured(keys: Keys) -> None:
    settings = Settings(api_keys_file=keys.path, api_cors_origins="https://ui.example")
    app = create_app(settings, store=MemoryStore(), follow_bus=False, probes={})  # type: ignore[arg-type]
    base_url, stop = serve_in_thread(app)
    try:
        with httpx.Client(base_url=base_url, timeout=10.0) as http:
            pre = http.options(
                "/videos",
                headers={
                    "Origin": "https://ui.example",
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "authorization",
                },
            )
            assert pre.headers["access-control-allow-origin"] == "https://ui.example"
            other = http.get("/healthz", headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in other.headers
    finally:
        stop()


def test_viewer_shell_is_open_and_holds_no_data(client: httpx.Client) -> None:
    shell = client.get("/viewer/a-1")
    assert shell.status_code == 200 and shell.headers["cache-control"] == "no-store"
    assert 'data-video-id="a-1"' in shell.text and "sessionStorage" in shell.text
    assert "X-Amz" not in shell.text and "red circle" not in shell.text


def test_missing_keys_file_stops_the_start(tmp_path: Path) -> None:
    from vidloc.errors import ConfigError

    with pytest.raises(ConfigError, match="does not exist"):
        create_app(Settings(api_keys_file=tmp_path / "nope.json"), store=MemoryStore())  # type: ignore[arg-type]
