"""End to end on the real stack: videos in the bucket become timelines in S3 and result events.

Workers run as real ``vidloc worker`` processes against the fake OpenAI-compatible server, which
reports only what it sees in each frame; the ground truth comes from the synthetic videos.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from kafka import KafkaProducer
from pipeline import REPO, Watcher, Workers
from reliability import wait_group_stable

from contracts import decode_timeline, derive_job_id, encode, schema_for
from devkit.synth.catalogue import standard_specs
from devkit.synth.render import corrupt_copy, ensure_rendered
from devkit.synth.spec import GroundTruth, VideoSpec
from producers.bridge import run_bridge
from producers.submit import SUBMITTED_META
from vidloc.adapters.kafka import park_group_at_end
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

TOLERANCE_S = 1.5  # at 1 fps sampling, per the issue
MEDIA_CACHE = REPO / ".cache" / "test-media"


@pytest.fixture(scope="module")
def media() -> dict[str, tuple[Path, GroundTruth, VideoSpec]]:
    out = {}
    for spec in standard_specs():
        path = ensure_rendered(spec, MEDIA_CACHE)
        out[spec.name] = (path, spec.ground_truth(), spec)
    return out


@pytest.fixture(scope="module")
def video_bucket(stack: Settings) -> str:
    """A bucket of this module's own: a bridge left running elsewhere never bridges its puts."""
    bucket = f"e2e-videos-{uuid.uuid4().hex[:8]}"
    ObjectStore(stack).ensure_bucket(bucket)
    return bucket


@pytest.fixture(scope="module")
def pipeline_settings(stack: Settings, fake_vlm: str, video_bucket: str) -> Settings:
    return stack.model_copy(update={"vlm_base_url": fake_vlm, "video_bucket": video_bucket})


@pytest.fixture(scope="module")
def worker_env(fake_vlm: str, video_bucket: str) -> dict[str, str]:
    return {
        "VIDLOC_VIDEO_BUCKET": video_bucket,
        "VIDLOC_METRICS_PORT": "0",  # several workers on one host: no port fights
        "VIDLOC_VLM_BASE_URL": fake_vlm,
        "VIDLOC_VLM_API_KEY": "test-key-not-secret",
        "VIDLOC_VLM_MAX_BACKOFF_S": "2",
        "VIDLOC_RETRY_BACKOFF_MAX_S": "2",
        "VIDLOC_SAMPLE_FPS": "1",
        "VIDLOC_CHUNK_S": "30",
    }


@pytest.fixture(scope="module")
def workers(
    pipeline_settings: Settings,
    worker_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Workers]:
    log_dir = tmp_path_factory.mktemp("worker-logs")
    pool = Workers(pipeline_settings, worker_env, log_dir)
    pool.start(2)
    # Work sent while members still join may move mid-flight and be announced twice (an
    # identical replay the contract allows); these tests count exactly one result.
    wait_group_stable(log_dir, 2)
    yield pool
    pool.stop()


@pytest.fixture(scope="module")
def bridge(pipeline_settings: Settings) -> Iterator[None]:
    from vidloc import names

    group = f"test-bridge-{uuid.uuid4().hex[:10]}"
    park_group_at_end(pipeline_settings, group, names.TOPIC_S3_EVENTS)
    stop = threading.Event()
    thread = threading.Thread(
        target=run_bridge,
        args=(pipeline_settings,),
        kwargs={"stop": stop, "group_id": group},
        daemon=True,
    )
    thread.start()
    yield
    stop.set()
    thread.join(30)


@pytest.fixture
def watcher(pipeline_settings: Settings) -> Iterator[Watcher]:
    w = Watcher(pipeline_settings)
    yield w
    w.close()


@pytest.fixture(scope="module")
def store(pipeline_settings: Settings) -> ObjectStore:
    return ObjectStore(pipeline_settings)


def submit_cli(paths: list[Path], env: dict[str, str], prefix: str, *extra: str) -> None:
    """``vidloc submit`` as a user runs it; the video ids come back from the watcher."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vidloc",
            "submit",
            *map(str, paths),
            "--key-prefix",
            prefix,
            *extra,
        ],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def assert_matches_truth(timeline_doc: dict, truth: GroundTruth, name: str) -> None:
    jsonschema.Draft202012Validator(schema_for("timeline")).validate(timeline_doc)
    timeline = decode_timeline(timeline_doc)
    found = sorted(((e.label, e.start_s, e.end_s) for e in timeline.events), key=lambda x: x[1])
    expected = sorted(((e.label, e.start_s, e.end_s) for e in truth.events), key=lambda x: x[1])
    assert len(found) == len(expected), f"{name}: {found} vs truth {expected}"
    for label, start, end in expected:
        near = [
            f
            for f in found
            if f[0] == label and abs(f[1] - start) <= TOLERANCE_S and abs(f[2] - end) <= TOLERANCE_S
        ]
        assert len(near) == 1, f"{name}: {label} {start}-{end} not found once in {found}"


def video_ids_by_key(store: ObjectStore, bucket: str, prefix: str) -> dict[str, str]:
    from contracts import derive_video_id

    out = {}
    for key in store.list_keys(bucket, prefix):
        info = store.stat(bucket, key)
        out[key] = derive_video_id(bucket, key, info.etag)
    return out


def test_submit_and_plain_put_give_one_matching_timeline_each(
    media: dict[str, tuple[Path, GroundTruth, VideoSpec]],
    workers: Workers,
    bridge: None,
    watcher: Watcher,
    worker_env: dict[str, str],
    pipeline_settings: Settings,
    store: ObjectStore,
) -> None:
    run = uuid.uuid4().hex[:8]
    names = sorted(media)
    # Half the catalogue through `vidloc submit`, the other half by a plain S3 put (the bridge
    # turns its notification into an ingest event); then swap, so each file goes both ways.
    submit_prefix, put_prefix = f"e2e-{run}/submit/", f"e2e-{run}/put/"
    submit_cli([media[n][0] for n in names], worker_env, submit_prefix)
    for n in names:
        store.upload_file(
            pipeline_settings.video_bucket, put_prefix + media[n][0].name, media[n][0]
        )
    bucket = pipeline_settings.video_bucket
    ids = {
        **video_ids_by_key(store, bucket, submit_prefix),
        **video_ids_by_key(store, bucket, put_prefix),
    }
    assert len(ids) == 2 * len(names)
    seen = watcher.wait_results(ids.values(), timeout_s=420)
    for key, video_id in ids.items():
        name = Path(key).stem
        results = seen.results[video_id]
        assert [r.status for r in results] == ["succeeded"], (
            f"{key}: {[(r.status, r.error) for r in results]}\n{workers.logs()}"
        )
        result = results[0]
        assert result.timeline is not None
        doc = json.loads(store.get_bytes(result.timeline.bucket, result.timeline.key))
        assert_matches_truth(doc, media[name][1], key)
        assert result.usage.prompt_tokens > 0 and result.usage.cost > 0
        assert doc["usage"]["prompt_tokens"] == result.usage.prompt_tokens
        stages = [p.stage for p in seen.progress[video_id]]
        assert "localizing" in stages and stages[-1] == "done", stages


def test_corrupt_file_fails_to_dlq_and_the_next_video_on_its_partition_succeeds(
    media: dict[str, tuple[Path, GroundTruth, VideoSpec]],
    workers: Workers,
    watcher: Watcher,
    pipeline_settings: Settings,
    store: ObjectStore,
    tmp_path: Path,
) -> None:
    from contracts import IngestEvent, derive_video_id

    run = uuid.uuid4().hex[:8]
    good_path, _, _ = media["h264_mp4"]
    bad_path = corrupt_copy(good_path, tmp_path / "corrupt.mp4", mode="garble")
    bucket = pipeline_settings.video_bucket
    events = []
    for path in (bad_path, good_path):
        key = f"e2e-{run}/partition/{path.name}"
        # Tagged like `vidloc submit` does, so the bridge leaves these puts to this test.
        info = store.upload_file(bucket, key, path, metadata={SUBMITTED_META: "1"})
        video_id = derive_video_id(bucket, key, info.etag)
        events.append(
            IngestEvent.model_validate(
                {
                    "schema": "vidloc.ingest.v1",
                    "event_id": f"test-{uuid.uuid4().hex}",
                    "video_id": video_id,
                    "source": {"bucket": bucket, "key": key, "etag": info.etag, "size": info.size},
                    "options": {"localizer": "vlm"},
                    "submitted_at": "2026-11-25T00:00:00Z",
                }
            )
        )
    producer = KafkaProducer(bootstrap_servers=pipeline_settings.kafka_bootstrap, acks="all")
    for event in events:  # same partition, in this order
        producer.send(
            "video.ingest", key=event.video_id.encode(), value=encode(event), partition=0
        ).get(30)
    producer.close()
    bad_id, good_id = (e.effective_video_id for e in events)
    seen = watcher.wait_results([bad_id, good_id], timeout_s=180)
    bad = seen.results[bad_id]
    assert [r.status for r in bad] == ["failed"], bad
    assert bad[0].error is not None and bad[0].error.code in {"decode_failed", "not_a_video"}
    assert bad[0].job_id == derive_job_id(events[0].event_id)
    assert len(seen.dlq[bad_id]) == 1 and seen.dlq[bad_id][0].error.code == bad[0].error.code
    good = seen.results[good_id]
    assert [r.status for r in good] == ["succeeded"], good
    assert good_id not in seen.dlq


def fault(base_url: str, faults: list[dict]) -> None:
    import httpx

    admin = base_url.removesuffix("/v1")
    httpx.post(f"{admin}/_fake/reset", timeout=10).raise_for_status()
    httpx.post(f"{admin}/_fake/faults", json=faults, timeout=10).raise_for_status()


def fake_stats(base_url: str) -> dict:
    import httpx

    return httpx.get(f"{base_url.removesuffix('/v1')}/_fake/stats", timeout=10).json()


def test_a_429_storm_and_5xx_answers_are_ridden_out(
    media: dict[str, tuple[Path, GroundTruth, VideoSpec]],
    workers: Workers,
    watcher: Watcher,
    worker_env: dict[str, str],
    fake_vlm: str,
    store: ObjectStore,
    pipeline_settings: Settings,
) -> None:
    fault(
        fake_vlm,
        [
            {"kind": "429", "retry_after": 1, "count": 6},
            {"kind": "503", "count": 2},
            {"kind": "500", "count": 1},
        ],
    )
    prefix = f"e2e-{uuid.uuid4().hex[:8]}/storm/"
    path, truth, _ = media["h264_mp4"]
    submit_cli([path], worker_env, prefix)
    ids = video_ids_by_key(store, pipeline_settings.video_bucket, prefix)
    seen = watcher.wait_results(ids.values(), timeout_s=180)
    (video_id,) = ids.values()
    assert [r.status for r in seen.results[video_id]] == ["succeeded"]
    result = seen.results[video_id][0]
    assert result.timeline is not None
    doc = json.loads(store.get_bytes(result.timeline.bucket, result.timeline.key))
    assert_matches_truth(doc, truth, "storm")
    stats = fake_stats(fake_vlm)
    by_status = {str(k): v for k, v in stats["by_status"].items()}
    assert by_status.get("429") == 6 and by_status.get("503") == 2 and by_status.get("500") == 1
    assert by_status.get("200", 0) >= 1


def test_cv_localizer_finds_hard_cuts_within_one_sampled_frame(
    media: dict[str, tuple[Path, GroundTruth, VideoSpec]],
    workers: Workers,
    watcher: Watcher,
    worker_env: dict[str, str],
    store: ObjectStore,
    pipeline_settings: Settings,
) -> None:
    prefix = f"e2e-{uuid.uuid4().hex[:8]}/cv/"
    chosen = ["h264_mp4", "vfr_h264", "long_h264", "av1_mkv"]
    submit_cli([media[n][0] for n in chosen], worker_env, prefix, "--localizer", "cv")
    ids = video_ids_by_key(store, pipeline_settings.video_bucket, prefix)
    seen = watcher.wait_results(ids.values(), timeout_s=300)
    step = 1.0  # VIDLOC_SAMPLE_FPS=1
    for key, video_id in ids.items():
        truth = media[Path(key).stem][1]
        (result,) = seen.results[video_id]
        assert result.status == "succeeded" and result.timeline is not None, result
        doc = json.loads(store.get_bytes(result.timeline.bucket, result.timeline.key))
        assert doc["localizer"] == "cv" and doc["usage"]["cost"] == 0
        cuts = [e["start_s"] for e in doc["events"] if e["label"] == "cut"]
        for true_cut in truth.cuts:
            near = [c for c in cuts if true_cut <= c <= true_cut + step + 1e-6]
            assert len(near) == 1, f"{key}: cut at {true_cut} -> {cuts}"
