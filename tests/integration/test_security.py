"""Secrets never leave the process: worker logs (at DEBUG), every event the workers published,
stored timelines and checkpoints are grepped for the S3 secret key, the model API key and the
SASL password, across a success, an input failure, a model auth failure and a refused message.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from pipeline import REPO, Watcher, Workers
from reliability import Ingest, files_under, grep_secrets, record, upload, wait_group_stable

from contracts import encode
from devkit.fake_vlm.server import FakeConfig, serve_in_thread
from devkit.synth.catalogue import standard_specs
from devkit.synth.render import ensure_rendered
from vidloc import names
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings

pytestmark = pytest.mark.integration


def test_no_secret_reaches_logs_events_timelines_or_errors(stack: Settings, tmp_path: Path) -> None:
    api_key = f"sk-vidloc-{uuid.uuid4().hex}"
    sasl_password = f"sasl-{uuid.uuid4().hex}"
    base_url, stop_fake = serve_in_thread(config=FakeConfig(api_key=api_key))
    wrong_key_url, stop_wrong = serve_in_thread(config=FakeConfig(api_key="another-key"))
    bucket = f"sec-videos-{uuid.uuid4().hex[:8]}"
    settings = stack.model_copy(update={"video_bucket": bucket})
    store = ObjectStore(settings)
    store.ensure_bucket(bucket)
    secrets = [
        api_key,
        sasl_password,
        *stack.secrets(),  # the S3 secret key the stack really runs with
    ]
    work_dir = tmp_path / "work"
    base_env = {
        "VIDLOC_VIDEO_BUCKET": bucket,
        "VIDLOC_VLM_API_KEY": api_key,
        "VIDLOC_KAFKA_SASL_PASSWORD": sasl_password,  # unused on PLAINTEXT, must still not leak
        "VIDLOC_LOG_LEVEL": "DEBUG",
        "VIDLOC_SAMPLE_FPS": "1",
        "VIDLOC_WORK_DIR": str(work_dir),
        "VIDLOC_JOB_RETRY_DEADLINE_S": "0",  # the auth failure ends in a failed result at once
        "VIDLOC_VLM_MAX_RETRIES": "0",
    }
    good = ensure_rendered(
        {s.name: s for s in standard_specs()}["h264_mp4"], REPO / ".cache" / "test-media"
    )
    bad = tmp_path / "not-a-video.mp4"
    bad.write_text("nope")
    watcher = Watcher(settings)
    pools = []
    try:
        ok_logs, auth_logs = tmp_path / "logs-ok", tmp_path / "logs-auth"
        ok_logs.mkdir()
        auth_logs.mkdir()
        ok_pool = Workers(settings, {**base_env, "VIDLOC_VLM_BASE_URL": base_url}, ok_logs)
        pools.append(ok_pool)
        ok_pool.start(1)
        wait_group_stable(ok_logs, 1)
        run = uuid.uuid4().hex[:8]
        with Ingest(settings) as ingest:
            ok_id = ingest.send(upload(store, bucket, f"sec-{run}/good.mp4", good))
            bad_id = ingest.send(upload(store, bucket, f"sec-{run}/bad.mp4", bad))
            ingest.send_raw("sec-raw", json.dumps({"schema": "x", "key": api_key[:6]}).encode())
        seen = watcher.wait_results([ok_id, bad_id, "sec-raw"], timeout_s=120)
        ok_pool.stop()
        # A second group whose model endpoint refuses the key: the error path of the client.
        auth_pool = Workers(settings, {**base_env, "VIDLOC_VLM_BASE_URL": wrong_key_url}, auth_logs)
        pools.append(auth_pool)
        auth_pool.start(1)
        wait_group_stable(auth_logs, 1)
        with Ingest(settings) as ingest:
            auth_id = ingest.send(upload(store, bucket, f"sec-{run}/auth.mp4", good))
        seen = watcher.wait_results([auth_id], timeout_s=120)
    finally:
        for pool in pools:
            pool.stop()
        watcher.close()
        stop_fake()
        stop_wrong()

    assert seen.results[ok_id][0].status == "succeeded"
    assert seen.results[bad_id][0].error is not None
    auth_error = seen.results[auth_id][0].error
    assert auth_error is not None and auth_error.code == "model_auth_failed"

    texts: list[tuple[str, str]] = []
    for log in [*ok_logs.glob("*.log"), *auth_logs.glob("*.log")]:
        texts.append((log.name, log.read_text(errors="replace")))
    assert "DEBUG" in "".join(t for _, t in texts), "the logs were not at DEBUG level"
    for topic, by_video in (
        (names.TOPIC_RESULTS, seen.results),
        (names.TOPIC_DLQ, seen.dlq),
        (names.TOPIC_PROGRESS, seen.progress),
    ):
        for video_id, events in by_video.items():
            texts += [(f"{topic}:{video_id}", encode(e).decode()) for e in events]
    timeline_bucket = settings.timeline_bucket
    stored = [k for k in store.list_keys(timeline_bucket, f"timelines/{ok_id}/")]
    stored += [k for k in store.list_keys(timeline_bucket, f"checkpoints/{ok_id}/")]
    assert stored, "no timeline stored"
    texts += [(k, store.get_bytes(timeline_bucket, k).decode()) for k in stored]

    leaks = list(grep_secrets(texts, secrets))
    record("security", "secrets_grep", texts=len(texts), secrets=len(secrets), leaks=len(leaks))
    assert leaks == []
    assert files_under(work_dir) == []
