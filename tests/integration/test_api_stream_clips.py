"""Clips of a live stream's events on the real stack: a synthetic recording cut into MPEG-TS
segments as ``vidloc stream`` cuts them, each uploaded and announced on video.ingest (keyed by
the stream id) -> a real worker with the fake model folds them into one stream timeline that
places every segment on the stream clock -> ``GET .../clip`` of an event running across segment
edges: re-encoded from the segments, as long as the event within a frame or two, its mode said;
then the clear errors of a deleted segment and of a timeline written before the index."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import httpx
import pytest
from pipeline import REPO, Workers
from reliability import Ingest, stream_worker
from test_stream import ResultTail, stream_timeline

from contracts import IngestEvent, Timeline, encode
from contracts.common import SourceObject
from devkit.fake_vlm.server import serve_in_thread
from devkit.serve_api import serve_in_thread as serve_api
from devkit.synth.render import ensure_rendered
from devkit.synth.spec import SyntheticEvent, VideoSpec
from producers.notifications import SUBMITTED_META
from producers.segments import parse_segment_list, segment_event_id, segment_key
from vidloc import names
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.app import create_app
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

FPS = 10.0
SEGMENT_S = 2.0
SPEC = VideoSpec(
    name="stream_clip_h264",
    duration_s=8.0,
    fps=FPS,
    width=320,
    height=180,
    codec="h264",
    events=(
        SyntheticEvent("red circle", 1.5, 5.0),  # across the edges at 2 and 4 s
        SyntheticEvent("green square", 6.3, 7.6),
    ),
    gop=10,  # a keyframe a second: the segment muxer cuts every 2 s
)


@pytest.fixture(scope="module")
def clip_settings(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    tmp = tmp_path_factory.mktemp("stream-clips")
    bucket = f"live-clips-{uuid.uuid4().hex[:8]}"
    found = stack.model_copy(
        update={
            "video_bucket": bucket,
            "search_index_path": tmp / "s.sqlite",
            "work_dir": tmp / "work",
        }
    )
    ObjectStore(found).ensure_bucket(bucket)
    return found


@pytest.fixture(scope="module")
def worker(clip_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    base_url, stop = serve_in_thread()
    try:
        with stream_worker(
            clip_settings, base_url, tmp_path_factory.mktemp("stream-clip-worker-logs")
        ) as pool:
            yield pool
    finally:
        stop()


def cut_segments(clip: Path, out: Path) -> list[tuple[Path, float, float]]:
    """FFmpeg's segment muxer as ``vidloc stream`` runs it: (file, start, duration) each."""
    out.mkdir()
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(clip),
         "-map", "0:v:0", "-c", "copy", "-f", "segment", "-segment_time", f"{SEGMENT_S:g}",
         "-reset_timestamps", "0", "-segment_list", str(out / "list.csv"),
         "-segment_list_type", "csv", str(out / "%08d.ts")],
        check=True,
    )  # fmt: skip
    listed = parse_segment_list((out / "list.csv").read_text())
    return [(out / s.file, s.start, s.end - s.start) for s in listed]


def segment_ingest(
    settings: Settings, stream_id: str, seq: int, path: Path | None, start: float, duration: float
) -> IngestEvent:
    """Upload segment ``seq`` (``path``; None: the media-less end marker naming the last one)."""
    store = ObjectStore(settings)
    bucket = settings.video_bucket
    key = segment_key(stream_id, seq if path is not None else seq - 1)
    if path is not None:
        store.upload_file(bucket, key, path, metadata={SUBMITTED_META: "1"})
    info = store.stat(bucket, key)
    source = SourceObject(bucket=bucket, key=key, etag=info.etag, size=info.size)
    wall = datetime.now(UTC) - timedelta(seconds=1)
    return IngestEvent.model_validate(
        {
            "schema": "vidloc.ingest.v1",
            "event_id": segment_event_id(stream_id, seq, source),
            "video_id": stream_id,
            "source": source.model_dump(),
            "options": {"localizer": "vlm"},
            "submitted_at": datetime.now(UTC).isoformat(),
            "stream": {
                "stream_id": stream_id,
                "seq": seq,
                "start_s": start,
                "duration_s": duration,
                "wall_clock": wall.isoformat(),
                "end_of_stream": path is None,
            },
        }
    )


@pytest.fixture(scope="module")
def folded(
    clip_settings: Settings, worker: Workers, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Timeline]:
    """A stream of the recording's segments, folded by the worker to its final timeline."""
    clip = ensure_rendered(SPEC, REPO / ".cache" / "test-media")
    parts = cut_segments(clip, tmp_path_factory.mktemp("segments") / "ts")
    assert len(parts) == 4, parts
    stream_id = f"cam-{uuid.uuid4().hex[:8]}"
    tail = ResultTail(clip_settings)
    tail.follow(stream_id)
    try:
        with Ingest(clip_settings) as ingest:
            for seq, (path, start, duration) in enumerate(parts):
                event = segment_ingest(clip_settings, stream_id, seq, path, start, duration)
                ingest.send_raw(stream_id, encode(event))
            end = sum(d for _, _, d in parts)
            ingest.send_raw(
                stream_id,
                encode(segment_ingest(clip_settings, stream_id, len(parts), None, end, 0.0)),
            )
        final = tail.wait_final(stream_id, 120)
    finally:
        tail.close()
    return stream_id, stream_timeline(clip_settings, final)


@pytest.fixture(scope="module")
def api(clip_settings: Settings) -> Iterator[httpx.Client]:
    base_url, stop = serve_api(create_app(clip_settings))
    try:
        with httpx.Client(base_url=base_url, timeout=120.0) as client:
            yield client
    finally:
        stop()


def frame_count(data: bytes, path: Path) -> int:
    path.write_bytes(data)
    with av.open(str(path)) as clip:
        return sum(1 for _ in clip.decode(video=0))


def test_the_stream_timeline_places_every_segment(folded: tuple[str, Timeline]) -> None:
    stream_id, timeline = folded
    assert timeline.stream is not None and timeline.stream.ended
    index = timeline.stream.segments_index
    assert index is not None and [p.seq for p in index] == [0, 1, 2, 3]
    assert [p.key for p in index] == [segment_key(stream_id, i) for i in range(4)]
    assert [p.start_s for p in index] == pytest.approx([0.0, 2.0, 4.0, 6.0], abs=0.11)


def test_a_clip_across_segment_edges_has_the_events_length(
    folded: tuple[str, Timeline], api: httpx.Client, tmp_path: Path
) -> None:
    stream_id, timeline = folded
    (red,) = [e for e in timeline.events if e.label == "red circle"]
    assert timeline.stream is not None and timeline.stream.segments_index is not None
    edges = [p.start_s for p in timeline.stream.segments_index]
    assert sum(1 for edge in edges if red.start_s < edge < red.end_s) >= 1, (red, edges)

    path = f"/videos/{stream_id}/events/{red.id}/clip"
    first = api.get(path)
    assert first.status_code == 302, first.text
    assert first.headers["x-vidloc-clip-mode"] == "reencode"
    assert first.headers["x-vidloc-clip-cache"] == "miss"
    assert abs(float(first.headers["x-vidloc-clip-start-s"]) - red.start_s) <= 1 / FPS + 1e-6
    data = httpx.get(first.headers["location"], timeout=30.0)
    assert data.status_code == 200 and data.content[4:8] == b"ftyp"
    frames = frame_count(data.content, tmp_path / "red.mp4")
    want = (red.end_s - red.start_s) * FPS
    assert abs(frames - want) <= 2, (frames, want)

    link = api.get(path, headers={"Accept": "application/json"})
    assert link.status_code == 200, link.text
    assert link.json()["mode"] == "reencode" and link.json()["cached"] is True


def test_a_deleted_segment_is_a_clear_404(
    folded: tuple[str, Timeline], api: httpx.Client, clip_settings: Settings
) -> None:
    stream_id, timeline = folded
    (green,) = [e for e in timeline.events if e.label == "green square"]
    ObjectStore(clip_settings).delete(clip_settings.video_bucket, segment_key(stream_id, 3))
    response = api.get(f"/videos/{stream_id}/events/{green.id}/clip")
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "segment_not_found"


def test_a_timeline_without_the_index_is_a_clear_409(
    folded: tuple[str, Timeline], api: httpx.Client, clip_settings: Settings
) -> None:
    _, timeline = folded
    assert timeline.stream is not None
    older_id = f"cam-old-{uuid.uuid4().hex[:8]}"
    older = timeline.model_copy(
        update={
            "video_id": older_id,
            "stream": timeline.stream.model_copy(
                update={"stream_id": older_id, "segments_index": None}
            ),
        }
    )
    ObjectStore(clip_settings).put_bytes(
        clip_settings.timeline_bucket, names.timeline_key(older_id), encode(older)
    )
    response = api.get(f"/videos/{older_id}/events/{timeline.events[0].id}/clip")
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "segments_not_indexed"
