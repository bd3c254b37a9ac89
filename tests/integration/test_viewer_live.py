"""The viewer follows a live stream (headless Chromium, as test_viewer.py): the stream's timeline
object is written into S3 in steps, and the open page shows new and extended events and gaps
without a reload, then stops asking once the stream has ended. Both ways of opening it: the
page itself (API without keys) and the keyed shell (which polls with the key and posts the
timeline into its sandboxed frame)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from apistack import isolated_settings, timeline_for, unique_id
from test_viewer import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, POSITION_TOLERANCE_PX

from devkit.serve_api import serve_in_thread
from vidloc import names
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.app import create_app
from vidloc.settings import Settings
from vidloc.viewer.render import POLL_MS

pytestmark = pytest.mark.integration

WAIT_S = 20.0


def stream_doc(stream_id: str, step: int, tenant: str | None = None) -> dict[str, Any]:
    """The stream's timeline after each of three updates: open, grown (an event extended, a
    gap, a new event), ended."""
    root = names.tenant_root(tenant)
    events = {
        1: [("red circle", 1.5, 8.0)],
        2: [("red circle", 1.5, 9.5), ("gap", 10.0, 13.0), ("green square", 14.0, 18.0)],
        3: [("red circle", 1.5, 9.5), ("gap", 10.0, 13.0), ("green square", 14.0, 21.0)],
    }[step]
    covered = {1: 8.0, 2: 20.0, 3: 24.0}[step]
    doc = timeline_for(stream_id, "videos", f"{root}streams/{stream_id}/00000001.ts", events=events)
    doc["video"]["duration_s"] = covered
    for number, event in enumerate(doc["events"]):
        event["id"] = f"s-{number:05d}"
        if event["label"] == "gap":
            event.update(source="stream", description="no video from the source")
    doc["stream"] = {
        "stream_id": stream_id,
        "last_seq": {1: 1, 2: 4, 3: 6}[step],
        "segments": {1: 2, 2: 5, 3: 7}[step],
        "covered_s": covered,
        "ended": step == 3,
        "lag_s": 1.2,
        "gaps": [{"start_s": 10.0, "end_s": 13.0, "reason": "source_drop"}] if step > 1 else [],
        "next_event": len(events),
    }
    return doc


def put(settings: Settings, doc: dict[str, Any], tenant: str | None = None) -> None:
    key = names.timeline_key(doc["video_id"], tenant)
    ObjectStore(settings).put_bytes(settings.timeline_bucket, key, json.dumps(doc).encode())


def wait_for(probe: Any, expected: Any, what: str) -> None:
    """Poll from outside the page (the shell's CSP refuses string predicates)."""
    deadline = time.monotonic() + WAIT_S
    got = None
    while time.monotonic() < deadline:
        got = probe()
        if got == expected:
            return
        time.sleep(0.1)
    pytest.fail(f"{what}: got {got!r}, wanted {expected!r}")


def bars(frame: Any) -> dict[str, dict[str, Any]]:
    return {
        b["id"]: b
        for b in frame.eval_on_selector_all(
            ".bar",
            """els => els.map(b => {
                const r = b.getBoundingClientRect(), lane = b.parentElement.getBoundingClientRect();
                return {id: b.dataset.eventId, label: b.dataset.label, start: +b.dataset.start,
                        end: +b.dataset.end, gap: b.classList.contains('gap'),
                        left: r.left - lane.left, width: r.width, lane: lane.width};
            })""",
        )
    }


def follow_the_stream(frame: Any, settings: Settings, stream_id: str, tenant: str | None) -> None:
    """Shared by both ways in: the page at step 1, grown at step 2, ended at step 3."""
    first = bars(frame)
    assert {(b["label"], b["end"]) for b in first.values()} == {("red circle", 8.0)}
    assert frame.inner_text("#live").startswith("live")
    put(settings, stream_doc(stream_id, 2), tenant)
    wait_for(lambda: len(bars(frame)), 3, "bars after the stream grew")
    grown = bars(frame)
    # The same event, extended (not a second bar); the gap and the new event beside it.
    assert grown["s-00000"]["end"] == 9.5 and grown["s-00000"]["label"] == "red circle"
    assert grown["s-00001"]["gap"] and grown["s-00001"]["label"] == "gap"
    assert (grown["s-00002"]["label"], grown["s-00002"]["start"]) == ("green square", 14.0)
    for bar in grown.values():  # every bar re-placed on the longer stream (20 s)
        assert bar["left"] == pytest.approx(
            bar["lane"] * bar["start"] / 20.0, abs=POSITION_TOLERANCE_PX
        )
        width = bar["lane"] * (bar["end"] - bar["start"]) / 20.0
        assert bar["width"] == pytest.approx(width, abs=POSITION_TOLERANCE_PX)
    tracks = frame.eval_on_selector_all(".track", "els => els.map(t => t.dataset.label)")
    assert tracks == ["gap", "green square", "red circle"]
    assert frame.eval_on_selector_all("tr.ev", "els => els.length") == 3
    assert frame.inner_text(".sub .count") == "3"
    assert "20.0 s covered" in frame.inner_text("#live")
    put(settings, stream_doc(stream_id, 3), tenant)
    wait_for(lambda: frame.evaluate("() => document.body.dataset.live"), "0", "ended")
    assert frame.inner_text("#live").startswith("stream ended")
    assert bars(frame)["s-00002"]["end"] == 21.0


@pytest.fixture(scope="module")
def live_settings(stack: Settings) -> Settings:
    return isolated_settings(stack, "viewer-live")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def watch_requests(page: Any) -> tuple[list[str], list[str]]:
    problems: list[str] = []
    urls: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("request", lambda r: urls.append(r.url))
    return problems, urls


def assert_polling_stopped(urls: list[str]) -> None:
    asked = sum(u.endswith("/timeline") for u in urls)
    assert asked >= 2  # it did poll while the stream ran
    time.sleep(3 * POLL_MS / 1000)
    assert sum(u.endswith("/timeline") for u in urls) == asked, "still polling an ended stream"


def test_viewer_page_follows_a_growing_stream(browser: Any, live_settings: Settings) -> None:
    stream_id = unique_id("live-view")
    put(live_settings, stream_doc(stream_id, 1))
    url, stop = serve_in_thread(create_app(live_settings, follow_bus=False))
    page = browser.new_page(viewport={"width": 1200, "height": 720})
    problems, urls = watch_requests(page)
    try:
        page.goto(f"{url}/videos/{stream_id}/view")
        follow_the_stream(page, live_settings, stream_id, None)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "viewer-live.png"), full_page=True)
        assert_polling_stopped(urls)
    finally:
        page.close()
        stop()
    # The player cannot play an MPEG-TS segment in Chromium; nothing else may complain.
    assert [p for p in problems if "media" not in p.lower()] == []


def test_keyed_shell_follows_a_growing_stream_without_showing_the_key(
    browser: Any, live_settings: Settings, tmp_path: Any
) -> None:
    from vidloc.api.keys import KeysFile, add_key, write_keys_file

    keys_path = tmp_path / "keys.json"
    keys, _, key = add_key(KeysFile(), "acme", ("read",))
    write_keys_file(keys_path, keys)
    settings = live_settings.model_copy(update={"api_keys_file": keys_path})
    stream_id = unique_id("live-keyed")
    put(settings, stream_doc(stream_id, 1, "acme"), "acme")
    url, stop = serve_in_thread(create_app(settings, follow_bus=False))
    page = browser.new_page(viewport={"width": 1200, "height": 720})
    problems, urls = watch_requests(page)
    try:
        page.goto(f"{url}/viewer/{stream_id}")
        page.fill("#key", key)
        page.click("button[type=submit]")
        wait_for(lambda: page.evaluate("() => document.body.dataset.state"), "shown", "shown")
        page.frame_locator("#view").locator("#live").wait_for(timeout=10000)
        viewer = next(f for f in page.frames if f != page.main_frame)
        follow_the_stream(viewer, settings, stream_id, "acme")
        wait_for(lambda: page.evaluate("() => document.body.dataset.live"), "ended", "shell")
        assert_polling_stopped(urls)
    finally:
        page.close()
        stop()
    assert [p for p in problems if "media" not in p.lower()] == []
    secret = key.split("_", 2)[2]
    assert urls and not [u for u in urls if secret in u or key in u]
