"""A poison pill cannot hold a partition (issue 16, finding 1), through a real worker and Kafka.

An ingest message nested 100,000 deep used to raise RecursionError in the decoder; the worker
retried that offset every 30 s forever and nothing behind it on the partition ever ran. Now it
is refused (``message_too_deep``) with a failed result and a DLQ record under the sender's own
ids, and a normal message sent after it on the same partition still completes.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline import REPO, Watcher, Workers
from reliability import Ingest, one_worker, record, upload

from contracts import ResultEvent, derive_job_id
from devkit.synth.catalogue import standard_specs
from devkit.synth.render import ensure_rendered
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

MEDIA_CACHE = REPO / ".cache" / "test-media"
DEPTH = 100_000


def deep_ingest(bucket: str, event_id: str, video_id: str) -> bytes:
    """A well-formed ingest event but for ``options.extra``: 100,000 nested arrays (~200 KB)."""
    head = {
        "schema": "vidloc.ingest.v1",
        "event_id": event_id,
        "video_id": video_id,
        "source": {"bucket": bucket, "key": "poison/a.mp4", "etag": "e", "size": 1},
        "submitted_at": "2026-11-29T00:00:00Z",
    }
    nested = "[" * DEPTH + "]" * DEPTH
    return (json.dumps(head)[:-1] + ', "options": {"extra": {"x": ' + nested + "}}}").encode()


@pytest.fixture
def worker(tmp_path: Path, stack: Settings) -> Iterator[tuple[Settings, Workers, Watcher]]:
    with one_worker(stack, tmp_path, "poison") as running:
        yield running


def test_a_100000_deep_message_is_dead_lettered_and_the_partition_moves_on(
    worker: tuple[Settings, Workers, Watcher], tmp_path: Path
) -> None:
    settings, workers, watcher = worker
    run = uuid.uuid4().hex[:8]
    poison_id, poison_event = f"poison-{run}", f"evt-poison-{run}"
    # No ids readable at all: bare brackets, announced under the Kafka key it was sent with.
    bare_key = f"bare-{run}"
    good = upload(
        ObjectStore(settings),
        settings.video_bucket,
        f"after-poison-{run}.mp4",
        ensure_rendered({s.name: s for s in standard_specs()}["h264_mp4"], MEDIA_CACHE),
    )
    with Ingest(settings) as ingest:
        ingest.send_raw(poison_id, deep_ingest(settings.video_bucket, poison_event, poison_id), 0)
        ingest.send_raw(bare_key, ("[" * DEPTH + "]" * DEPTH).encode(), 0)
        good_id = ingest.send(good, partition=0)
    # Other tests' workers (their own groups) may answer these messages too, so the proof that
    # this worker got past the poison is the one thing only it can do: succeed on the video
    # in its own bucket, which sits behind both on partition 0.
    seen = watcher.seen
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and not _succeeded(seen.results.get(good_id, [])):
        watcher.drain()
    watcher.drain(2.0)
    assert _succeeded(seen.results.get(good_id, [])), (
        f"the message behind the poison never completed\n{workers.logs()}"
    )
    worker_log = "\n".join(p.read_text(errors="replace") for p in tmp_path.glob("worker-*.log"))
    assert worker_log.count("levels deep; the limit is 64") >= 2, workers.logs()
    poisoned = _failed_with(seen.results.get(poison_id, []), "message_too_deep")
    assert poisoned, seen.results.get(poison_id)
    assert {r.job_id for r in poisoned} == {derive_job_id(poison_event)}  # the sender can match
    assert {r.error.code for r in seen.dlq[poison_id] if r.error} >= {"message_too_deep"}
    assert all(d.source.partition == 0 for d in seen.dlq[poison_id])
    assert _failed_with(seen.results.get(bare_key, []), "message_too_deep")
    assert {r.error.code for r in seen.dlq[bare_key] if r.error} >= {"message_too_deep"}
    record("poison", "deep_message_then_good", after="succeeded")


def _succeeded(results: list[ResultEvent]) -> bool:
    return any(r.status == "succeeded" for r in results)


def _failed_with(results: list[ResultEvent], code: str) -> list[ResultEvent]:
    return [r for r in results if r.error is not None and r.error.code == code]
