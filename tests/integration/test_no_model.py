"""A job that asks for labels or a prompt on a worker with no model configured says so.

Tried as a new user would: a worker started without ``VIDLOC_VLM_*``, so it runs the cv
localizer, and ``vidloc submit --labels ... --prompt ...``. The labels cannot be looked for;
the result and the timeline carry a warning, and what ``submit --wait`` prints shows it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from pipeline import REPO, Watcher, Workers
from reliability import wait_group_stable
from rich.console import Console

from contracts import ResultEvent, decode_timeline
from devkit.synth.render import ensure_rendered
from devkit.synth.spec import SyntheticEvent, VideoSpec
from vidloc.adapters.object_store import ObjectStore
from vidloc.cli.follow import print_result
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

SPEC = VideoSpec(
    name="no_model_h264",
    duration_s=6.0,
    fps=10.0,
    width=320,
    height=180,
    codec="h264",
    cuts=(3.0,),
    events=(SyntheticEvent("red circle", 1.0, 4.0),),
)


def test_labels_without_a_model_are_said_to_be_ignored(stack: Settings, tmp_path: Path) -> None:
    clip = ensure_rendered(SPEC, REPO / ".cache" / "test-media")
    suffix = uuid.uuid4().hex[:8]
    settings = stack.model_copy(
        update={"video_bucket": f"nomodel-{suffix}", "timeline_bucket": f"nomodel-tl-{suffix}"}
    )
    store = ObjectStore(settings)
    store.ensure_bucket(settings.video_bucket)
    store.ensure_bucket(settings.timeline_bucket)
    env = {
        "VIDLOC_VIDEO_BUCKET": settings.video_bucket,
        "VIDLOC_TIMELINE_BUCKET": settings.timeline_bucket,
        "VIDLOC_METRICS_PORT": "0",
        # As a new user starts it: no model endpoint configured.
        "VIDLOC_VLM_BASE_URL": "",
        "VIDLOC_VLM_API_KEY": "",
    }
    pool = Workers(settings, env, tmp_path)
    pool.start(1)
    watcher = Watcher(settings)
    try:
        wait_group_stable(tmp_path, 1)
        proc = subprocess.run(
            [sys.executable, "-m", "vidloc", "submit", str(clip), "--labels", "red square",
             "--prompt", "when is the red square visible"],
            cwd=REPO, env={**os.environ, **env, "COLUMNS": "200"}, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        (video_id,) = set(re.findall(r"video\s+(v-[0-9a-f]+)", proc.stdout))
        result = own_result(watcher, video_id)
    finally:
        watcher.close()
        pool.stop()
    assert result.status == "succeeded", (result.error, pool.logs())
    assert [w.code for w in result.warnings] == ["labels_ignored_no_model"]
    assert result.timeline is not None
    timeline = decode_timeline(store.get_bytes(result.timeline.bucket, result.timeline.key))
    assert timeline.localizer == "cv"
    assert timeline.warnings == result.warnings
    # What `vidloc submit --wait` prints for this result.
    console = Console(record=True, width=200)
    print_result(console, store, clip.name, result)
    printed = console.export_text()
    assert "warning labels_ignored_no_model: labels 'red square' and the prompt ignored" in printed


def own_result(watcher: Watcher, video_id: str, timeout_s: float = 120) -> ResultEvent:
    """This worker's result: workers of another test session on this stack refuse jobs of
    buckets not theirs (bucket_not_allowed), and announce that too."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        watcher.drain()
        for result in watcher.seen.results.get(video_id, []):
            if result.error is None or result.error.code != "bucket_not_allowed":
                return result
    raise AssertionError(f"no result within {timeout_s:.0f} s for {video_id}")
