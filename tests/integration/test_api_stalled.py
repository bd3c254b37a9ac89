"""A worker killed mid-job: the API shows the video ``stalled`` once no progress has come for
VIDLOC_API_STALLED_AFTER_S, and ``running`` again when the redelivered job reports."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from apistack import isolated_settings
from pipeline import REPO, Workers
from reliability import Ingest, set_faults, upload, wait_group_stable

from devkit.fake_vlm.server import serve_in_thread as serve_fake
from devkit.serve_api import serve_in_thread
from devkit.synth.catalogue import standard_specs
from devkit.synth.render import ensure_rendered
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.app import create_app
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

STALLED_AFTER_S = 4.0


def _wait_for(
    http: httpx.Client, video_id: str, ok: Callable[[dict[str, object]], bool], what: str
) -> dict[str, object]:
    deadline = time.monotonic() + 120
    seen: list[object] = []
    while time.monotonic() < deadline:
        response = http.get(f"/videos/{video_id}")
        if response.status_code == 200:
            state: dict[str, object] = response.json()
            if not seen or seen[-1] != state["status"]:
                seen.append(state["status"])
            if ok(state):
                return state
        time.sleep(0.25)
    pytest.fail(f"{video_id} never {what}; statuses seen: {seen}")


def test_a_killed_workers_job_is_stalled_until_redelivered(stack: Settings, tmp_path: Path) -> None:
    settings = isolated_settings(stack, "stalled").model_copy(
        update={"api_stalled_after_s": STALLED_AFTER_S}
    )
    fake, stop_fake = serve_fake()
    # Every model answer takes 1.5 s, so the job is surely mid-flight when its worker dies.
    set_faults(fake, [{"kind": "slow", "delay_s": 1.5, "count": 1000}])
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {
        "VIDLOC_VIDEO_BUCKET": settings.video_bucket,
        "VIDLOC_TIMELINE_BUCKET": settings.timeline_bucket,
        "VIDLOC_VLM_BASE_URL": fake,
        "VIDLOC_VLM_API_KEY": "test-key-not-secret",
        "VIDLOC_SAMPLE_FPS": "1",
        "VIDLOC_VLM_CONCURRENCY": "1",
        "VIDLOC_WORK_DIR": str(tmp_path / "work"),
    }
    workers = Workers(settings, env, logs)
    app = create_app(settings)
    base_url, stop_api = serve_in_thread(app)
    try:
        assert app.state.feed.caught_up.wait(30.0), app.state.feed.last_error
        workers.start(1)
        wait_group_stable(logs, 1)
        clip = ensure_rendered(
            {s.name: s for s in standard_specs()}["long_h264"], REPO / ".cache" / "test-media"
        )
        store = ObjectStore(settings)
        event = upload(store, settings.video_bucket, f"stall-{uuid.uuid4().hex[:8]}/v.mp4", clip)
        event = event.model_copy(
            update={"options": event.options.model_copy(update={"chunk_s": 5.0})}
        )
        with Ingest(settings) as ingest:
            ingest.send(event)
        vid = event.effective_video_id
        with httpx.Client(base_url=base_url, timeout=10.0) as http:
            running = _wait_for(
                http,
                vid,
                lambda s: s["status"] == "running" and s["chunks_done"] not in (None, 0),
                "ran",
            )
            workers.procs[0].send_signal(signal.SIGKILL)
            workers.procs[0].wait(10)
            stalled = _wait_for(http, vid, lambda s: s["status"] == "stalled", "stalled")
            assert stalled["job_id"] == running["job_id"]
            listed = http.get("/videos", params={"status": "stalled"}).json()
            assert vid in {v["video_id"] for v in listed["videos"]}
            workers.start(1)  # the redelivered job reports progress again
            _wait_for(http, vid, lambda s: s["status"] in ("running", "succeeded"), "resumed")
            done = _wait_for(http, vid, lambda s: s["status"] == "succeeded", "succeeded")
            assert done["has_timeline"] is True
    finally:
        workers.stop()
        stop_api()
        stop_fake()
