"""A real ``vidloc worker`` serves /metrics and logs JSON lines carrying the job's ids.

One short synthetic video through one worker process, against a fake model server of this
module's own that fails one request with a 500: the retry is logged from a chunk thread deep in
the model client, which is exactly the line that used to lose the job's ids.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pipeline import REPO, Watcher, Workers
from prometheus_client.parser import text_string_to_metric_families

from contracts import derive_job_id
from devkit.synth.catalogue import spec_named
from devkit.synth.render import ensure_rendered
from producers.submit import submit_files
from vidloc import names
from vidloc.adapters.kafka import EventPublisher
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

MEDIA_CACHE = REPO / ".cache" / "test-media"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture(scope="module")
def settings_for(stack: Settings, fake_vlm: str) -> Settings:
    bucket = f"metrics-videos-{uuid.uuid4().hex[:8]}"
    ObjectStore(stack).ensure_bucket(bucket)
    return stack.model_copy(update={"vlm_base_url": fake_vlm, "video_bucket": bucket})


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def worker(
    settings_for: Settings,
    fake_vlm: str,
    metrics_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Workers, Path]]:
    env = {
        "VIDLOC_VIDEO_BUCKET": settings_for.video_bucket,
        "VIDLOC_VLM_BASE_URL": fake_vlm,
        "VIDLOC_VLM_API_KEY": "test-key-not-secret",
        "VIDLOC_VLM_MAX_BACKOFF_S": "1",
        "VIDLOC_RETRY_BACKOFF_MAX_S": "2",
        "VIDLOC_SAMPLE_FPS": "1",
        "VIDLOC_CHUNK_S": "5",  # a 12 s clip -> several chunks, so several chunk observations
        "VIDLOC_METRICS_PORT": str(metrics_port),
        "VIDLOC_METRICS_LAG_INTERVAL_S": "1",
        "VIDLOC_LOG_JSON": "true",
    }
    log_dir = tmp_path_factory.mktemp("metrics-worker-logs")
    pool = Workers(settings_for, env, log_dir)
    pool.start(1)
    deadline = time.monotonic() + 60
    while True:  # the server starts before the consumer joins its group
        try:
            scrape(metrics_port)
            break
        except OSError:
            assert pool.procs[0].poll() is None, pool.logs()
            assert time.monotonic() < deadline, f"no /metrics within 60 s\n{pool.logs()}"
            time.sleep(0.5)
    yield pool, log_dir
    pool.stop()


def test_worker_serves_metrics_and_tags_every_job_line(
    worker: tuple[Workers, Path], settings_for: Settings, fake_vlm: str, metrics_port: int
) -> None:
    pool, log_dir = worker
    watcher = Watcher(settings_for)
    try:
        admin = fake_vlm.removesuffix("/v1")
        httpx.post(f"{admin}/_fake/faults", json={"kind": "500", "count": 1}, timeout=5)
        video = ensure_rendered(spec_named("h264_mp4"), MEDIA_CACHE)
        with EventPublisher(settings_for) as publisher:
            (event,) = submit_files(
                [video],
                {"localizer": "vlm"},
                settings_for,
                ObjectStore(settings_for),
                publisher,
                key_prefix=f"metrics-{uuid.uuid4().hex[:8]}/",
            )
        video_id, job_id = event.effective_video_id, derive_job_id(event.event_id)
        seen = watcher.wait_results([video_id], timeout_s=180, settle_s=1.0)
    finally:
        watcher.close()
    result = seen.results[video_id][-1]
    assert result.status == "succeeded", (result.error, pool.logs())

    s = scrape(metrics_port)
    assert sample(s, "vidloc_jobs_total", status="succeeded", localizer="vlm") == 1
    assert sample(s, "vidloc_jobs_in_flight") == 0
    assert sample(s, "vidloc_tokens_total", kind="prompt") == result.usage.prompt_tokens > 0
    assert sample(s, "vidloc_tokens_total", kind="completion") == result.usage.completion_tokens
    chunks = sample(s, "vidloc_chunk_seconds_count", localizer="vlm")
    assert chunks is not None and chunks >= 3, chunks
    count = "vidloc_model_request_seconds_count"
    assert sample(s, count, outcome="http_error", status="500") == 1
    ok = sample(s, count, outcome="ok", status="2xx")
    assert ok is not None and ok >= chunks
    lag = {k: v for k, v in s.items() if k[0] == "vidloc_consumer_lag_messages"}
    # Lag of every topic the worker consumes: ingest, and a long video's span orders and reports.
    topics = {dict(labels)["topic"] for _, labels in lag}
    assert lag and names.TOPIC_INGEST in topics and topics <= set(names.WORKER_TOPICS), topics
    assert all(v >= 0 for v in lag.values())

    lines = []
    for path in log_dir.glob("worker-*.log"):
        for raw in path.read_text(errors="replace").splitlines():
            if raw.startswith("{"):
                lines.append(json.loads(raw))
    ours = [x for x in lines if x.get("video_id") == video_id]
    assert {x.get("job_id") for x in ours} == {job_id}
    retry = [x for x in ours if x["logger"] == "workers.model.client"]
    assert retry and "retry 1/" in retry[0]["message"], ours
    assert any(x["message"].startswith("job succeeded") for x in ours)
    # Modules that only ever log while a job runs: every one of their lines names a job.
    job_modules = (
        "workers.pipeline.job",
        "workers.model.client",
        "workers.localizers",
        "workers.frames",
    )
    job_lines = [x for x in lines if x["logger"].startswith(job_modules)]
    untagged = [x for x in job_lines if not (x.get("video_id") and x.get("job_id"))]
    assert job_lines and not untagged, untagged
