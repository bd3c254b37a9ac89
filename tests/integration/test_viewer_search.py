"""The viewer's search page in headless Chromium (issue 25): a search box over ``GET /search``
with the tab's API key, hits with their thumbnails, a click plays the event's clip (cut from a
real video in S3) in a ``<video>``; only the key's tenant's moments show; texts from the API are
shown as text. Two tenants' timelines on the real stack, with keys."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import cv2
import httpx
import numpy as np
import pytest
from apistack import isolated_settings, timeline_for, unique_id
from pipeline import REPO
from test_viewer import CHROMIUM, CHROMIUM_ARGS

from contracts import decode_timeline, encode
from devkit.serve_api import serve_in_thread
from devkit.synth.catalogue import standard_specs
from devkit.synth.render import ensure_rendered
from vidloc import names
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.app import create_app
from vidloc.api.keys import KeysFile, add_key, write_keys_file
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

OURS, THEIRS = (f"{name}-{uuid.uuid4().hex[:8]}" for name in ("ours", "theirs"))
# A description a model (or a stranger's prompt) could write: it must show as text.
HOSTILE = '<img src=x onerror="document.body.dataset.pwned=1"> red circle rolls by'
COLOURS = {"ev0": (255, 0, 0), "ev1": (0, 0, 255)}  # RGB of each event's thumbnail


@dataclass
class Site:
    url: str
    key: str
    video_id: str
    their_video_id: str  # another tenant's, with the same words
    settings: Settings


def _put(
    settings: Settings, tenant: str, video_id: str, *, video: Any = None, hostile: bool = False
) -> None:
    store = ObjectStore(settings)
    key = f"tenants/{tenant}/uploads/{video_id}.mp4"
    doc = timeline_for(
        video_id,
        settings.video_bucket,
        key,
        events=[("red circle", 1.0, 3.0), ("blue circle", 6.5, 9.0)],
    )
    if video is not None:
        info = store.upload_file(settings.video_bucket, key, video, content_type="video/mp4")
        doc["source"].update(etag=info.etag, size=info.size)  # the clip route checks the version
    folder = names.timeline_key(video_id, tenant).rsplit("/", 1)[0]
    for event in doc["events"]:
        event["thumbnail"] = f"thumbnails/{event['id']}.jpg"
        picture = np.zeros((180, 320, 3), dtype=np.uint8)
        picture[:, :] = COLOURS[event["id"]][::-1]
        ok, jpeg = cv2.imencode(".jpg", picture)
        assert ok
        store.put_bytes(
            settings.timeline_bucket, f"{folder}/{event['thumbnail']}", jpeg.tobytes(), "image/jpeg"
        )
    if hostile:
        doc["events"][0]["description"] = HOSTILE
    store.put_bytes(
        settings.timeline_bucket,
        names.timeline_key(video_id, tenant),
        encode(decode_timeline(doc)),
    )


@pytest.fixture(scope="module")
def site(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("viewsearch")
    settings = isolated_settings(stack, "viewsearch")
    keys_path = tmp / "keys.json"
    file, _, key = add_key(KeysFile(), OURS, ("read",))
    file, _, _ = add_key(file, THEIRS, ("read",))
    write_keys_file(keys_path, file)
    settings = settings.model_copy(
        update={
            "api_keys_file": keys_path,
            "search_index_path": tmp / "index.sqlite",
            "work_dir": tmp / "work",
        }
    )
    video = ensure_rendered(
        {s.name: s for s in standard_specs()}["h264_mp4"], REPO / ".cache" / "test-media"
    )
    ours = unique_id("ours")
    _put(settings, OURS, ours, video=video, hostile=True)
    theirs = unique_id("theirs")
    _put(settings, THEIRS, theirs, video=video)  # the same words, another tenant
    url, stop = serve_in_thread(create_app(settings, follow_bus=False))
    try:
        auth = {"Authorization": f"Bearer {key}"}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = httpx.get(f"{url}/search", params={"q": "circle"}, headers=auth).json()
            if found["index"]["ready"] and found["count"]:
                break
            time.sleep(0.3)
        yield Site(url, key, ours, theirs, settings)
    finally:
        stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def test_search_page_finds_shows_thumbnails_and_plays_the_clip(browser: Any, site: Site) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    try:
        page.goto(f"{site.url}/search/view")
        page.fill("#q", "circle")
        page.click("#searchform button")
        # No key in this tab yet: the API's 401 asks for one, then the search runs again.
        page.wait_for_selector("#keyform", state="visible", timeout=10000)
        problems.clear()  # the 401 itself is logged by Chromium as a failed resource
        page.fill("#key", site.key)
        page.click("#keyform button")
        page.wait_for_function("() => document.body.dataset.state === 'results'", timeout=15000)
        hits = page.eval_on_selector_all(
            ".hit", "els => els.map(e => [e.dataset.videoId, e.dataset.eventId])"
        )
        # Only the key's tenant's moments, both of them.
        assert sorted(map(tuple, hits)) == [(site.video_id, "ev0"), (site.video_id, "ev1")]
        # Each hit's thumbnail is its own picture, fetched with the key.
        page.wait_for_function(
            "() => { const i = [...document.querySelectorAll('.hit img.thumb')];"
            " return i.length === 2 && i.every(x => x.complete && x.naturalWidth === 320); }",
            timeout=10000,
        )
        for event_id, (red, _, blue) in COLOURS.items():
            image = page.locator(f'.hit[data-event-id="{event_id}"] img.thumb')
            shot = cv2.imdecode(np.frombuffer(image.screenshot(), np.uint8), cv2.IMREAD_COLOR)
            b, _, r = (int(v) for v in shot[shot.shape[0] // 2, shot.shape[1] // 2])
            assert abs(r - red) < 30 and abs(b - blue) < 30, (event_id, r, b)
        # The model's text is shown as text: no element made of it, nothing run.
        desc = page.locator('.hit[data-event-id="ev0"] .desc')
        assert desc.text_content() == HOSTILE
        assert desc.locator("img").count() == 0
        assert page.evaluate("document.body.dataset.pwned") is None
        # A click plays the event's clip from the store.
        page.click('.hit[data-event-id="ev0"]')
        page.wait_for_function("() => document.body.dataset.state === 'playing'", timeout=60000)
        page.wait_for_function(
            "() => { const v = document.getElementById('clip');"
            " return v.readyState >= 2 && v.currentTime > 0.2; }",
            timeout=20000,
        )
        src = page.evaluate("document.getElementById('clip').currentSrc")
        endpoint = urlsplit(site.settings.s3_endpoint)
        assert urlsplit(src).netloc == endpoint.netloc
        assert page.evaluate("document.body.dataset.playing") == f"{site.video_id}/ev0"
        assert page.evaluate("document.body.dataset.clipMode") in ("copy", "reencode")
        # The clip is the event's 2 s (a cut from 1 s to 3 s), not the whole 12 s video.
        duration = page.evaluate("document.getElementById('clip').duration")
        assert 1.5 < duration < 3.5, duration
        assert problems == []  # no CSP refusal, no script error
    finally:
        page.close()


def test_clip_route_names_its_url_as_json_for_the_page(site: Site) -> None:
    auth = {"Authorization": f"Bearer {site.key}"}
    path = f"{site.url}/videos/{site.video_id}/events/ev1/clip"
    linked = httpx.get(path, headers={**auth, "Accept": "application/json"}, timeout=120)
    assert linked.status_code == 200, linked.text
    link = linked.json()
    assert link["mode"] in ("copy", "reencode") and link["first_frame_s"] <= 6.5 + 0.1
    assert linked.headers["X-Vidloc-Clip-Mode"] == link["mode"]
    clip = httpx.get(link["url"], timeout=30)
    assert clip.status_code == 200 and clip.content[4:8] == b"ftyp"
    # Without asking for JSON: the redirect, as before.
    redirected = httpx.get(path, headers=auth, timeout=120)
    assert (
        redirected.status_code == 302
        and redirected.headers["location"].split("?")[0] == (link["url"].split("?")[0])
    )


def test_another_tenants_moments_stay_hidden(site: Site) -> None:
    auth = {"Authorization": f"Bearer {site.key}"}
    found = httpx.get(f"{site.url}/search", params={"q": "circle"}, headers=auth).json()
    assert {hit["video_id"] for hit in found["results"]} == {site.video_id}
    # Their video's clip and thumbnail, asked with our key, are 404s like an unknown video's.
    for what in ("clip", "thumbnail"):
        missing = httpx.get(
            f"{site.url}/videos/{site.their_video_id}/events/ev0/{what}",
            headers={**auth, "Accept": "application/json"},
        )
        assert missing.status_code == 404, what
        assert missing.json()["error"]["code"] == "video_not_found"
    # The page itself holds no data and needs no key.
    shell = httpx.get(f"{site.url}/search/view")
    assert shell.status_code == 200 and "circle" not in shell.text
    assert shell.headers["cache-control"] == "no-store"
    csp = shell.text.split('http-equiv="Content-Security-Policy" content="', 1)[1].split('"')[0]
    assert f"media-src {urlsplit(site.settings.s3_endpoint).scheme}://" in csp
    assert "connect-src 'self'" in csp and "img-src blob:" in csp
