"""A long video on the whole group (docs/delivery.md "Long videos"), on the real stack.

The member that takes the ingest event hands the video to the group in spans and frees the
ingest partition; the spans run on every member, each from its own start; one member merges
once. Read the way users must read results (``read_committed``): one final result, partial
results before it, every truth event once (an event across a span edge too), every chunk paid
once, and a short clip published right behind the long video on the same partition is answered
before the long video is done.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline import REPO
from reliability import Ingest, WorkerGroup, fake_stats, wait_group_stable

from contracts import decode_timeline
from devkit.fake_vlm.server import serve_in_thread
from devkit.synth.catalogue import spec_named
from devkit.synth.render import ensure_rendered
from devkit.synth.spec import Segment, SyntheticEvent, VideoSpec
from vidloc import names
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

MEDIA_CACHE = REPO / ".cache" / "test-media"
SPAN_S = 120.0
CHUNK_S = 30.0
E = SyntheticEvent
# Eight minutes: four spans of four 30 s chunks; one event crosses the 240 s span edge.
LONG = VideoSpec(
    name="long_spans_h264",
    duration_s=480.0,
    fps=4.0,
    width=256,
    height=144,
    codec="h264",
    cuts=(100.0, 300.0),
    events=(
        E("red circle", 20.0, 28.0),
        E("green square", 150.0, 160.0),
        E("blue triangle", 234.0, 250.0),  # across the edge of spans 2 and 3 (240 s)
        E("yellow star", 400.0, 412.0),
    ),
    black_segments=(Segment(330.0, 334.0),),
    gop=40,
)
CHUNKS = int(LONG.duration_s // CHUNK_S)


@pytest.fixture(scope="module")
def long_clip() -> Path:
    return ensure_rendered(LONG, MEDIA_CACHE)


@pytest.fixture(scope="module")
def short_clip() -> Path:
    return ensure_rendered(spec_named("h264_mp4"), MEDIA_CACHE)


def _group(stack: Settings, tmp_path: Path, fake: str) -> WorkerGroup:
    return WorkerGroup(
        stack,
        fake,
        tmp_path,
        "long",
        VIDLOC_CHUNK_S=str(CHUNK_S),
        VIDLOC_SPAN_S=str(SPAN_S),
        VIDLOC_REFINE="false",  # every model request is a chunk's: counted exactly
    )


@pytest.fixture
def fake() -> Iterator[str]:
    base_url, stop = serve_in_thread()
    yield base_url
    stop()


def _found_once(events: list[tuple[str, float, float]], truth: SyntheticEvent) -> int:
    """How many timeline events of the truth's label overlap it (within one sample)."""
    return sum(
        1
        for label, start, end in events
        if label == truth.label and start <= truth.end_s + 1.0 and end >= truth.start_s - 1.0
    )


def test_a_long_video_runs_on_every_member_and_is_merged_once(
    stack: Settings, tmp_path: Path, fake: str, long_clip: Path, short_clip: Path
) -> None:
    group = _group(stack, tmp_path, fake)
    try:
        group.workers.start(2)
        wait_group_stable(group.log_dir, 2)
        long_event = group.upload(long_clip)
        short_event = group.upload(short_clip)
        long_id, short_id = long_event.effective_video_id, short_event.effective_video_id
        with Ingest(group.settings) as ingest:
            # The same partition: the short clip is right behind the long video.
            ingest.send(long_event, partition=0)
            ingest.send(short_event, partition=0)
        group.wait_results([long_id, short_id], timeout_s=240, settle_s=4.0)
        seen = group.watcher.seen

        # One final result for each; partial results for the long video came before its final.
        finals = group.results([long_id, short_id])
        assert finals == {long_id: ["succeeded"], short_id: ["succeeded"]}, group.workers.logs()
        # Other groups' workers on the shared stack refuse our messages (see group.results).
        long_results = [
            r
            for r in seen.results[long_id]
            if r.error is None or r.error.code != "bucket_not_allowed"
        ]
        partials = [r for r in long_results if r.partial]
        final = next(r for r in long_results if not r.partial)
        assert partials, "no partial result before the final one"
        assert long_results[-1] is final
        # The short clip did not wait for the long video.
        short_final = next(r for r in seen.results[short_id] if not r.partial)
        assert short_final.created_at < final.created_at

        # Every chunk was sent to the model once, and the bill says so.
        stats = fake_stats(fake)
        long_requests = stats["requests"] - 1  # the short clip's one request
        assert long_requests == CHUNKS, stats
        assert final.usage.requests == CHUNKS

        # Progress counted the whole video's chunks.
        totals = {p.chunks_total for p in seen.progress[long_id] if p.chunks_total}
        assert totals == {CHUNKS}

        # Both members took spans, each decoding from its own span's start.
        logs = [p.read_text() for p in sorted(group.log_dir.glob("worker-*.log"))]
        taken = [set(re.findall(r"span (\d+) of (\d+) \(", text)) for text in logs]
        assert all(taken), f"a member took no span: {taken}"
        (count,) = {n for spans in taken for _, n in spans}
        assert {i for spans in taken for i, _ in spans} == {str(i + 1) for i in range(int(count))}
        # Neither the hand-off nor the merge downloaded the video: each read a part by ranges.
        for step in ("hand-off", "merge"):
            [(fetched, size)] = re.findall(rf"{step} read (\d+) of (\d+) bytes", "".join(logs))
            assert 0 < int(fetched) < int(size), (step, fetched, size)

        # One timeline: every truth event once, the one across the span edge too.
        data = group.store.get_bytes(group.settings.timeline_bucket, names.timeline_key(long_id))
        timeline = decode_timeline(data)
        assert not any(w.code == "spans_pending" for w in timeline.warnings)
        events = [(e.label, e.start_s, e.end_s) for e in timeline.events]
        for truth in LONG.events:
            assert _found_once(events, truth) == 1, (truth, events)
        crossing = next(e for e in timeline.events if e.label == "blue triangle")
        assert crossing.start_s <= 235.0 and crossing.end_s >= 249.0

        # A copy of the long video (a new event id, the same object version and options) is
        # answered from the merge's work marker: no hand-off, no model request.
        copy = long_event.model_copy(update={"event_id": f"copy-{uuid.uuid4().hex}"})
        before = len(group.results([long_id])[long_id])
        with Ingest(group.settings) as ingest:
            ingest.send(copy)
        deadline = time.monotonic() + 60
        while len(group.results([long_id])[long_id]) == before and time.monotonic() < deadline:
            group.watcher.drain()
        answer = group.watcher.seen.results[long_id][-1]
        assert answer.status == "succeeded" and not answer.partial
        assert answer.job_id == copy.job_id and answer.timeline == final.timeline
        assert fake_stats(fake)["requests"] == stats["requests"]
    finally:
        group.close()
