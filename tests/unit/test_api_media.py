"""GET /videos/{id}/events/{event_id}/thumbnail over an in-memory store, with tenants' keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_fixtures import MemoryStore, timeline_doc

from contracts import decode_timeline, encode
from devkit.serve_api import serve_in_thread
from vidloc import names
from vidloc.api.app import create_app
from vidloc.api.keys import KeysFile, add_key, write_keys_file
from vidloc.settings import Settings

JPEG = b"\xff\xd8\xff\xe0fake-jpeg\xff\xd9"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    store = MemoryStore()
    doc = timeline_doc("cam-1")
    doc["events"][0]["thumbnail"] = "thumbnails/e1.jpg"
    doc["events"][1]["thumbnail"] = "thumbnails/e2.jpg"  # named, but its object is missing
    for tenant in ("acme", "bravo"):
        key = names.timeline_key("cam-1" if tenant == "acme" else "cam-9", tenant)
        doc["video_id"] = "cam-1" if tenant == "acme" else "cam-9"
        store.objects[("timelines", key)] = encode(decode_timeline(doc))
        folder = key.rsplit("/", 1)[0]
        store.objects[("timelines", f"{folder}/thumbnails/e1.jpg")] = JPEG
    keys_path = tmp_path / "keys.json"
    file, _, acme = add_key(KeysFile(), "acme", ("read",))
    file, _, bravo = add_key(file, "bravo", ("read",))
    write_keys_file(keys_path, file)
    settings = Settings(api_keys_file=keys_path, search_index_path=tmp_path / "s.sqlite")
    app = create_app(settings, store=store, follow_bus=False, probes={})  # type: ignore[arg-type]
    base_url, stop = serve_in_thread(app)
    try:
        with httpx.Client(base_url=base_url, timeout=10.0) as http:
            yield http, {"acme": acme, "bravo": bravo}
    finally:
        stop()


def get(http: httpx.Client, key: str, path: str) -> httpx.Response:
    return http.get(path, headers={"Authorization": f"Bearer {key}"})


def test_an_events_thumbnail_is_served_to_its_tenant(
    api: tuple[httpx.Client, dict[str, str]],
) -> None:
    http, keys = api
    response = get(http, keys["acme"], "/videos/cam-1/events/e1/thumbnail")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg" and response.content == JPEG


@pytest.mark.parametrize(
    ("key", "path", "code"),
    [
        ("bravo", "/videos/cam-1/events/e1/thumbnail", "video_not_found"),  # acme's video
        ("acme", "/videos/cam-9/events/e1/thumbnail", "video_not_found"),  # bravo's video
        ("acme", "/videos/nope/events/e1/thumbnail", "video_not_found"),
        ("acme", "/videos/cam-1/events/nope/thumbnail", "event_not_found"),
        ("acme", "/videos/cam-1/events/e2/thumbnail", "thumbnail_not_found"),  # object missing
        ("acme", "/videos/cam-1/events/e3/thumbnail", "thumbnail_not_found"),  # none kept
    ],
)
def test_what_has_no_thumbnail_is_a_clear_404(
    api: tuple[httpx.Client, dict[str, str]], key: str, path: str, code: str
) -> None:
    http, keys = api
    response = get(http, keys[key], path)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == code
