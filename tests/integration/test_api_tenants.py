"""Tenants end to end on the live stack: ``vidloc submit --tenant`` puts the video under the
tenant's prefix, a real worker stores the timeline under it and announces result and progress
events carrying the tenant, the API shows the video to that tenant's key only, and
``vidloc watch --tenant`` shows only that tenant's results."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from apistack import isolated_settings, wait_succeeded
from pipeline import REPO, Watcher, Workers

from devkit.serve_api import serve_in_thread
from devkit.synth.catalogue import standard_specs
from devkit.synth.render import ensure_rendered
from vidloc import names
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.app import create_app
from vidloc.api.keys import KeysFile, add_key, write_keys_file
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

# Unique per run: results on the shared topics from any other run are not this run's tenants'.
ACME, BRAVO = (f"{name}-{uuid.uuid4().hex[:8]}" for name in ("acme", "bravo"))


def _watch(env: dict[str, str], tenant: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vidloc", "watch", "--tenant", tenant, "--json", *extra],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_submitted_tenant_video_stays_the_tenants(stack: Settings, tmp_path: Path) -> None:
    settings = isolated_settings(stack, "tenants")
    env = {
        **os.environ,
        "VIDLOC_VIDEO_BUCKET": settings.video_bucket,
        "VIDLOC_TIMELINE_BUCKET": settings.timeline_bucket,
        "VIDLOC_LOCALIZER": "cv",
        "VIDLOC_WORK_DIR": str(tmp_path / "work"),
        "COLUMNS": "400",  # one line per queued file
    }
    video = ensure_rendered(
        {s.name: s for s in standard_specs()}["h264_mp4"], REPO / ".cache" / "test-media"
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    workers = Workers(settings, env, logs)
    watcher = Watcher(settings)
    watch_acme = _watch(env, ACME, "--count", "1", "--timeout", "120")
    watch_bravo = _watch(env, BRAVO, "--timeout", "60")
    try:
        for proc in (watch_acme, watch_bravo):
            assert proc.stderr is not None and "watching" in proc.stderr.readline()
        workers.start(1)
        done = subprocess.run(
            [sys.executable, "-m", "vidloc", "submit", "--tenant", ACME, str(video)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr + done.stdout
        match = re.search(r"as s3://\S+?/(\S+) \(video (\S+), job", done.stdout)
        assert match is not None, done.stdout
        key, vid = match.groups()
        assert key == f"tenants/{ACME}/uploads/{video.name}"
        result = wait_succeeded(watcher, vid, timeout_s=180)
        seen = watcher.seen
        acme_out, _ = watch_acme.communicate(timeout=150)
        bravo_out, _ = watch_bravo.communicate(timeout=90)
    finally:
        workers.stop()
        watcher.close()
        for proc in (watch_acme, watch_bravo):
            if proc.poll() is None:
                proc.kill()
            proc.communicate()  # closes its pipes
    assert result.tenant == ACME and result.timeline is not None
    assert result.timeline.key == names.timeline_key(vid, ACME)
    assert result.timeline.key.startswith(f"tenants/{ACME}/timelines/")
    # Our job's progress; another session's worker refusing the message (another bucket) may
    # add a "failed" progress event of its own, with no tenant (a refused message's source is
    # not trusted).
    ours = [p for p in seen.progress[vid] if p.stage != "failed"]
    assert ours and {p.tenant for p in ours} == {ACME}
    assert ObjectStore(settings).exists(settings.timeline_bucket, result.timeline.key)
    shown = subprocess.run(
        [sys.executable, "-m", "vidloc", "timeline", vid, "--tenant", ACME, "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0 and json.loads(shown.stdout)["video_id"] == vid, shown.stderr
    untenanted = subprocess.run(
        [sys.executable, "-m", "vidloc", "timeline", vid, "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert untenanted.returncode == 1

    # watch --tenant: acme's watcher printed the result, bravo's printed nothing.
    assert watch_acme.returncode == 0
    assert [json.loads(line)["video_id"] for line in acme_out.splitlines()] == [vid]
    assert vid not in bravo_out

    keys_path = tmp_path / "keys.json"
    file, _, acme_key = add_key(KeysFile(), ACME, ("read",))
    file, _, bravo_key = add_key(file, BRAVO, ("read",))
    write_keys_file(keys_path, file)
    app = create_app(settings.model_copy(update={"api_keys_file": keys_path}))
    base_url, stop = serve_in_thread(app)
    try:
        assert app.state.feed.caught_up.wait(30.0), app.state.feed.last_error
        with httpx.Client(base_url=base_url, timeout=15.0) as http:
            acme = {"Authorization": f"Bearer {acme_key}"}
            bravo = {"Authorization": f"Bearer {bravo_key}"}
            state = http.get(f"/videos/{vid}", headers=acme)
            assert state.status_code == 200 and state.json()["status"] == "succeeded"
            assert http.get(f"/videos/{vid}/timeline", headers=acme).json()["video_id"] == vid
            assert http.get(f"/videos/{vid}", headers=bravo).status_code == 404
            listed = http.get("/videos", headers=bravo).json()
            assert vid not in {v["video_id"] for v in listed["videos"]}
    finally:
        stop()
