"""Soak: a few hundred tiny videos through two workers while faults are injected at random
(model 429 / 5xx / slow / dropped answers, one worker SIGKILLed and replaced). Afterwards every
ingest event has exactly one final result and every succeeded result has its timeline.

``VIDLOC_SOAK_VIDEOS`` sets the count (default 150: about 2.5 minutes on a shared 2-core box).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline import Watcher, Workers
from reliability import Ingest, duplicates, fake_stats, record, set_faults, wait_group_stable

from contracts import IngestEvent, derive_video_id
from devkit.fake_vlm.server import serve_in_thread
from devkit.synth.render import ensure_rendered
from devkit.synth.spec import SyntheticEvent, VideoSpec
from producers.submit import SUBMITTED_META
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

COUNT = int(os.environ.get("VIDLOC_SOAK_VIDEOS", "150"))
LABELS = ("red circle", "green square", "blue triangle", "yellow star")


def tiny_specs() -> list[VideoSpec]:
    return [
        VideoSpec(
            name=f"soak_{i}",
            duration_s=2.0 + i % 3,
            fps=5.0,
            width=160,
            height=96,
            codec="h264",
            events=(SyntheticEvent(LABELS[i], 0.4, 1.6),),
            gop=10,
        )
        for i in range(len(LABELS))
    ]


@pytest.fixture
def fake() -> Iterator[str]:
    base_url, stop = serve_in_thread()
    yield base_url
    stop()


def _chaos(base_url: str, stop: threading.Event, injected: list[str], seed: int) -> None:
    """Every ~0.7 s queue one random model fault for whatever request comes next."""
    rng = random.Random(seed)
    menu = [
        {"kind": "429", "retry_after": 0.5},
        {"kind": "503"},
        {"kind": "500"},
        {"kind": "slow", "delay_s": 1.0},
        {"kind": "drop_connection"},
    ]
    while not stop.wait(0.7):
        fault = rng.choice(menu)
        try:
            set_faults(base_url, [fault], reset=False)
            injected.append(str(fault["kind"]))
        except Exception:  # chaos is best effort; the checks below are what count
            continue


def test_soak_every_ingest_event_gets_exactly_one_result(
    stack: Settings, fake: str, tmp_path: Path
) -> None:
    bucket = f"soak-{uuid.uuid4().hex[:8]}"
    settings = stack.model_copy(update={"video_bucket": bucket})
    store = ObjectStore(settings)
    store.ensure_bucket(bucket)
    clips = [ensure_rendered(spec, tmp_path / "media") for spec in tiny_specs()]
    env = {
        "VIDLOC_VIDEO_BUCKET": bucket,
        "VIDLOC_VLM_BASE_URL": fake,
        "VIDLOC_VLM_API_KEY": "test-key-not-secret",
        "VIDLOC_VLM_MAX_BACKOFF_S": "1",
        "VIDLOC_RETRY_BACKOFF_MAX_S": "2",
        "VIDLOC_SAMPLE_FPS": "2",
        "VIDLOC_WORK_DIR": str(tmp_path / "work"),
    }
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    workers = Workers(settings, env, log_dir)
    watcher = Watcher(settings)
    stop_chaos = threading.Event()
    injected: list[str] = []
    chaos = threading.Thread(target=_chaos, args=(fake, stop_chaos, injected, 7), daemon=True)
    run = uuid.uuid4().hex[:8]
    ids: list[str] = []
    started = time.monotonic()
    killed = 0
    try:
        workers.start(2)
        wait_group_stable(log_dir, 2)
        set_faults(fake, [])
        chaos.start()
        with Ingest(settings) as ingest:
            for i in range(COUNT):
                key = f"soak-{run}/{i:04d}.mp4"
                info = store.upload_file(
                    bucket, key, clips[i % len(clips)], metadata={SUBMITTED_META: "1"}
                )
                event = IngestEvent.model_validate(
                    {
                        "schema": "vidloc.ingest.v1",
                        "event_id": f"soak-{run}-{i}",
                        "video_id": derive_video_id(bucket, key, info.etag),
                        "source": {
                            "bucket": bucket,
                            "key": key,
                            "etag": info.etag,
                            "size": info.size,
                        },
                        "options": {"localizer": "vlm"},
                        "submitted_at": "2026-11-25T00:00:00Z",
                    }
                )
                ids.append(ingest.send(event))
        # Kill one worker once a third of the results are in, and start a replacement.
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and len(watcher.seen.results) < COUNT // 3:
            watcher.drain(0.5)
        workers.procs[0].send_signal(signal.SIGKILL)
        workers.procs[0].wait(10)
        killed += 1
        workers.start(1)
        seen = watcher.wait_results(ids, timeout_s=600, settle_s=5.0)
    finally:
        stop_chaos.set()
        chaos.join(5)
        workers.stop()
        watcher.close()
    took_s = time.monotonic() - started

    dup = duplicates(seen, ids)
    replays = sum(len(seen.results[v]) - 1 for v in ids)
    failed = [v for v in ids if seen.results[v][0].status != "succeeded"]
    missing_timelines = [
        v
        for v in ids
        if seen.results[v][0].timeline is not None
        and not store.exists(seen.results[v][0].timeline.bucket, seen.results[v][0].timeline.key)
    ]
    stats = fake_stats(fake)
    record(
        "soak",
        "two_workers_random_faults",
        messages_in=len(ids),
        results_out=sum(1 for v in ids if seen.results.get(v)),
        conflicting_duplicates=len(dup),
        identical_replays=replays,
        failed=len(failed),
        faults_injected=len(injected),
        faults_applied=stats["faults_applied"],
        workers_killed=killed,
        seconds=round(took_s, 1),
    )
    assert set(ids) <= set(seen.results)
    assert dup == {}, dup
    assert failed == [], [(v, seen.results[v][0].error) for v in failed[:5]]
    assert missing_timelines == []
    assert sum(stats["faults_applied"].values()) > 0
