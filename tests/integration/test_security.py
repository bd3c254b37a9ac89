"""Secrets never leave the process: worker logs (at DEBUG), every event the workers published,
stored timelines and checkpoints are grepped for the S3 secret key, the model API key and the
SASL password, across a success, an input failure, a model auth failure and a refused message.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
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
    # Thumbnails (JPEG) live beside the timeline: read as text, a secret's ASCII still shows.
    texts += [(k, store.get_bytes(timeline_bucket, k).decode(errors="replace")) for k in stored]

    leaks = list(grep_secrets(texts, secrets))
    record("security", "secrets_grep", texts=len(texts), secrets=len(secrets), leaks=len(leaks))
    assert leaks == []
    assert files_under(work_dir) == []


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_api_key_reaches_logs_files_responses_or_events(stack: Settings, tmp_path: Path) -> None:
    """API keys (issue 12): created by the CLI, used right, wrong, revoked and out of scope
    against a DEBUG-logging API, with the keys file named in every process's environment
    (submit, worker, API) while a tenant's job runs. Only the creating command's stdout may
    show a key; the keys file holds hashes; no log, other file, response or event holds one."""
    import os
    import subprocess
    import sys
    import time

    import httpx
    from apistack import wait_succeeded

    from vidloc.api.keys import key_id_of

    settings = stack.model_copy(
        update={
            "video_bucket": f"sec-api-videos-{uuid.uuid4().hex[:8]}",
            "timeline_bucket": f"sec-api-timelines-{uuid.uuid4().hex[:8]}",
        }
    )
    store = ObjectStore(settings)
    store.ensure_bucket(settings.video_bucket)
    store.ensure_bucket(settings.timeline_bucket)
    keys_dir = tmp_path / "keys"
    keys_path = keys_dir / "keys.json"
    env = {
        **os.environ,
        "VIDLOC_API_KEYS_FILE": str(keys_path),
        "VIDLOC_VIDEO_BUCKET": settings.video_bucket,
        "VIDLOC_TIMELINE_BUCKET": settings.timeline_bucket,
        "VIDLOC_LOG_LEVEL": "DEBUG",
        "VIDLOC_LOCALIZER": "cv",
        "VIDLOC_WORK_DIR": str(tmp_path / "work"),
        "COLUMNS": "400",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vidloc", *args],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=90,
        )  # fmt: skip

    keys = {}
    for name, scopes in (("reader", "read"), ("admin", "admin"), ("doomed", "read")):
        made = cli("api", "keys", "add", "--tenant", "acme", "--scopes", scopes)
        assert made.returncode == 0, made.stderr
        keys[name] = made.stdout.strip()
        assert keys[name] not in made.stderr
    revoked = cli("api", "keys", "revoke", str(key_id_of(keys["doomed"])))
    listed = cli("api", "keys", "list")
    assert revoked.returncode == 0 and listed.returncode == 0
    wrong = keys["reader"][:-4] + ("AAAA" if not keys["reader"].endswith("AAAA") else "BBBB")
    secrets = [*keys.values(), wrong, *(k.split("_", 2)[2] for k in (*keys.values(), wrong))]

    texts: list[tuple[str, str]] = [
        ("keys list", listed.stdout + listed.stderr),
        ("keys revoke", revoked.stdout + revoked.stderr),
    ]
    logs = tmp_path / "logs"
    logs.mkdir()
    port = _free_port()
    api_log = logs / "api.log"
    workers = Workers(settings, env, logs)
    watcher = Watcher(settings)
    with api_log.open("wb") as sink:
        api = subprocess.Popen(
            [sys.executable, "-m", "vidloc", "api", "--port", str(port)],
            cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        workers.start(1)
        good = ensure_rendered(
            {s.name: s for s in standard_specs()}["h264_mp4"], REPO / ".cache" / "test-media"
        )
        submitted = cli("submit", "--tenant", "acme", str(good))
        assert submitted.returncode == 0, submitted.stderr
        texts.append(("submit", submitted.stdout + submitted.stderr))
        vid = submitted.stdout.split("(video ")[1].split(",")[0]
        outcome = wait_succeeded(watcher, vid, timeout_s=180)
        seen = watcher.seen
        assert outcome.timeline is not None and outcome.timeline.key.startswith("tenants/acme/")
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/healthz")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, api_log.read_text()
                time.sleep(0.2)
        calls = [
            (keys["reader"], f"/videos/{vid}", 200),
            (keys["reader"], f"/videos/{vid}/view", 200),
            (keys["reader"], "/metrics", 403),
            (keys["admin"], "/metrics", 200),
            (keys["doomed"], "/videos", 401),
            (wrong, "/videos", 401),
            (keys["reader"], f"/videos/{vid}-nope", 404),
        ]
        for key, path, status in calls:
            response = httpx.get(base + path, headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == status, (path, response.text)
            texts.append((f"GET {path}", str(response.headers) + response.text))
    finally:
        api.terminate()
        api.wait(10)
        workers.stop()
        watcher.close()

    assert outcome.tenant == "acme"
    for topic, by_video in (
        (names.TOPIC_RESULTS, seen.results),
        (names.TOPIC_PROGRESS, seen.progress),
    ):
        texts += [(f"{topic}:{vid}", encode(e).decode()) for e in by_video[vid]]
    for log in logs.glob("*.log"):
        texts.append((log.name, log.read_text(errors="replace")))
    assert "DEBUG" in "".join(t for _, t in texts)
    assert "denied GET /videos" in api_log.read_text(), "denials were not logged"
    for path in files_under(keys_dir):
        texts.append((path.name, path.read_text(errors="replace")))
    assert hash_in(keys_path, keys.values())
    timeline_keys = list(store.list_keys(settings.timeline_bucket, "tenants/acme/"))
    assert timeline_keys
    texts += [
        (k, store.get_bytes(settings.timeline_bucket, k).decode(errors="replace"))
        for k in timeline_keys
    ]

    leaks = list(grep_secrets(texts, secrets))
    record("security", "api_keys_grep", texts=len(texts), secrets=len(secrets), leaks=len(leaks))
    assert leaks == []


def hash_in(keys_path: Path, keys: Iterable[str]) -> bool:
    """The keys file holds each key's hash (so the grep above looked at the right file)."""
    from vidloc.api.keys import hash_key

    text = keys_path.read_text()
    return all(hash_key(k) in text for k in keys)
