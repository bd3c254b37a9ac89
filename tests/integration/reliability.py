"""Helpers shared by the reliability suites (faults, bad inputs, soak, security).

Each suite records what it injected and what came out in a JSON-lines report, which
``bench/report_reliability.py`` summarises: faults injected and survived, bad inputs refused,
messages in and results out, duplicates seen.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaProducer
from pipeline import REPO, Outputs, Watcher, Workers

from contracts import IngestEvent, derive_video_id, encode
from devkit.fake_vlm.server import serve_in_thread
from producers.submit import SUBMITTED_META
from vidloc import names
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings

REPORT_ENV = "VIDLOC_RELIABILITY_REPORT"
DEFAULT_REPORT = REPO / ".cache" / "reliability" / "report.jsonl"


def report_path() -> Path:
    return Path(os.environ.get(REPORT_ENV) or DEFAULT_REPORT)


def record(suite: str, case: str, **fields: Any) -> None:
    """Append one observation to the reliability report."""
    path = report_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"suite": suite, "case": case, "at": time.time(), **fields}
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(line, default=str) + "\n")


def fake_admin(base_url: str) -> str:
    return base_url.removesuffix("/v1")


def set_faults(base_url: str, faults: list[dict[str, Any]], *, reset: bool = True) -> None:
    admin = fake_admin(base_url)
    if reset:
        httpx.post(f"{admin}/_fake/reset", timeout=10).raise_for_status()
    if faults:
        httpx.post(f"{admin}/_fake/faults", json=faults, timeout=10).raise_for_status()


def fake_stats(base_url: str) -> dict[str, Any]:
    response = httpx.get(f"{fake_admin(base_url)}/_fake/stats", timeout=10)
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


def upload(store: ObjectStore, bucket: str, key: str, path: Path) -> IngestEvent:
    """Upload like ``vidloc submit`` (tagged, so a stray bridge skips it) and build its event."""
    info = store.upload_file(bucket, key, path, metadata={SUBMITTED_META: "1"})
    return ingest_event(bucket, key, info.etag, info.size)


def ingest_event(bucket: str, key: str, etag: str, size: int, **options: Any) -> IngestEvent:
    return IngestEvent.model_validate(
        {
            "schema": "vidloc.ingest.v1",
            "event_id": f"test-{uuid.uuid4().hex}",
            "video_id": derive_video_id(bucket, key, etag),
            "source": {"bucket": bucket, "key": key, "etag": etag, "size": size},
            "options": {"localizer": "vlm", **options},
            "submitted_at": "2026-11-25T00:00:00Z",
        }
    )


class Ingest:
    """Publishes to video.ingest (acked), keyed by video id like the real producers."""

    def __init__(self, settings: Settings) -> None:
        self._producer = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, acks="all", max_request_size=4_000_000
        )

    def send(self, event: IngestEvent, partition: int | None = None) -> str:
        self.send_raw(event.effective_video_id, encode(event), partition)
        return event.effective_video_id

    def send_at_once(self, events: list[IngestEvent]) -> None:
        """Send every event without waiting for each ack in turn, then wait for all of them."""
        futures = [
            self._producer.send(
                names.TOPIC_INGEST, key=e.effective_video_id.encode(), value=encode(e)
            )
            for e in events
        ]
        for future in futures:
            future.get(30)

    def send_raw(self, key: str, value: bytes, partition: int | None = None) -> None:
        self._producer.send(
            names.TOPIC_INGEST, key=key.encode(), value=value, partition=partition
        ).get(30)

    def close(self) -> None:
        self._producer.close(timeout=10)

    def __enter__(self) -> Ingest:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def duplicates(seen: Outputs, video_ids: Iterable[str]) -> dict[str, int]:
    """Videos announced more than once with *different* results (a replay of the identical
    result event, same event and job id, is allowed by the delivery contract)."""
    out = {}
    for video_id in video_ids:
        results = seen.results.get(video_id, [])
        distinct = {(r.event_id, r.job_id, r.status) for r in results}
        if len(distinct) > 1:
            out[video_id] = len(distinct)
    return out


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def grep_secrets(texts: Iterable[tuple[str, str]], secrets: Iterable[str]) -> Iterator[str]:
    """``where: secret`` for every secret found in any (where, text) pair."""
    wanted = [s for s in secrets if s]
    for where, text in texts:
        for secret in wanted:
            if secret in text:
                yield f"{where}: {secret[:3]}..."


def wait_group_stable(log_dir: Path, members: int, timeout_s: float = 60.0) -> None:
    """Until every worker logged an assignment and none changed for a few seconds.

    Jobs sent while members are still joining get moved mid-flight (allowed, but it makes
    duplicate counts depend on timing rather than on the code under test).
    """
    deadline = time.monotonic() + timeout_s
    last, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        logs = [p.read_text(errors="replace") for p in sorted(log_dir.glob("worker-*.log"))]
        joined = sum(1 for text in logs if "partitions assigned" in text)
        count = sum(text.count("partitions assigned") for text in logs)
        if count != last:
            last, stable_since = count, time.monotonic()
        elif joined >= members and time.monotonic() - stable_since >= 4.0:
            return
        time.sleep(0.5)
    raise AssertionError(f"{members} workers did not settle into one group in {timeout_s} s")


def assert_one_outcome(seen: Outputs, video_id: str) -> None:
    """Exactly one final result; a replay may only repeat the identical event (same ids)."""
    results = seen.results.get(video_id, [])
    assert results, f"no result for {video_id}"
    distinct = {
        (r.event_id, r.job_id, r.status, r.error.code if r.error else None) for r in results
    }
    assert len(distinct) == 1, f"{video_id}: conflicting results {distinct}"


@contextlib.contextmanager
def one_worker(
    stack: Settings, log_dir: Path, bucket_prefix: str
) -> Iterator[tuple[Settings, Workers, Watcher]]:
    """One real worker on a bucket of its own, with the fake model, settled in its group."""
    base_url, stop_fake = serve_in_thread()
    bucket = f"{bucket_prefix}-{uuid.uuid4().hex[:8]}"
    settings = stack.model_copy(update={"video_bucket": bucket, "vlm_base_url": base_url})
    ObjectStore(settings).ensure_bucket(bucket)
    env = {
        "VIDLOC_VIDEO_BUCKET": bucket,
        "VIDLOC_VLM_BASE_URL": base_url,
        "VIDLOC_VLM_API_KEY": "test-key-not-secret",
        "VIDLOC_SAMPLE_FPS": "1",
        "VIDLOC_WORK_DIR": str(log_dir / "work"),
    }
    workers = Workers(settings, env, log_dir)
    watcher = Watcher(settings)
    workers.start(1)
    wait_group_stable(log_dir, 1)
    try:
        yield settings, workers, watcher
    finally:
        workers.stop()
        watcher.close()
        stop_fake()


@contextlib.contextmanager
def stream_worker(settings: Settings, model_url: str, log_dir: Path) -> Iterator[Workers]:
    """One real worker for live-stream tests: the vlm localizer, one model request per segment."""
    env = {
        "VIDLOC_VIDEO_BUCKET": settings.video_bucket,
        "VIDLOC_VLM_BASE_URL": model_url,
        "VIDLOC_VLM_API_KEY": "test-key-not-secret",
        "VIDLOC_LOCALIZER": "vlm",
        "VIDLOC_SAMPLE_FPS": "2",
        "VIDLOC_CHUNK_S": "30",  # one model request per segment
        "VIDLOC_CHUNK_OVERLAP_S": "0",
        "VIDLOC_METRICS_PORT": "0",
    }
    pool = Workers(settings, env, log_dir)
    pool.start(1)
    try:
        wait_group_stable(log_dir, 1)
        yield pool
    finally:
        pool.stop()


class WorkerGroup:
    """Real workers on a video bucket of their own with the fake model, and a watcher: what the
    concurrency and long-video tests share. ``env`` overrides the workers' defaults."""

    def __init__(self, stack: Settings, fake: str, tmp_path: Path, prefix: str, **env: str) -> None:
        self.prefix = prefix
        self.bucket = f"{prefix}-{uuid.uuid4().hex[:8]}"
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
        key = f"{self.prefix}-{uuid.uuid4().hex[:8]}/{path.name}"
        event = upload(self.store, self.bucket, key, path)
        if options:
            event = event.model_copy(update={"options": event.options.model_copy(update=options)})
        return event

    def timeline_stored(self, video_id: str) -> bool:
        return self.store.exists(self.settings.timeline_bucket, names.timeline_key(video_id))

    def results(self, video_ids: Iterable[str]) -> dict[str, list[str]]:
        """Statuses of the final results per video, by this group's workers only: partial ones
        (a long video's spans still run) are not final, and other tests' workers on the shared
        stack (groups of their own, another video bucket) refuse our messages."""
        return {
            v: [
                r.status
                for r in self.watcher.seen.results.get(v, [])
                if not r.partial and (r.error is None or r.error.code != "bucket_not_allowed")
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
