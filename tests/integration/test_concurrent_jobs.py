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
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline import REPO
from reliability import Ingest, WorkerGroup, fake_stats, set_faults, wait_group_stable

from devkit.fake_vlm.server import serve_in_thread
from devkit.synth.catalogue import standard_specs
from devkit.synth.render import ensure_rendered
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
    rig = WorkerGroup(
        stack,
        fake,
        tmp_path,
        "conc",
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
    rig = WorkerGroup(
        stack, fake, tmp_path, "conc", VIDLOC_WORKER_JOBS="4", VIDLOC_VLM_CONCURRENCY="2"
    )
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
