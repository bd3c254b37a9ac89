"""The viewer shows each event's thumbnail in its bar's tooltip (headless Chromium): the page
names a presigned URL per event, its CSP admits the store's origin, the picture loads."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest
from apistack import isolated_settings, timeline_for, unique_id
from pipeline import REPO
from test_viewer import CHROMIUM, CHROMIUM_ARGS, open_page

from contracts import decode_timeline, encode
from devkit.serve_api import serve_in_thread
from devkit.synth.catalogue import standard_specs
from devkit.synth.render import ensure_rendered
from vidloc import names
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.app import create_app
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

EVENTS = [("red circle", 1.0, 3.0), ("green square", 5.0, 7.5)]
COLOURS = {"ev0": (255, 0, 0), "ev1": (0, 255, 0)}  # RGB of each event's picture


@pytest.fixture(scope="module")
def page_url(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = isolated_settings(stack, "viewthumbs").model_copy(
        update={"search_index_path": tmp_path_factory.mktemp("vt") / "s.sqlite"}
    )
    video = ensure_rendered(
        {s.name: s for s in standard_specs()}["h264_mp4"], REPO / ".cache" / "test-media"
    )
    store = ObjectStore(settings)
    vid = unique_id("viewthumbs")
    key = f"uploads/{vid}.mp4"
    store.upload_file(settings.video_bucket, key, video, content_type="video/mp4")
    doc = timeline_for(vid, settings.video_bucket, key, events=EVENTS)
    folder = names.timeline_key(vid).rsplit("/", 1)[0]
    for event in doc["events"]:
        event["thumbnail"] = f"thumbnails/{event['id']}.jpg"
        picture = np.zeros((180, 320, 3), dtype=np.uint8)
        picture[:, :] = COLOURS[event["id"]][::-1]  # BGR for OpenCV
        ok, jpeg = cv2.imencode(".jpg", picture)
        assert ok
        store.put_bytes(
            settings.timeline_bucket, f"{folder}/{event['thumbnail']}", jpeg.tobytes(), "image/jpeg"
        )
    store.put_bytes(settings.timeline_bucket, names.timeline_key(vid), encode(decode_timeline(doc)))
    url, stop = serve_in_thread(create_app(settings, follow_bus=False))
    try:
        yield f"{url}/videos/{vid}/view"
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


def test_hovering_a_bar_shows_its_events_picture(browser: Any, page_url: str) -> None:
    page, problems = open_page(browser, page_url)
    try:
        for event_id, (red, green, _) in COLOURS.items():
            page.locator(f'.bar[data-event-id="{event_id}"]').hover()
            image = page.locator("#tip img.thumb")
            assert image.is_visible()
            page.wait_for_function(
                "() => { const i = document.querySelector('#tip img.thumb');"
                " return i && i.complete && i.naturalWidth > 0; }",
                timeout=10000,
            )
            width = page.evaluate("document.querySelector('#tip img.thumb').naturalWidth")
            assert width == 320
            # The picture drawn is the event's own (red for ev0, green for ev1).
            shot = cv2.imdecode(np.frombuffer(image.screenshot(), np.uint8), cv2.IMREAD_COLOR)
            b, g, r = (int(v) for v in shot[shot.shape[0] // 2, shot.shape[1] // 2])
            assert abs(r - red) < 30 and abs(g - green) < 30, (r, g, b)
            page.mouse.move(0, 0)
        assert problems == []  # no CSP refusal, no script error
    finally:
        page.close()
