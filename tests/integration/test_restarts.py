"""Kafka and the S3 store stopped and restarted while a job runs, on a stack of this module's own.

The shared stack must stay up for every other test, so this module brings up a second Kafka and
versitygw on other ports (reusing the built jars and binary in .cache) and stops components of
that one mid-job. A job either completes after recovery or fails with a transient-error code
after the configured deadline; nothing is lost and nothing is announced twice.
"""

from __future__ import annotations

import gc
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline import REPO, Watcher, Workers, own_stack
from reliability import Ingest, assert_one_outcome, record, set_faults, upload, wait_group_stable

from devkit.stack import stack_command
from devkit.synth.catalogue import spec_named
from devkit.synth.render import ensure_rendered
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings

# kafka-python 3.0.12 drops the socket of a refused reconnect without closing it
# (kafka/net/inet.py sock_connect); while a broker is down every client in this process leaks
# one per attempt, and the garbage collector closes them with a ResourceWarning in whichever
# test runs then. That is the library's leak, not vidloc's; the module collects them itself.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

KAFKA_PORT, CONTROLLER_PORT, S3_PORT = 29092, 29093, 29000


@pytest.fixture(scope="module", autouse=True)
def _collect_leaked_sockets() -> Iterator[None]:
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture(scope="module")
def second_stack(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with own_stack(
        stack,
        tmp_path_factory.mktemp("second-stack"),
        kafka_port=KAFKA_PORT,
        controller_port=CONTROLLER_PORT,
        s3_port=S3_PORT,
    ) as settings:
        yield settings


@pytest.fixture(scope="module")
def video(second_stack: Settings) -> Path:
    return ensure_rendered(spec_named("long_h264"), REPO / ".cache" / "test-media")


def worker_env(settings: Settings, fake_vlm: str, deadline_s: float) -> dict[str, str]:
    return {
        "VIDLOC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "VIDLOC_S3_ENDPOINT": settings.s3_endpoint,
        "VIDLOC_VLM_BASE_URL": fake_vlm,
        "VIDLOC_VLM_CONCURRENCY": "1",
        "VIDLOC_JOB_RETRY_DEADLINE_S": str(deadline_s),
        "VIDLOC_RETRY_BACKOFF_MAX_S": "2",
        "VIDLOC_METRICS_PORT": "0",
    }


def run_with_outage(
    settings: Settings,
    fake_vlm: str,
    video: Path,
    log_dir: Path,
    *,
    component: str,
    outage_s: float | None,
    deadline_s: float,
) -> tuple[Watcher, str, Workers]:
    """Start a worker, send the long video, stop ``component`` once the job is localizing.

    ``outage_s`` None leaves the component down until the caller restarts it.
    """
    # Each of the 4 chunks takes >= 2 s at the model, so the job is mid-flight for a while.
    set_faults(fake_vlm, [{"kind": "slow", "delay_s": 2, "count": 1000}])
    workers = Workers(settings, worker_env(settings, fake_vlm, deadline_s), log_dir)
    workers.start(1)
    wait_group_stable(log_dir, 1)
    watcher = Watcher(settings)
    store = ObjectStore(settings)
    event = upload(store, settings.video_bucket, f"restarts/{uuid.uuid4().hex[:8]}.mp4", video)
    with Ingest(settings) as ingest:
        video_id = ingest.send(event)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        watcher.drain(0.5)
        stages = [p.stage for p in watcher.seen.progress.get(video_id, [])]
        if stages.count("localizing") >= 2:  # at least one chunk is done
            break
    else:
        raise AssertionError(f"the job never got going\n{workers.logs()}")
    assert stack_command("down", settings, component) == 0
    if outage_s is not None:
        time.sleep(outage_s)
        assert stack_command("up", settings, component) == 0
    return watcher, video_id, workers


@pytest.mark.parametrize("component", ["kafka", "s3"])
def test_job_completes_after_a_restart_mid_job(
    second_stack: Settings,
    fake_vlm: str,
    video: Path,
    component: str,
    tmp_path: Path,
) -> None:
    watcher, video_id, workers = run_with_outage(
        second_stack,
        fake_vlm,
        video,
        tmp_path,
        component=component,
        outage_s=8,
        deadline_s=300,
    )
    try:
        seen = watcher.wait_results([video_id], timeout_s=240, settle_s=3)
        assert_one_outcome(seen, video_id)
        (result, *_) = seen.results[video_id]
        assert result.status == "succeeded", f"{result.error}\n{workers.logs()}"
        assert result.timeline is not None
        timeline = ObjectStore(second_stack).get_bytes(result.timeline.bucket, result.timeline.key)
        assert b'"green square"' in timeline
        record("faults", f"{component}_restart_mid_job", survived=True, outage_s=8)
    finally:
        workers.stop()
        watcher.close()


def test_s3_down_past_the_deadline_fails_with_a_transient_code(
    second_stack: Settings, fake_vlm: str, video: Path, tmp_path: Path
) -> None:
    watcher, video_id, workers = run_with_outage(
        second_stack, fake_vlm, video, tmp_path, component="s3", outage_s=None, deadline_s=8
    )
    try:
        seen = watcher.wait_results([video_id], timeout_s=180, settle_s=3)
        assert_one_outcome(seen, video_id)
        (result, *_) = seen.results[video_id]
        assert result.status == "failed", result
        assert result.error is not None and result.error.code == "storage_unavailable", (
            f"{result.error}\n{workers.logs()}"
        )
        (dlq,) = seen.dlq[video_id]
        assert dlq.error.code == "storage_unavailable"
        record("faults", "s3_down_past_deadline", survived=True, code=result.error.code)
    finally:
        assert stack_command("up", second_stack, "s3") == 0
        workers.stop()
        watcher.close()
