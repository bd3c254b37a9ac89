"""A duplicate flood runs one job (issue 16, finding 4), through a real worker, Kafka and S3.

20 copies of one ingest event and 30 events with distinct ids for the same object and options
used to run 50 full jobs. Now the first runs; every other one is answered from its stored result
(the copies with the identical result event, the others with their own job ids, zero usage and
a ``duplicate_work`` warning), and a different upload queued behind the flood still completes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline import REPO, Watcher, Workers
from reliability import Ingest, ingest_event, one_worker, record, upload

from contracts import ResultEvent, derive_job_id
from devkit.synth.catalogue import standard_specs
from devkit.synth.render import ensure_rendered
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

MEDIA_CACHE = REPO / ".cache" / "test-media"
SAME, DISTINCT = 20, 30


@pytest.fixture
def worker(tmp_path: Path, stack: Settings) -> Iterator[tuple[Settings, Workers, Watcher]]:
    with one_worker(stack, tmp_path, "dups") as running:
        yield running


def test_a_duplicate_flood_runs_one_job(
    worker: tuple[Settings, Workers, Watcher], tmp_path: Path
) -> None:
    settings, workers, watcher = worker
    store, bucket = ObjectStore(settings), settings.video_bucket
    clip = ensure_rendered({s.name: s for s in standard_specs()}["h264_mp4"], MEDIA_CACHE)
    run = uuid.uuid4().hex[:8]
    first = upload(store, bucket, f"flood-{run}.mp4", clip)
    first = first.model_copy(
        update={"options": first.options.model_copy(update={"localizer": "cv"})}
    )
    src = first.source
    distinct = [
        ingest_event(src.bucket, src.key, src.etag, src.size, localizer="cv")
        for _ in range(DISTINCT)
    ]
    after = upload(store, bucket, f"after-flood-{run}.mp4", clip)  # same bytes, another object
    with Ingest(settings) as ingest:
        for _ in range(SAME):
            video_id = ingest.send(first, partition=0)
        for event in distinct:
            ingest.send(event, partition=0)
        after_id = ingest.send(after, partition=0)

    def mine(video: str) -> list[ResultEvent]:
        # Other tests' workers (own groups, same topic) refuse these with bucket_not_allowed.
        return [r for r in watcher.seen.results.get(video, []) if r.status == "succeeded"]

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not mine(after_id):
        watcher.drain()
    watcher.drain(2.0)
    assert mine(after_id), f"the upload behind the flood never completed\n{workers.logs()}"
    flood = mine(video_id)
    assert len(flood) == SAME + DISTINCT, workers.logs()
    log = "\n".join(p.read_text(errors="replace") for p in tmp_path.glob("worker-*.log"))
    assert log.count("job succeeded") == 2, "the flood ran more than one job"  # + the one after
    first_job = derive_job_id(first.event_id)
    copies = [r for r in flood if r.job_id == first_job]
    assert len(copies) == SAME
    assert len({(r.event_id, r.timeline) for r in copies}) == 1  # one event id: one result
    answers = [r for r in flood if r.job_id != first_job]
    assert sorted(r.job_id for r in answers) == sorted(derive_job_id(e.event_id) for e in distinct)
    assert {r.timeline for r in answers} == {copies[0].timeline}
    assert all([w.code for w in r.warnings] == ["duplicate_work"] for r in answers)
    record("duplicates", "flood_of_50", jobs_run=1, answered=len(flood) - 1)
