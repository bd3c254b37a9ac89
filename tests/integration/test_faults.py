"""Faults injected into the real pipeline: killed and stopped workers, a dead, slow or flaky model
endpoint, an S3 store restarted mid-job, jobs that outlast the consumer's poll interval.

Every test runs its own ``vidloc worker`` processes (their own consumer group, parked at the end
of video.ingest) against a fake model server whose admin API injects faults and counts calls.
The poll interval is cut to 3 s everywhere, so every multi-second job here also proves that a
job longer than ``max.poll.interval.ms`` keeps its partition.
"""

from __future__ import annotations

import json
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pipeline import REPO, Outputs, Watcher, Workers
from reliability import (
    Ingest,
    assert_one_outcome,
    fake_stats,
    files_under,
    record,
    set_faults,
    upload,
    wait_group_stable,
)

from contracts import IngestEvent
from devkit.fake_vlm.server import serve_in_thread
from devkit.synth.catalogue import standard_specs
from devkit.synth.render import ensure_rendered
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

MEDIA_CACHE = REPO / ".cache" / "test-media"
POLL_INTERVAL_MS = 3000


@pytest.fixture(scope="module")
def clips() -> dict[str, Path]:
    specs = {s.name: s for s in standard_specs()}
    return {name: ensure_rendered(specs[name], MEDIA_CACHE) for name in ("h264_mp4", "long_h264")}


@pytest.fixture(scope="module")
def fake() -> Iterator[str]:
    base_url, stop = serve_in_thread()
    yield base_url
    stop()


@dataclass
class Rig:
    settings: Settings
    store: ObjectStore
    bucket: str
    workers: Workers
    watcher: Watcher
    log_dir: Path
    work_dir: Path

    def submit(self, path: Path, **options: object) -> IngestEvent:
        key = f"faults-{uuid.uuid4().hex[:8]}/{path.name}"
        event = upload(self.store, self.bucket, key, path)
        if options:
            event = event.model_copy(update={"options": event.options.model_copy(update=options)})
        with Ingest(self.settings) as ingest:
            ingest.send(event)
        return event

    def wait_progress(self, video_id: str, chunks_done: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.watcher.drain(0.5)
            done = [p.chunks_done for p in self.watcher.seen.progress.get(video_id, [])]
            if done and max(done) >= chunks_done:
                return
        raise AssertionError(
            f"{video_id} never reached {chunks_done} chunks\n{self.workers.logs()}"
        )

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.log_dir.glob("worker-*.log"))


@pytest.fixture
def rig_factory(stack: Settings, fake: str, tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(extra_env: dict[str, str] | None = None, *, vlm_url: str | None = None) -> Rig:
        bucket = f"faults-{uuid.uuid4().hex[:8]}"
        settings = stack.model_copy(update={"video_bucket": bucket})
        store = ObjectStore(settings)
        store.ensure_bucket(bucket)
        work_dir = tmp_path / f"work-{len(rigs)}"
        log_dir = tmp_path / f"logs-{len(rigs)}"
        log_dir.mkdir()
        env = {
            "VIDLOC_VIDEO_BUCKET": bucket,
            "VIDLOC_VLM_BASE_URL": vlm_url or fake,
            "VIDLOC_VLM_API_KEY": "test-key-not-secret",
            "VIDLOC_VLM_MAX_BACKOFF_S": "1",
            "VIDLOC_RETRY_BACKOFF_MAX_S": "2",
            "VIDLOC_SAMPLE_FPS": "1",
            # Requests are counted per chunk below; refinement (on by default) adds its own.
            "VIDLOC_REFINE": "0",
            "VIDLOC_VLM_CONCURRENCY": "1",
            "VIDLOC_WORK_DIR": str(work_dir),
            "VIDLOC_WORKER_MAX_POLL_INTERVAL_MS": str(POLL_INTERVAL_MS),
            **(extra_env or {}),
        }
        rig = Rig(
            settings,
            store,
            bucket,
            Workers(settings, env, log_dir),
            Watcher(settings),
            log_dir,
            work_dir,
        )
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.workers.stop()
        rig.watcher.close()


def _timeline(rig: Rig, seen: Outputs, video_id: str) -> dict[str, object]:
    result = seen.results[video_id][0]
    assert result.status == "succeeded" and result.timeline is not None, result.error
    doc: dict[str, object] = json.loads(
        rig.store.get_bytes(result.timeline.bucket, result.timeline.key)
    )
    return doc


def start_slow_long_job(rig: Rig, fake: str, clips: dict[str, Path], *, chunks_done: int) -> str:
    """One worker on the long clip in 10 s chunks, each model answer 1 s late; returns once
    ``chunks_done`` chunks are in, i.e. with the job surely mid-flight."""
    set_faults(fake, [{"kind": "slow", "delay_s": 1.0, "count": 1000}])
    rig.workers.start(1)
    wait_group_stable(rig.log_dir, 1)
    video_id = rig.submit(clips["long_h264"], chunk_s=10.0).effective_video_id
    rig.wait_progress(video_id, chunks_done)
    return video_id


def test_sigkill_mid_job_another_member_finishes_without_paying_twice(
    rig_factory: Callable[..., Rig], fake: str, clips: dict[str, Path]
) -> None:
    rig = rig_factory()
    video_id = start_slow_long_job(rig, fake, clips, chunks_done=3)
    rig.workers.procs[0].send_signal(signal.SIGKILL)
    rig.workers.procs[0].wait(10)
    before_restart = fake_stats(fake)["requests"]
    rig.workers.start(1)
    seen = rig.watcher.wait_results([video_id], timeout_s=180)
    assert_one_outcome(seen, video_id)
    doc = _timeline(rig, seen, video_id)
    chunks = doc["sampling"]["chunks"]  # type: ignore[index]
    requests = fake_stats(fake)["requests"]
    # vlm_concurrency=1: at most the one chunk in flight at the kill is asked again.
    assert requests <= chunks + 1, (requests, chunks)
    assert before_restart >= 3
    # The dead worker's download was swept by the member that started after it.
    assert files_under(rig.work_dir) == []
    record(
        "faults",
        "sigkill_mid_job",
        survived=True,
        chunks=chunks,
        model_calls=requests,
        results=len(seen.results[video_id]),
    )


def test_sigterm_hands_the_job_back_and_leaves_the_group(
    rig_factory: Callable[..., Rig], fake: str, clips: dict[str, Path]
) -> None:
    rig = rig_factory()
    video_id = start_slow_long_job(rig, fake, clips, chunks_done=2)
    proc = rig.workers.procs[0]
    stopped_at = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    stop_s = time.monotonic() - stopped_at
    log = rig.log_text()
    assert "handed back unfinished" in log and "(1 handed back)" in log, log[-3000:]
    assert not seen_any_result(rig, video_id)
    rig.workers.start(1)
    seen = rig.watcher.wait_results([video_id], timeout_s=180)
    assert_one_outcome(seen, video_id)
    doc = _timeline(rig, seen, video_id)
    chunks = doc["sampling"]["chunks"]  # type: ignore[index]
    assert fake_stats(fake)["requests"] <= chunks + 1
    record("faults", "sigterm_mid_job", survived=True, stop_s=round(stop_s, 1))


def seen_any_result(rig: Rig, video_id: str) -> bool:
    rig.watcher.drain(0.5)
    return bool(rig.watcher.seen.results.get(video_id))


def test_a_dead_model_endpoint_pauses_the_queue_instead_of_dead_lettering_it(
    rig_factory: Callable[..., Rig], clips: dict[str, Path]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    rig = rig_factory(
        {
            "VIDLOC_VLM_MAX_RETRIES": "1",
            "VIDLOC_CIRCUIT_FAILURE_THRESHOLD": "2",
            "VIDLOC_CIRCUIT_COOLDOWN_S": "3",
            # Far shorter than the outage: without the breaker every job would be dead-lettered.
            "VIDLOC_JOB_RETRY_DEADLINE_S": "4",
        },
        vlm_url=url,
    )
    rig.workers.start(2)
    wait_group_stable(rig.log_dir, 2)
    ids = [rig.submit(clips["h264_mp4"]).effective_video_id for _ in range(3)]
    time.sleep(15)
    rig.watcher.drain(1.0)
    assert not any(rig.watcher.seen.results.get(v) for v in ids), "a job failed during the outage"
    assert not any(rig.watcher.seen.dlq.get(v) for v in ids)
    assert "circuit open" in rig.log_text()
    _, stop = serve_in_thread(port)  # the endpoint comes back at the same address
    try:
        seen = rig.watcher.wait_results(ids, timeout_s=120)
    finally:
        stop()
    for video_id in ids:
        assert_one_outcome(seen, video_id)
        assert seen.results[video_id][0].status == "succeeded"
        assert video_id not in seen.dlq
    record("faults", "model_connection_refused_15s", survived=True, jobs=len(ids), dlq=0)


def test_429_storm_5xx_slow_dropped_and_truncated_answers_are_ridden_out(
    rig_factory: Callable[..., Rig], fake: str, clips: dict[str, Path]
) -> None:
    rig = rig_factory({"VIDLOC_VLM_TIMEOUT_S": "2", "VIDLOC_VLM_MAX_RETRIES": "12"})
    faults = [
        {"kind": "429", "retry_after": 1, "count": 4},
        {"kind": "503", "count": 2},
        {"kind": "500", "count": 1},
        {"kind": "slow", "delay_s": 4.0, "count": 2},  # slower than the 2 s timeout
        {"kind": "drop_connection", "count": 1},
        {"kind": "truncated", "count": 1},
    ]
    set_faults(fake, faults)
    rig.workers.start(1)
    wait_group_stable(rig.log_dir, 1)
    video_id = rig.submit(clips["h264_mp4"]).effective_video_id
    seen = rig.watcher.wait_results([video_id], timeout_s=180)
    assert_one_outcome(seen, video_id)
    doc = _timeline(rig, seen, video_id)
    assert doc["events"], doc
    stats = fake_stats(fake)
    assert stats["faults_applied"].get("429") == 4 and stats["faults_applied"].get("503") == 2
    assert stats["faults_applied"].get("slow") == 2
    for fault in faults:
        record("faults", f"model_{fault['kind']}", survived=True, count=fault["count"])


def test_jobs_longer_than_the_poll_interval_keep_their_partition(
    rig_factory: Callable[..., Rig], fake: str, clips: dict[str, Path]
) -> None:
    rig = rig_factory()
    set_faults(fake, [{"kind": "slow", "delay_s": 1.5, "count": 1000}])
    rig.workers.start(2)
    wait_group_stable(rig.log_dir, 2)
    assignments_before = rig.log_text().count("partitions assigned")
    started = time.monotonic()
    event = rig.submit(clips["h264_mp4"], chunk_s=3.0)
    seen = rig.watcher.wait_results([event.effective_video_id], timeout_s=120)
    took_s = time.monotonic() - started
    assert took_s * 1000 > 2 * POLL_INTERVAL_MS, f"the job was too quick to prove it: {took_s}"
    assert_one_outcome(seen, event.effective_video_id)
    assert len(seen.results[event.effective_video_id]) == 1
    doc = _timeline(rig, seen, event.effective_video_id)
    assert fake_stats(fake)["requests"] == doc["sampling"]["chunks"]  # type: ignore[index]
    assert rig.log_text().count("partitions assigned") == assignments_before, "a rebalance"
    record(
        "faults",
        "job_longer_than_poll_interval",
        survived=True,
        job_s=round(took_s, 1),
        poll_interval_s=POLL_INTERVAL_MS / 1000,
    )
