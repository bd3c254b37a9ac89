"""Thumbnails end to end: a real worker runs a generated video, stores a JPEG per event beside
the timeline from the frames it decoded, and the API serves them (and the index knows)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from apistack import isolated_settings, wait_succeeded
from pipeline import REPO, Watcher, Workers

from contracts import decode_timeline
from devkit.serve_api import serve_in_thread
from devkit.synth.catalogue import standard_specs
from devkit.synth.render import ensure_rendered
from vidloc import names
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.app import create_app
from vidloc.settings import Settings

pytestmark = pytest.mark.integration


def test_a_jobs_events_get_thumbnails_served_by_the_api(stack: Settings, tmp_path: Path) -> None:
    settings = isolated_settings(stack, "thumbs")
    env = {
        **os.environ,
        "VIDLOC_VIDEO_BUCKET": settings.video_bucket,
        "VIDLOC_TIMELINE_BUCKET": settings.timeline_bucket,
        "VIDLOC_LOCALIZER": "cv",
        "VIDLOC_WORK_DIR": str(tmp_path / "work"),
        "COLUMNS": "400",
    }
    env.pop("VIDLOC_TENANT", None)
    video = ensure_rendered(
        {s.name: s for s in standard_specs()}["h264_mp4"], REPO / ".cache" / "test-media"
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    workers = Workers(settings, env, logs)
    watcher = Watcher(settings)
    try:
        workers.start(1)
        done = subprocess.run(
            [sys.executable, "-m", "vidloc", "submit", str(video)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr + done.stdout
        match = re.search(r"\(video (\S+), job", done.stdout)
        assert match is not None, done.stdout
        vid = match.group(1)
        try:
            wait_succeeded(watcher, vid, timeout_s=180)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{workers.logs()}") from None
    finally:
        workers.stop()
        watcher.close()

    store = ObjectStore(settings)
    key = names.timeline_key(vid)
    timeline = decode_timeline(store.get_bytes(settings.timeline_bucket, key))
    assert timeline.events, "the cv localizer found nothing to show"
    named = [e for e in timeline.events if e.thumbnail is not None]
    # Every event of a job that decoded its frames gets one (no chunk came from a checkpoint).
    assert len(named) == len(timeline.events)
    folder = key.rsplit("/", 1)[0]

    app = create_app(settings.model_copy(update={"search_index_path": tmp_path / "s.sqlite"}))
    base_url, stop = serve_in_thread(app)
    try:
        with httpx.Client(base_url=base_url, timeout=15.0) as http:
            for event in named:
                stored = store.get_bytes(settings.timeline_bucket, f"{folder}/{event.thumbnail}")
                picture = cv2.imdecode(np.frombuffer(stored, np.uint8), cv2.IMREAD_COLOR)
                assert picture is not None and max(picture.shape[:2]) <= 320
                served = http.get(f"/videos/{vid}/events/{event.id}/thumbnail")
                assert served.status_code == 200 and served.content == stored
                assert served.headers["content-type"] == "image/jpeg"
            assert app.state.search.indexer.ready.wait(30.0)
            label = named[0].label
            found = http.get("/search", params={"q": label, "video": vid}).json()["results"]
            assert found and all(r["thumbnail_url"] for r in found)
            url = found[0]["thumbnail_url"]
            assert url.endswith("/thumbnail") and http.get(url).status_code == 200
    finally:
        stop()
