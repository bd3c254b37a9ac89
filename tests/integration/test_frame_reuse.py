"""A later analysis on the real stack (docs/analyses.md): a worker analyses a synthetic video,
then a ``vidloc.ingest.v2`` event asks it a new question. With the frames kept it downloads,
probes and decodes nothing (the video object is even deleted first); its timeline, result and
progress name the analysis; the first timeline is untouched. An expired cache, another
tenant's cache and another object version are misses: decoded again, said in ``warnings``,
and the cache refreshed."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from reliability import Ingest, WorkerGroup, upload, wait_group_stable

from contracts import IngestEvent, ResultEvent, Timeline, decode_timeline, derive_analysis_id
from devkit.fake_vlm.server import serve_in_thread
from devkit.serve_api import serve_in_thread as serve_api
from devkit.synth.catalogue import spec_named
from devkit.synth.render import ensure_rendered
from devkit.synth.spec import SyntheticEvent, VideoSpec
from vidloc import names
from vidloc.api.app import create_app
from vidloc.settings import Settings
from vidloc.tenancy import tenant_of_key

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SPEC = spec_named("h264_mp4")
DAY_S = 86400.0
# Three minutes in 30 s chunks, split in 60 s spans: the first analysis runs on span orders.
LONG = VideoSpec(
    name="reuse_spans_h264",
    duration_s=180.0,
    fps=4.0,
    width=256,
    height=144,
    codec="h264",
    events=(SyntheticEvent("red circle", 20.0, 28.0), SyntheticEvent("green square", 130.0, 140.0)),
    gop=40,
)


@pytest.fixture(scope="module")
def clip() -> Path:
    return ensure_rendered(SPEC, REPO / ".cache" / "test-media")


@pytest.fixture
def fake() -> Iterator[str]:
    base_url, stop = serve_in_thread()
    yield base_url
    stop()


class Rig:
    """One worker with its /metrics served on a port of its own."""

    def __init__(self, stack: Settings, fake: str, tmp_path: Path, **env: str) -> None:
        self.port = _free_port()
        env = {"VIDLOC_METRICS_PORT": str(self.port), **env}
        self.group = WorkerGroup(stack, fake, tmp_path, "reuse", **env)
        self.store = self.group.store
        self.bucket = self.group.settings.timeline_bucket

    def start(self) -> None:
        self.group.workers.start(1)
        wait_group_stable(self.group.log_dir, 1)

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10).text
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def decoded(self) -> float:
        return self.metric("vidloc_frames_decoded_total")

    def run(self, event: IngestEvent, timeout_s: float = 120.0) -> ResultEvent:
        """Publish ``event`` and wait for its job's final result."""
        job_id = event.job_id
        with Ingest(self.group.settings) as ingest:
            ingest.send(event)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.group.watcher.drain(0.5)
            for result in self.group.watcher.seen.results.get(event.effective_video_id, []):
                if result.job_id == job_id and not result.partial:
                    return result
        raise AssertionError(f"no result for {job_id}\n{self.group.workers.logs()}")

    def manifest_key(self, event: IngestEvent) -> str:
        prefix = names.frame_cache_prefix(
            event.effective_video_id, event.version_tag, tenant_of_key(event.source.key)
        )
        return prefix + "manifest.json"

    def close(self) -> None:
        self.group.close()


@pytest.fixture
def rig(stack: Settings, fake: str, tmp_path: Path) -> Iterator[Rig]:
    made = Rig(stack, fake, tmp_path)
    try:
        made.start()
        yield made
    finally:
        made.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ask(first: IngestEvent, labels: list[str], prompt: str) -> IngestEvent:
    """A later analysis of ``first``'s video and object version."""
    event_id = f"ask-{uuid.uuid4().hex}"
    doc: dict[str, Any] = first.model_dump(mode="json", by_alias=True, exclude_none=True)
    doc.update(
        {
            "schema": "vidloc.ingest.v2",
            "event_id": event_id,
            "video_id": first.effective_video_id,
            "analysis": {"id": derive_analysis_id(event_id)},
            "options": {"localizer": "vlm", "labels": labels, "prompt": prompt},
        }
    )
    return IngestEvent.model_validate(doc)


def _codes(result: ResultEvent) -> list[str]:
    return [w.code for w in result.warnings]


def test_a_later_analysis_decodes_nothing_and_leaves_the_first_alone(rig: Rig, clip: Path) -> None:
    first = rig.group.upload(clip, labels=["red circle"])
    done = rig.run(first)
    assert done.status == "succeeded", done.error
    assert done.analysis_id is None
    first_key = names.timeline_key(first.effective_video_id)
    first_bytes = rig.store.get_bytes(rig.bucket, first_key)
    manifest = json.loads(rig.store.get_bytes(rig.bucket, rig.manifest_key(first)))
    assert manifest["frames"] > 0 and manifest["bytes_per_minute"] > 0
    decoded_before = rig.decoded()
    assert decoded_before >= manifest["frames"]

    # No download is possible: the video object is gone.
    rig.store.delete(first.source.bucket, first.source.key)
    later = ask(first, ["blue triangle"], "When is the blue triangle visible?")
    assert later.analysis is not None
    aid = later.analysis.id
    result = rig.run(later)

    assert result.status == "succeeded", (result.error, rig.group.workers.logs())
    assert result.analysis_id == aid
    key = names.analysis_timeline_key(first.effective_video_id, aid)
    assert result.timeline is not None and result.timeline.key == key
    timeline = decode_timeline(rig.store.get_bytes(rig.bucket, key))
    assert timeline.analysis_id == aid and timeline.labels == ["blue triangle"]
    assert "frame_cache_miss" not in _codes(result)
    assert "refine_skipped" in _codes(result)  # refinement is on by default; it would decode
    assert rig.decoded() == decoded_before
    assert rig.metric("vidloc_frame_cache_lookups_total", outcome="hit") == 1
    progress = [
        p
        for p in rig.group.watcher.seen.progress[first.effective_video_id]
        if p.job_id == later.job_id
    ]
    assert progress and all(p.analysis_id == aid for p in progress)
    assert not {"downloading", "probing"} & {p.stage for p in progress}
    assert rig.store.get_bytes(rig.bucket, first_key) == first_bytes


def test_expired_other_tenant_and_other_version_miss_and_refresh(
    rig: Rig, clip: Path, tmp_path: Path
) -> None:
    video_id = f"reuse-{uuid.uuid4().hex[:8]}"
    bucket = rig.group.bucket

    def analysed(key: str, source: Path) -> IngestEvent:
        event = upload(rig.store, bucket, key, source)
        event = event.model_copy(update={"video_id": video_id})
        done = rig.run(event)
        assert done.status == "succeeded", done.error
        return event

    mine = analysed(f"tenants/acme/{video_id}/clip.mp4", clip)
    # Expired: the manifest says it was made 60 days ago.
    key = rig.manifest_key(mine)
    doc = json.loads(rig.store.get_bytes(rig.bucket, key))
    doc["created_at"] = time.time() - 60 * DAY_S
    rig.store.put_bytes(rig.bucket, key, json.dumps(doc).encode())
    before = rig.decoded()
    result = rig.run(ask(mine, ["green square"], "green?"))
    assert result.status == "succeeded", result.error
    miss = [w for w in result.warnings if w.code == "frame_cache_miss"]
    assert miss and "older than" in miss[0].message
    assert rig.decoded() > before
    refreshed = json.loads(rig.store.get_bytes(rig.bucket, key))
    assert refreshed["created_at"] > time.time() - 600
    before = rig.decoded()
    again = rig.run(ask(mine, ["red circle"], "red?"))
    assert "frame_cache_miss" not in _codes(again) and rig.decoded() == before

    # Another tenant, the same relative key and video id: its own first analysis, but the
    # cache it made is gone; acme's must not serve it.
    theirs = analysed(f"tenants/globex/{video_id}/clip.mp4", clip)
    rig.store.delete(rig.bucket, rig.manifest_key(theirs))
    before = rig.decoded()
    result = rig.run(ask(theirs, ["green square"], "green?"))
    assert result.status == "succeeded" and result.tenant == "globex"
    assert any("no frames are kept" in w.message for w in result.warnings), result.warnings
    assert rig.decoded() > before

    # Another object version: the same key uploaded again with other bytes (a new etag).
    other = tmp_path / "clip-v2.mp4"
    other.write_bytes(clip.read_bytes() + b"\0" * 16)  # trailing bytes: another etag
    second = upload(rig.store, bucket, mine.source.key, other).model_copy(
        update={"video_id": video_id}
    )
    assert second.version_tag != mine.version_tag
    before = rig.decoded()
    result = rig.run(ask(second, ["green square"], "green?"))
    assert result.status == "succeeded", result.error
    assert any("no frames are kept" in w.message for w in result.warnings), result.warnings
    assert rig.decoded() > before
    assert rig.store.exists(rig.bucket, rig.manifest_key(second))  # refreshed for the new one

    misses = rig.metric("vidloc_frame_cache_lookups_total", outcome="miss")
    assert misses == 3
    assert re.search(r"frame cache: \d+ frames kept", rig.group.workers.logs() + _all_logs(rig))


def _all_logs(rig: Rig) -> str:
    return "\n".join(p.read_text(errors="replace") for p in rig.group.log_dir.glob("*.log"))


def test_a_long_videos_spans_fill_the_cache_and_its_later_analysis_runs_in_spans_too(
    stack: Settings, fake: str, tmp_path: Path
) -> None:
    path = ensure_rendered(LONG, REPO / ".cache" / "test-media")
    rig = Rig(stack, fake, tmp_path, VIDLOC_SPAN_S="60", VIDLOC_REFINE="false")
    try:
        rig.start()
        first = rig.group.upload(path, labels=["red circle"])
        done = rig.run(first, timeout_s=240)
        assert done.status == "succeeded", (done.error, rig.group.workers.logs())
        manifest = json.loads(rig.store.get_bytes(rig.bucket, rig.manifest_key(first)))
        chunks = len(manifest["sampling"]["chunks"])
        assert chunks == 6 and manifest["parts"] == list(range(chunks))
        decoded_before = rig.decoded()

        later = ask(first, ["green square"], "When is the green square visible?")
        result = rig.run(later, timeout_s=240)
        assert result.status == "succeeded", (result.error, rig.group.workers.logs())
        assert result.analysis_id == later.analysis_id
        assert rig.decoded() == decoded_before
        progress = [
            p
            for p in rig.group.watcher.seen.progress[first.effective_video_id]
            if p.job_id == later.job_id
        ]
        assert any("spans queued" in p.message for p in progress), [p.message for p in progress]
        assert not {"downloading", "probing"} & {p.stage for p in progress}
        timeline = decode_timeline(
            rig.store.get_bytes(
                rig.bucket,
                names.analysis_timeline_key(first.effective_video_id, later.analysis_id),
            )
        )
        assert timeline.sampling.chunks == chunks and timeline.analysis_id == later.analysis_id
        assert [e.label for e in timeline.events] == ["green square"]
        later_key = names.analysis_timeline_key(first.effective_video_id, later.analysis_id)
        _assert_thumbnailed(rig, later_key)
        # Both were merged from span checkpoints (no frame passed the merging member): their
        # thumbnails come from the frame cache; the API serves the first analysis's.
        first_key = names.timeline_key(first.effective_video_id)
        first_timeline = _assert_thumbnailed(rig, first_key)
        app = create_app(
            rig.group.settings.model_copy(update={"search_index_path": tmp_path / "s.sqlite"})
        )
        base_url, stop = serve_api(app)
        try:
            with httpx.Client(base_url=base_url, timeout=15.0) as http:
                for event in first_timeline.events:
                    url = f"/videos/{first.effective_video_id}/events/{event.id}/thumbnail"
                    served = http.get(url)
                    assert served.status_code == 200, served.text
                    stored = rig.store.get_bytes(
                        rig.bucket, f"{first_key.rsplit('/', 1)[0]}/{event.thumbnail}"
                    )
                    assert served.content == stored
        finally:
            stop()
    finally:
        rig.close()


def _assert_thumbnailed(rig: Rig, key: str) -> Timeline:
    """Every event of the timeline at ``key`` names a thumbnail stored beside it: a small JPEG."""
    timeline = decode_timeline(rig.store.get_bytes(rig.bucket, key))
    assert timeline.events
    folder = key.rsplit("/", 1)[0]
    for event in timeline.events:
        assert event.thumbnail is not None, (event, rig.group.workers.logs())
        stored = rig.store.get_bytes(rig.bucket, f"{folder}/{event.thumbnail}")
        picture = cv2.imdecode(np.frombuffer(stored, np.uint8), cv2.IMREAD_COLOR)
        assert picture is not None and max(picture.shape[:2]) <= 320
    return timeline
