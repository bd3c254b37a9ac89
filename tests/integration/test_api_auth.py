"""Who may see what, on the live stack: API keys x tenants x routes, the presigned video URL
itself, and the loopback-only default of an API without keys.

Tenant ``acme`` and tenant ``bravo`` each own a video (a real object under ``tenants/<t>/`` in
the video bucket, its timeline under ``tenants/<t>/timelines/`` in the timeline bucket) and bus
events published on the real topics. Every cell of the matrix is one request.
"""

from __future__ import annotations

import html
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from apistack import isolated_settings, now, timeline_for, unique_id

from contracts import decode_progress, decode_result, decode_timeline, encode
from devkit.serve_api import serve_in_thread
from vidloc import names
from vidloc.adapters.kafka import EventPublisher
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.app import create_app
from vidloc.api.keys import KeysFile, add_key, revoke_key, write_keys_file
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42" + uuid.uuid4().bytes * 64
EVENTS = [("red circle", 1.0, 3.0), ("green square", 5.0, 7.5)]


@dataclass
class World:
    settings: Settings
    base_url: str
    keys: dict[str, str]  # row name -> the key presented ("" = none)
    video: dict[str, str]  # tenant -> its video id
    running: dict[str, str]  # tenant -> a video with only bus events


def _put_tenant_video(settings: Settings, tenant: str, video_id: str) -> None:
    store = ObjectStore(settings)
    key = f"tenants/{tenant}/uploads/{video_id}.mp4"
    store.put_bytes(settings.video_bucket, key, VIDEO_BYTES, content_type="video/mp4")
    doc = timeline_for(video_id, settings.video_bucket, key, events=EVENTS)
    store.put_bytes(
        settings.timeline_bucket,
        names.timeline_key(video_id, tenant),
        encode(decode_timeline(doc)),
    )


def _publish(settings: Settings, tenant: str, running_id: str, failed_id: str) -> None:
    progress = decode_progress(
        {
            "schema": "vidloc.progress.v1",
            "event_id": unique_id("auth"),
            "video_id": running_id,
            "job_id": f"job-{running_id}",
            "tenant": tenant,
            "stage": "localizing",
            "chunks_done": 1,
            "chunks_total": 4,
            "at": now(),
        }
    )
    failed = decode_result(
        {
            "schema": "vidloc.result.v1",
            "event_id": unique_id("auth"),
            "video_id": failed_id,
            "job_id": f"job-{failed_id}",
            "tenant": tenant,
            "status": "failed",
            "error": {"code": "not_a_video", "message": "no decodable video stream"},
            "created_at": now(),
        }
    )
    with EventPublisher(settings) as publisher:
        publisher.publish(names.TOPIC_PROGRESS, running_id, encode(progress))
        publisher.publish(names.TOPIC_RESULTS, failed_id, encode(failed))


@pytest.fixture(scope="module")
def world(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    keys_path = tmp_path_factory.mktemp("keys") / "keys.json"
    file = KeysFile()
    keys: dict[str, str] = {"none": "", "wrong": "vk_aaaaaaaaaaaa_" + "x" * 43}
    for row, tenant, scopes in (
        ("read_a", "acme", ("read",)),
        ("submit_a", "acme", ("submit",)),
        ("admin_a", "acme", ("admin",)),
        ("read_b", "bravo", ("read",)),
        ("revoked_a", "acme", ("read",)),
    ):
        file, entry, keys[row] = add_key(file, tenant, scopes)
    file = revoke_key(file, entry.id)  # the last one: revoked_a
    write_keys_file(keys_path, file)
    settings = isolated_settings(stack, "auth").model_copy(
        update={"api_keys_file": keys_path, "api_presign_ttl_s": 120}
    )
    video = {t: unique_id(f"auth-{t}") for t in ("acme", "bravo")}
    running = {t: unique_id(f"auth-run-{t}") for t in ("acme", "bravo")}
    failed = {t: unique_id(f"auth-bad-{t}") for t in ("acme", "bravo")}
    for tenant in ("acme", "bravo"):
        _put_tenant_video(settings, tenant, video[tenant])
        _publish(settings, tenant, running[tenant], failed[tenant])
    app = create_app(settings)
    base_url, stop = serve_in_thread(app)
    try:
        assert app.state.feed.caught_up.wait(30.0), app.state.feed.last_error
        yield World(settings, base_url, keys, video, running)
    finally:
        stop()


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def _player_url(page: str) -> str | None:
    match = re.search(r'<video id="player"[^>]* src="([^"]+)"', page)
    return html.unescape(match.group(1)) if match else None


ROUTES = ("list", "get", "timeline", "events", "view", "presigned", "metrics", "readyz")
# None in the presigned column: the key never obtains a URL (its view request is refused).
MATRIX = [
    pytest.param("none", (401, 401, 401, 401, 401, None, 401, 401), id="no-key"),
    pytest.param("wrong", (401, 401, 401, 401, 401, None, 401, 401), id="wrong-key"),
    pytest.param("revoked_a", (401, 401, 401, 401, 401, None, 401, 401), id="revoked-acme"),
    pytest.param("read_a", (200, 200, 200, 200, 200, 200, 403, 200), id="read-acme"),
    pytest.param("submit_a", (403, 403, 403, 403, 403, None, 403, 403), id="submit-acme"),
    pytest.param("admin_a", (200, 200, 200, 200, 200, 200, 200, 200), id="admin-acme"),
    pytest.param("read_b", (200, 404, 404, 404, 404, None, 403, 200), id="read-bravo"),
]


@pytest.mark.parametrize(("row", "expected"), MATRIX)
def test_matrix(world: World, row: str, expected: tuple[int | None, ...]) -> None:
    """Every route asked about acme's video with each key."""
    vid = world.video["acme"]
    got: dict[str, int | None] = {}
    with httpx.Client(base_url=world.base_url, headers=_headers(world.keys[row])) as http:
        listed = http.get("/videos")
        got["list"] = listed.status_code
        got["get"] = http.get(f"/videos/{vid}").status_code
        got["timeline"] = http.get(f"/videos/{vid}/timeline").status_code
        got["events"] = http.get(
            f"/videos/{vid}/events", params={"label": "red circle"}
        ).status_code
        view = http.get(f"/videos/{vid}/view")
        got["view"] = view.status_code
        url = _player_url(view.text) if view.status_code == 200 else None
        got["presigned"] = httpx.get(url).status_code if url else None
        got["metrics"] = http.get("/metrics").status_code
        got["readyz"] = http.get("/readyz").status_code
    assert got == dict(zip(ROUTES, expected, strict=True))

    responses = [listed, view]
    for response in responses:
        if response.status_code >= 400:  # the API's one error shape, nothing else
            assert set(response.json()) == {"error"}, response.text
            if response.status_code == 401:
                assert response.headers["www-authenticate"].startswith("Bearer")
    if listed.status_code == 200:
        ids = {v["video_id"] for v in listed.json()["videos"]}
        tenant = "acme" if row.endswith("_a") else "bravo"
        other = "bravo" if tenant == "acme" else "acme"
        # Its own stored video and its own bus-only job; nothing of the other tenant's.
        assert {world.video[tenant], world.running[tenant]} <= ids
        assert not {world.video[other], world.running[other]} & ids
    if url is not None:
        assert httpx.get(url).content == VIDEO_BYTES


def test_another_tenants_id_reads_like_an_unknown_one(world: World) -> None:
    with httpx.Client(base_url=world.base_url, headers=_headers(world.keys["read_b"])) as http:
        theirs = http.get(f"/videos/{world.video['acme']}/timeline").json()
        nobody = http.get(f"/videos/{world.video['acme']}x/timeline").json()
        run = http.get(f"/videos/{world.running['acme']}")
    assert theirs["error"]["code"] == nobody["error"]["code"] == "video_not_found"
    assert run.status_code == 404


def test_presigned_url_is_scoped_to_one_object_and_expires(world: World) -> None:
    with httpx.Client(base_url=world.base_url, headers=_headers(world.keys["read_a"])) as http:
        url = _player_url(http.get(f"/videos/{world.video['acme']}/view").text)
    assert url is not None and "X-Amz-Expires=120" in url
    # The signature covers the key: the same URL for bravo's object is refused by the store.
    other = url.replace(
        f"tenants/acme/uploads/{world.video['acme']}",
        f"tenants/bravo/uploads/{world.video['bravo']}",
    )
    assert other != url and httpx.get(other).status_code == 403
    # Unsigned, the object is private.
    assert httpx.get(url.split("?")[0]).status_code == 403
    # A URL presigned for 1 s is refused once it has expired.
    short = ObjectStore(world.settings).presigned_get_url(
        world.settings.video_bucket, f"tenants/acme/uploads/{world.video['acme']}.mp4", 1
    )
    assert httpx.get(short).status_code == 200
    time.sleep(2.5)
    assert httpx.get(short).status_code == 403


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _outside_address() -> str | None:
    """An address of this machine that is not loopback (None on a machine with none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET: no packet is sent for UDP connect
            address = str(sock.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


@contextmanager
def _serving(env: dict[str, str], log: Path, *args: str) -> Iterator[None]:
    """``vidloc api`` in a subprocess until the block ends; its output goes to ``log``."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vidloc", "api", "--no-follow", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield
        finally:
            proc.terminate()
            proc.wait(10)


def _wait_up(url: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"{url} never answered: {log.read_text(errors='replace')}")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VIDLOC_API_KEYS_FILE"}
    return {**env, **extra}


def test_without_keys_the_api_serves_loopback_only(stack: Settings, tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "api.log"
    with _serving(_env(), log, "--port", str(port)):
        _wait_up(f"http://127.0.0.1:{port}/healthz", log)
        # No keys: the loopback user is the single, untenanted user.
        assert httpx.get(f"http://127.0.0.1:{port}/videos").status_code == 200
        outside = _outside_address()
        if outside is not None:
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"http://{outside}:{port}/healthz", timeout=2.0)


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_without_keys_a_public_bind_is_refused(stack: Settings, host: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vidloc", "api", "--host", host, "--port", str(_free_port())],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert f"refusing to serve on {host!r} without API keys" in done.stderr
    assert "VIDLOC_API_KEYS_FILE" in done.stderr


def test_with_keys_a_public_bind_serves_and_demands_a_key(stack: Settings, tmp_path: Path) -> None:
    keys_path = tmp_path / "keys.json"
    file, _, key = add_key(KeysFile(), "acme", ("read",))
    write_keys_file(keys_path, file)
    port = _free_port()
    log = tmp_path / "api.log"
    env = _env(VIDLOC_API_KEYS_FILE=str(keys_path))
    with _serving(env, log, "--host", "0.0.0.0", "--port", str(port)):
        _wait_up(f"http://127.0.0.1:{port}/healthz", log)
        host = _outside_address() or "127.0.0.1"
        assert httpx.get(f"http://{host}:{port}/videos").status_code == 401
        assert httpx.get(f"http://{host}:{port}/videos", headers=_headers(key)).status_code == 200
