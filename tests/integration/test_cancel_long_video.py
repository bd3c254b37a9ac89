"""Cancelling a long video mid-run with ``vidloc cancel``, on the real stack (docs/delivery.md
"Cancelling").

Two workers run the video's spans against a slow fake model; once the first partial result is
out, the user cancels. Read the way users must read results (``read_committed``): one failed
result ``cancelled`` (no DLQ record, no merge, the chunks paid in its usage), and once every span
order has ended (run to its end or stopped), the model is asked nothing more.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline import REPO
from reliability import Ingest, WorkerGroup, fake_stats, set_faults, wait_group_stable

from devkit.fake_vlm.server import serve_in_thread
from devkit.synth.render import ensure_rendered
from devkit.synth.spec import SyntheticEvent, VideoSpec
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

MEDIA_CACHE = REPO / ".cache" / "test-media"
CHUNK_S = 15.0
# Eight minutes in 32 chunks of 15 s: 16 spans of two chunks after the one-chunk lead-in, on
# two members of two span slots, one model request at a time each: about eight rounds of a
# slow model, of which the cancel lets one or two run.
CANCEL_ME = VideoSpec(
    name="long_cancel_h264",
    duration_s=480.0,
    fps=2.0,
    width=160,
    height=96,
    codec="h264",
    events=(SyntheticEvent("red circle", 20.0, 28.0), SyntheticEvent("green square", 300.0, 310.0)),
    gop=20,
)
CHUNKS = int(CANCEL_ME.duration_s // CHUNK_S)
MODEL_DELAY_S = 3.0
_STARTED = re.compile(r"(span \d+ of \d+) \([^)]*\): chunks")
_ENDED = re.compile(r"(span \d+ of \d+) \([^)]*\) (?:done:|cancelled by the user)")


@pytest.fixture
def fake() -> Iterator[str]:
    base_url, stop = serve_in_thread()
    yield base_url
    stop()


def _logs(group: WorkerGroup) -> str:
    return "".join(
        p.read_text(errors="replace") for p in sorted(group.log_dir.glob("worker-*.log"))
    )


def _spans(logs: str) -> tuple[set[str], set[str], int]:
    """Span orders started, span orders ended (run out or stopped), and how many there are."""
    counts = {int(n) for n in re.findall(r"span \d+ of (\d+) \(", logs)}
    return set(_STARTED.findall(logs)), set(_ENDED.findall(logs)), max(counts, default=0)


def test_a_long_video_cancelled_mid_run_fails_once_and_the_model_is_asked_no_more(
    stack: Settings, tmp_path: Path, fake: str
) -> None:
    clip = ensure_rendered(CANCEL_ME, MEDIA_CACHE)
    group = WorkerGroup(
        stack,
        fake,
        tmp_path,
        "cancel",
        VIDLOC_CHUNK_S=str(CHUNK_S),
        VIDLOC_SPAN_S="120",
        VIDLOC_REFINE="false",  # every model request is a chunk's
        VIDLOC_VLM_CONCURRENCY="1",  # a chunk's answer is checkpointed before the next asks
    )
    try:
        group.workers.start(2)
        wait_group_stable(group.log_dir, 2)
        # Every request answers after MODEL_DELAY_S: the video is still running when cancelled.
        set_faults(fake, [{"kind": "slow", "count": 10_000, "delay_s": MODEL_DELAY_S}])
        event = group.upload(clip)
        video_id = event.effective_video_id
        with Ingest(group.settings) as ingest:
            ingest.send(event)
        deadline = time.monotonic() + 90
        while not any(r.partial for r in group.watcher.seen.results.get(video_id, [])):
            assert time.monotonic() < deadline, group.workers.logs()
            group.watcher.drain(0.5)

        env = {
            **os.environ,
            "VIDLOC_VIDEO_BUCKET": group.bucket,
            "VIDLOC_TIMELINE_BUCKET": group.settings.timeline_bucket,
        }
        asked = subprocess.run(
            [sys.executable, "-m", "vidloc", "cancel", video_id],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert asked.returncode == 0, asked.stderr
        assert "cancel asked" in asked.stdout

        group.wait_results([video_id], timeout_s=90, settle_s=1.0)
        # Every span order ends: run out, or stopped when its member saw the marker.
        deadline = time.monotonic() + 60
        while True:
            started, ended, count = _spans(_logs(group))
            if count and len(ended) == count:
                break
            assert time.monotonic() < deadline, (started, ended, group.workers.logs())
            group.watcher.drain(0.5)
        noticed = fake_stats(fake)
        # Long enough for any member still going to ask the model again.
        settle_end = time.monotonic() + 2 * MODEL_DELAY_S
        while time.monotonic() < settle_end:
            group.watcher.drain(0.5)
        after = fake_stats(fake)
        assert after["requests"] == noticed["requests"] and after["in_flight"] == 0, (
            noticed,
            after,
        )
        assert after["requests"] < CHUNKS  # it stopped: not every chunk was asked for

        # One final result: failed, cancelled by the user, billed; no dead letter, no merge.
        # (Other tests' workers on the shared stack, groups of their own on another video
        # bucket, refuse our messages with bucket_not_allowed: theirs, not ours.)
        assert group.results([video_id]) == {video_id: ["failed"]}
        ours = [
            r
            for r in group.watcher.seen.results[video_id]
            if not r.partial and (r.error is None or r.error.code != "bucket_not_allowed")
        ]
        finals = {
            (r.event_id, r.error.code if r.error else None, r.error.message if r.error else None)
            for r in ours
        }
        assert len(finals) == 1
        (_, code, message), *_ = finals
        assert (code, message) == ("cancelled", "cancelled by the user")
        assert ours[0].usage.requests is not None
        assert 1 <= ours[0].usage.requests <= after["requests"]
        dead = [
            d.error.code
            for d in group.watcher.seen.dlq.get(video_id, [])
            if d.error.code != "bucket_not_allowed"
        ]
        assert dead == []
        logs = _logs(group)
        assert "merge read" not in logs and "job succeeded" not in logs
    finally:
        group.close()
