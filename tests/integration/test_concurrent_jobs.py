"""Several jobs at once in one worker, on the real stack, read the way consumers must read results
(``read_committed``: the test's Watcher is a TopicReader, which reads committed data only).

- jobs of one worker overlap at the model, and each video is announced exactly once;
- a finished job's result waits for every earlier job of its partition: a slow job at a low
  offset holds back the results of fast ones behind it, so a SIGKILL then loses nothing and, on
  the replay from the slow job's offset, announces nothing twice.

Other engineers' workers share this stack; every assertion looks at this test's video ids only.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline import REPO, Watcher, Workers
from reliability import Ingest, fake_stats, set_faults, upload, wait_group_stable

from contracts import IngestEvent
from devkit.fake_vlm.server import serve_in_thread
from devkit.synth.catalogue import standard_specs
from devkit.synth.render import ensure_rendered
from vidloc import names
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

MEDIA_CACHE = REPO / ".cache" / "test-media"


@pytest.fixture(scope="module")
def clips() -> dict[str, Path]:
    specs = {s.name: s for s in standard_specs()}
    return {name: ensure_rendered(specs[name], MEDIA_CACHE) for name in ("h264_mp4", "long_h264")}


@pytest.fixture
def fake() -> Iterator[str]:
    base_url, stop = serve_in_thread()  # its own: the peak it counts is this test's alone
    yield base_url
    stop()


class Rig:
    def __init__(self, stack: Settings, fake: str, tmp_path: Path, **env: str) -> None:
        self.bucket = f"conc-{uuid.uuid4().hex[:8]}"
        self.settings = stack.model_copy(update={"video_bucket": self.bucket})
        self.store = ObjectStore(self.settings)
        self.store.ensure_bucket(self.bucket)
        self.log_dir = tmp_path / "logs"
        self.log_dir.mkdir()
        self.workers = Workers(
            self.settings,
            {
                "VIDLOC_VIDEO_BUCKET": self.bucket,
                "VIDLOC_VLM_BASE_URL": fake,
                "VIDLOC_VLM_API_KEY": "test-key-not-secret",
                "VIDLOC_SAMPLE_FPS": "1",
                "VIDLOC_CHUNK_S": "30",
                "VIDLOC_METRICS_PORT": "0",
                "VIDLOC_WORK_DIR": str(tmp_path / "work"),
                **env,
            },
            self.log_dir,
        )
        self.watcher = Watcher(self.settings)

    def upload(self, path: Path, **options: object) -> IngestEvent:
        key = f"conc-{uuid.uuid4().hex[:8]}/{path.name}"
        event = upload(self.store, self.bucket, key, path)
        if options:
            event = event.model_copy(update={"options": event.options.model_copy(update=options)})
        return event

    def timeline_stored(self, video_id: str) -> bool:
        return self.store.exists(self.settings.timeline_bucket, names.timeline_key(video_id))

    def results(self, video_ids: list[str]) -> dict[str, list[str]]:
        """Statuses announced per video, by this test's workers only: other tests' workers on
        the shared stack (groups of their own, another video bucket) refuse our messages."""
        return {
            v: [
                r.status
                for r in self.watcher.seen.results.get(v, [])
                if r.error is None or r.error.code != "bucket_not_allowed"
            ]
            for v in video_ids
        }

    def wait_results(self, video_ids: list[str], timeout_s: float, settle_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not all(self.results(video_ids).values()):
            self.watcher.drain()
        settle_end = time.monotonic() + settle_s
        while time.monotonic() < settle_end:
            self.watcher.drain(0.5)

    def close(self) -> None:
        self.workers.stop()
        self.watcher.close()


@pytest.mark.parametrize(
    "transactions",
    [
        pytest.param("true", id="transactions"),
        pytest.param("false", id="plain-commits-for-brokers-without-transactions"),
    ],
)
def test_one_worker_runs_several_jobs_at_once_and_announces_each_once(
    stack: Settings, fake: str, clips: dict[str, Path], tmp_path: Path, transactions: str
) -> None:
    rig = Rig(
        stack,
        fake,
        tmp_path,
        VIDLOC_WORKER_JOBS="4",
        VIDLOC_VLM_CONCURRENCY="4",
        VIDLOC_WORKER_TRANSACTIONS=transactions,
    )
    try:
        # Each 12 s clip is one chunk, one model request; a late answer keeps requests overlapping
        # only if several jobs run at once (one job at a time would keep one request in flight).
        set_faults(fake, [{"kind": "slow", "delay_s": 1.5, "count": 1000}])
        rig.workers.start(1)
        wait_group_stable(rig.log_dir, 1)
        events = [rig.upload(clips["h264_mp4"]) for _ in range(6)]
        with Ingest(rig.settings) as ingest:
            video_ids = [ingest.send(event) for event in events]
        rig.wait_results(video_ids, timeout_s=120, settle_s=5.0)
        assert rig.results(video_ids) == {v: ["succeeded"] for v in video_ids}, rig.workers.logs()
        assert fake_stats(fake)["peak_in_flight"] >= 2, rig.workers.logs()
    finally:
        rig.close()


def test_results_wait_for_the_slow_job_before_them_and_a_sigkill_loses_or_repeats_none(
    stack: Settings, fake: str, clips: dict[str, Path], tmp_path: Path
) -> None:
    rig = Rig(stack, fake, tmp_path, VIDLOC_WORKER_JOBS="4", VIDLOC_VLM_CONCURRENCY="2")
    try:
        set_faults(fake, [{"kind": "slow", "delay_s": 1.5, "count": 1000}])
        rig.workers.start(1)
        wait_group_stable(rig.log_dir, 1)
        # One partition, in this order: a 100 s video in 5 s chunks (20 late answers, two at a
        # time) at the lowest offset, then three one-chunk videos that finish long before it.
        slow = rig.upload(clips["long_h264"], chunk_s=5.0)
        fast = [rig.upload(clips["h264_mp4"]) for _ in range(3)]
        with Ingest(rig.settings) as ingest:
            slow_id = ingest.send(slow, partition=0)
            fast_ids = [ingest.send(event, partition=0) for event in fast]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not all(map(rig.timeline_stored, fast_ids)):
            rig.watcher.drain(0.5)
        assert all(map(rig.timeline_stored, fast_ids)), rig.workers.logs()
        assert not rig.timeline_stored(slow_id), "the slow job finished first; nothing was shown"
        rig.watcher.drain(2.0)
        # Finished, stored, but not announced: their offsets are behind the slow job's.
        assert rig.results(fast_ids) == {v: [] for v in fast_ids}, rig.workers.logs()

        proc = rig.workers.procs[0]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        rig.workers.start(1)
        every = [slow_id, *fast_ids]
        rig.wait_results(every, timeout_s=240, settle_s=8.0)
        assert rig.results(every) == {v: ["succeeded"] for v in every}, rig.workers.logs()
    finally:
        rig.close()
