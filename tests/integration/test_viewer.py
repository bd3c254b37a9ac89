"""The timeline viewer in headless Chromium (Debian's chromium driven by Playwright).

A real synthetic video is uploaded so the player can load and seek it through the presigned
URL; its ground-truth events become the timeline. Screenshots are kept under artifacts/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apistack import isolated_settings, put_timeline, timeline_for, unique_id
from pipeline import REPO

from devkit.serve_api import serve_in_thread
from devkit.synth.catalogue import standard_specs
from devkit.synth.render import ensure_rendered
from devkit.synth.spec import VideoSpec
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.app import create_app
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "artifacts"
MEDIA_CACHE = REPO / ".cache" / "test-media"
POSITION_TOLERANCE_PX = 2.0
SEEK_TOLERANCE_S = 0.15


@pytest.fixture(scope="module")
def spec() -> VideoSpec:
    return next(s for s in standard_specs() if s.name == "h264_mp4")


@pytest.fixture(scope="module")
def viewer_settings(stack: Settings) -> Settings:
    return isolated_settings(stack, "viewer")


@pytest.fixture(scope="module")
def video_id(viewer_settings: Settings, spec: VideoSpec) -> str:
    path = ensure_rendered(spec, MEDIA_CACHE)
    vid = unique_id("viewer")
    key = f"uploads/{vid}.mp4"
    ObjectStore(viewer_settings).upload_file(
        viewer_settings.video_bucket, key, path, content_type="video/mp4"
    )
    put_timeline(viewer_settings, timeline_for(vid, viewer_settings.video_bucket, key, spec))
    return vid


@pytest.fixture(scope="module")
def base_url(viewer_settings: Settings, video_id: str) -> Iterator[str]:
    url, stop = serve_in_thread(create_app(viewer_settings, follow_bus=False))
    yield url
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


def open_page(browser: Any, url: str) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1200, "height": 720})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto(url)
    # The player must really load the video (a seek needs its metadata).
    page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=15000)
    return page, problems


def check_bars(page: Any, spec: VideoSpec) -> None:
    """One track per label, one bar per event, each placed at start/duration of its lane."""
    bars = page.eval_on_selector_all(
        ".bar",
        """els => els.map(b => {
            const r = b.getBoundingClientRect(), lane = b.parentElement.getBoundingClientRect();
            return {label: b.dataset.label, start: +b.dataset.start, end: +b.dataset.end,
                    left: r.left - lane.left, width: r.width, lane: lane.width};
        })""",
    )
    tracks = page.eval_on_selector_all(".track", "els => els.map(t => t.dataset.label)")
    assert sorted(tracks) == sorted({e.label for e in spec.events})
    got = sorted((b["label"], b["start"], b["end"]) for b in bars)
    assert got == sorted((e.label, e.start_s, e.end_s) for e in spec.events)
    for bar in bars:
        lane = bar["lane"]
        assert bar["left"] == pytest.approx(
            lane * bar["start"] / spec.duration_s, abs=POSITION_TOLERANCE_PX
        )
        width = lane * (bar["end"] - bar["start"]) / spec.duration_s
        assert bar["width"] == pytest.approx(width, abs=POSITION_TOLERANCE_PX)


def click_seeks(page: Any, spec: VideoSpec) -> None:
    event = max(spec.events, key=lambda e: e.start_s)  # the farthest seek
    bar = page.locator(f'.bar[data-start="{event.start_s:g}"][data-label="{event.label}"]')
    bar.hover()
    tip = page.locator("#tip")
    assert tip.is_visible() and f"{event.label} from {event.start_s:g} s" in tip.inner_text()
    bar.click()
    page.wait_for_function(
        "t => { const v = document.getElementById('player');"
        " return !v.seeking && Math.abs(v.currentTime - t) < 0.5; }",
        arg=event.start_s,
        timeout=10000,
    )
    current = page.evaluate("document.getElementById('player').currentTime")
    assert current == pytest.approx(event.start_s, abs=SEEK_TOLERANCE_S)
    # Let the frame at the new position paint before any screenshot.
    page.wait_for_function("document.getElementById('player').readyState >= 2", timeout=10000)


def test_viewer_page_in_chromium(
    browser: Any, base_url: str, video_id: str, spec: VideoSpec
) -> None:
    page, problems = open_page(browser, f"{base_url}/videos/{video_id}/view")
    try:
        check_bars(page, spec)
        text = page.inner_text("body")
        for shown in ("qwen/qwen3-vl-8b-instruct", "Find the coloured shapes", "0.0028 CNY"):
            assert shown in text
        assert "1 fps, 30 s chunks" in page.inner_text(".sampling")
        click_seeks(page, spec)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "viewer.png"), full_page=True)
    finally:
        page.close()
    assert problems == []


def test_exported_page_works_offline_from_a_file(
    browser: Any, viewer_settings: Settings, video_id: str, spec: VideoSpec, tmp_path: Path
) -> None:
    """``vidloc timeline ID --html`` writes one file that works with no API running."""
    out = tmp_path / "timeline.html"
    env = {
        **os.environ,  # the stack's endpoints, wherever this run put them
        "VIDLOC_VIDEO_BUCKET": viewer_settings.video_bucket,
        "VIDLOC_TIMELINE_BUCKET": viewer_settings.timeline_bucket,
    }
    done = subprocess.run(
        [sys.executable, "-m", "vidloc", "timeline", video_id, "--html", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    page, problems = open_page(browser, out.as_uri())
    try:
        check_bars(page, spec)
        click_seeks(page, spec)
        page.screenshot(path=str(ARTIFACTS / "viewer-export.png"), full_page=True)
    finally:
        page.close()
    assert problems == []


def _wait_state(page: Any, state: str, timeout_s: float = 15.0) -> None:
    """Poll the shell's data-state from outside: its CSP (no 'unsafe-eval') refuses the
    string predicates wait_for_function would evaluate in the page."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if page.evaluate("() => document.body.dataset.state") == state:
            return
        time.sleep(0.1)
    pytest.fail(f"the viewer shell never reached {state!r}")


@pytest.fixture(scope="module")
def keyed(viewer_settings: Settings, spec: VideoSpec, tmp_path_factory: Any) -> Iterator[Any]:
    """An API with keys, a video of tenant acme, a read key for it: (base URL, id, key)."""
    from vidloc import names
    from vidloc.api.keys import KeysFile, add_key, write_keys_file

    keys_path = tmp_path_factory.mktemp("viewer-keys") / "keys.json"
    keys, _, key = add_key(KeysFile(), "acme", ("read",))
    write_keys_file(keys_path, keys)
    settings = viewer_settings.model_copy(update={"api_keys_file": keys_path})
    vid = unique_id("viewer-acme")
    source = f"tenants/acme/uploads/{vid}.mp4"
    store = ObjectStore(settings)
    store.upload_file(
        settings.video_bucket, source, ensure_rendered(spec, MEDIA_CACHE), content_type="video/mp4"
    )
    doc = timeline_for(vid, settings.video_bucket, source, spec)
    store.put_bytes(
        settings.timeline_bucket, names.timeline_key(vid, "acme"), json.dumps(doc).encode()
    )
    url, stop = serve_in_thread(create_app(settings, follow_bus=False))
    yield url, vid, key
    stop()


def test_keyed_viewer_never_puts_the_key_in_a_url(
    browser: Any, keyed: Any, spec: VideoSpec
) -> None:
    base_url, vid, key = keyed
    page = browser.new_page(viewport={"width": 1200, "height": 720})
    problems: list[str] = []
    urls: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("request", lambda r: urls.append(r.url))
    try:
        page.goto(f"{base_url}/viewer/{vid}")
        page.fill("#key", "vk_aaaaaaaaaaaa_" + "x" * 43)
        page.click("button[type=submit]")
        _wait_state(page, "error-401")
        problems.clear()  # the browser logs the refused fetch as a console error
        page.fill("#key", key)
        page.click("button[type=submit]")
        _wait_state(page, "shown")
        frame = page.frame_locator("#view")
        frame.locator("#player").wait_for(timeout=10000)
        viewer = next(f for f in page.frames if f != page.main_frame)
        viewer.wait_for_function("document.getElementById('player').readyState >= 1", timeout=15000)
        check_bars(viewer, spec)
        click_seeks(viewer, spec)
        # The sandboxed viewer cannot read the key the shell keeps.
        probe = "() => { try { return sessionStorage.length; } catch (e) { return 'blocked'; } }"
        assert viewer.evaluate(probe) == "blocked"
        assert page.evaluate("sessionStorage.getItem('vidloc-api-key')") == key
        src = viewer.evaluate("() => document.getElementById('player').currentSrc")
        assert "X-Amz-Expires=300" in src  # the player's URL is the short-lived one
        # A reload in the same tab shows the page without asking again.
        page.reload()
        _wait_state(page, "shown")
        page.screenshot(path=str(ARTIFACTS / "viewer-keyed.png"), full_page=True)
    finally:
        page.close()
    assert problems == []
    secret = key.split("_", 2)[2]
    assert urls and not [u for u in urls if secret in u or key in u]
