"""HLS written to the bucket becomes a live stream: an encoder's playlist and segments uploaded
one segment at a time under ``hls/<stream-id>/`` -> the store's bucket notifications ->
``s3.events`` -> a real bridge -> ``video.ingest`` -> a real worker with the fake model -> one
growing timeline, each event found once, a final result once the playlist says #EXT-X-ENDLIST.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline import REPO, Workers
from reliability import stream_worker
from test_stream import MATCH_S, ResultTail, stream_timeline, wait_until

from contracts import decode_ingest, decode_timeline
from devkit.fake_vlm.server import serve_in_thread
from devkit.synth.render import ensure_rendered
from devkit.synth.spec import SyntheticEvent, VideoSpec
from producers.bridge import run_bridge
from producers.hls import parse_playlist
from vidloc import names
from vidloc.adapters.kafka import BusRecord, TopicReader, park_group_at_end
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

HLS_TIME_S = 2.0
SPEC = VideoSpec(
    name="hls_bucket_h264",
    duration_s=12.0,
    fps=10.0,
    width=320,
    height=180,
    codec="h264",
    events=(
        SyntheticEvent("red circle", 1.5, 5.0),  # across two segment edges
        SyntheticEvent("green square", 7.0, 11.0),
    ),
    gop=10,  # a keyframe a second: FFmpeg's HLS muxer cuts every 2 s
)


@pytest.fixture(scope="module")
def hls_settings(stack: Settings) -> Settings:
    bucket = f"hls-{uuid.uuid4().hex[:8]}"
    settings = stack.model_copy(update={"video_bucket": bucket})
    ObjectStore(settings).ensure_bucket(bucket)
    return settings


@pytest.fixture(scope="module")
def fake_model() -> Iterator[str]:
    base_url, stop = serve_in_thread()
    yield base_url
    stop()


@pytest.fixture(scope="module")
def worker(
    hls_settings: Settings, fake_model: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    with stream_worker(
        hls_settings, fake_model, tmp_path_factory.mktemp("hls-worker-logs")
    ) as pool:
        yield pool


@pytest.fixture(scope="module")
def bridge(hls_settings: Settings) -> Iterator[threading.Thread]:
    group = f"test-hls-bridge-{uuid.uuid4().hex[:8]}"
    park_group_at_end(hls_settings, group, names.TOPIC_S3_EVENTS)
    stop = threading.Event()
    thread = threading.Thread(
        target=run_bridge,
        kwargs={"settings": hls_settings, "stop": stop, "group_id": group},
        name="test-hls-bridge",
        daemon=True,
    )
    thread.start()
    yield thread
    stop.set()
    thread.join(timeout=20)
    assert not thread.is_alive(), "the bridge did not stop within 20 s of stop.set()"


def encode_hls(clip: Path, out: Path) -> str:
    """FFmpeg's HLS muxer, as an encoder would run it; returns its (complete) playlist."""
    out.mkdir()
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(clip),
         "-map", "0:v:0", "-c", "copy", "-f", "hls", "-hls_time", f"{HLS_TIME_S:g}",
         "-hls_list_size", "0", "-hls_segment_filename", str(out / "seg%03d.ts"),
         str(out / "index.m3u8")],
        check=True,
    )  # fmt: skip
    return (out / "index.m3u8").read_text()


def playlist_upto(text: str, count: int, *, ended: bool) -> bytes:
    """The playlist as the encoder had written it after ``count`` segments."""
    lines = [ln for ln in text.splitlines() if ln and ln != "#EXT-X-ENDLIST"]
    first = next(i for i, ln in enumerate(lines) if ln.startswith("#EXTINF"))
    body = lines[first : first + 2 * count]
    return ("\n".join(lines[:first] + body + (["#EXT-X-ENDLIST"] if ended else [])) + "\n").encode()


def drain(stream: TopicReader) -> list[BusRecord]:
    """Everything the tail holds, until a poll brings nothing."""
    records: list[BusRecord] = []
    while batch := stream.poll(timeout_s=2.0, max_records=1000):
        records += batch
    return records


def test_hls_in_the_bucket_grows_one_stream_timeline(
    hls_settings: Settings,
    worker: Workers,
    bridge: threading.Thread,
    tmp_path: Path,
) -> None:
    clip = ensure_rendered(SPEC, REPO / ".cache" / "test-media")
    full = encode_hls(clip, tmp_path / "hls")
    segments = parse_playlist(full).segments
    assert len(segments) >= 5, full
    stream_id = f"cam-{uuid.uuid4().hex[:8]}"
    prefix = f"hls/{stream_id}/"
    bucket = hls_settings.video_bucket
    store = ObjectStore(hls_settings)
    tail = ResultTail(hls_settings)
    results = tail.follow(stream_id)
    ingest = TopicReader.tail(hls_settings, [names.TOPIC_INGEST])
    try:
        for count, seg in enumerate(segments, start=1):
            store.upload_file(bucket, prefix + seg.uri, tmp_path / "hls" / seg.uri)
            store.put_bytes(
                bucket,
                prefix + "index.m3u8",
                playlist_upto(full, count, ended=False),
                content_type="application/vnd.apple.mpegurl",
            )
            if count == 3:
                # The store notifies again (same version) and the encoder rewrites the playlist
                # unchanged (a new version naming nothing new): neither bridges anything again.
                again = playlist_upto(full, count, ended=False)
                store.put_bytes(bucket, prefix + "index.m3u8", again)
                store.put_bytes(bucket, prefix + "index.m3u8", again + b"\n")
            if count == 2:
                # Mid-stream: the timeline holds the first two segments and will grow.
                wait_until(lambda: any(r.stream and r.stream.seq == 1 for _, r in results.got), 60)
                mid = decode_timeline(store.get_bytes(*_timeline_at(hls_settings, stream_id)))
            time.sleep(0.5)
        store.put_bytes(
            bucket, prefix + "index.m3u8", playlist_upto(full, len(segments), ended=True)
        )
        final = tail.wait_final(stream_id, 90)
        bridged = [decode_ingest(r.value) for r in drain(ingest)]
        sent = [e.event_id for e in bridged if e.source.key.startswith(prefix)]
    finally:
        tail.close()
        ingest.close()
    timeline = stream_timeline(hls_settings, final)
    n = len(segments)

    # One stream event per segment plus the end marker, each once; no segment as a plain video.
    ours = {e.event_id: e for e in bridged if e.source.key.startswith(prefix)}
    assert len(sent) == len(ours), sorted(sent)  # each published once
    assert all(e.stream is not None and e.stream.stream_id == stream_id for e in ours.values())
    assert sorted(e.stream.seq for e in ours.values() if e.stream) == list(range(n + 1))
    starts = [e.stream.start_s for e in sorted(ours.values(), key=lambda e: e.event_id) if e.stream]
    expected = [sum(s.duration_s for s in segments[:i]) for i in range(n)]
    assert starts[:n] == pytest.approx(expected, abs=1e-3)  # #EXTINF sums on the stream clock

    # Every segment folded once, in order, then the end: one final result.
    by_seq: dict[int, set[str]] = {}
    for _, r in results.got:
        assert r.stream is not None
        by_seq.setdefault(r.stream.seq, set()).add(r.event_id)
    assert sorted(by_seq) == list(range(n + 1)), sorted(by_seq)
    assert all(len(ids) == 1 for ids in by_seq.values()), by_seq
    assert [r.partial for _, r in results.got].count(False) == 1
    assert timeline.stream is not None and timeline.stream.ended
    assert timeline.stream.segments == n + 1 and timeline.stream.gaps == []
    assert timeline.stream.covered_s == pytest.approx(sum(s.duration_s for s in segments), abs=0.01)

    # Each event found once, where it happened, reported new in exactly one update.
    assert sorted(e.label for e in timeline.events) == sorted(e.label for e in SPEC.events)
    for truth in SPEC.events:
        (event,) = [e for e in timeline.events if e.label == truth.label]
        assert abs(event.start_s - truth.start_s) <= MATCH_S, (truth, event)
        assert abs(event.end_s - truth.end_s) <= MATCH_S, (truth, event)
    new_ids = [i for _, r in results.got if r.stream for i in r.stream.new_events]
    assert sorted(new_ids) == sorted(e.id for e in timeline.events)

    # The timeline grew: mid-stream it was open and shorter, and its event kept its id as it
    # was extended across the segment edges.
    assert mid.stream is not None and not mid.stream.ended and mid.stream.last_seq == 1
    assert mid.video.duration_s < timeline.video.duration_s
    (early,) = [e for e in mid.events if e.label == "red circle"]
    (late,) = [e for e in timeline.events if e.label == "red circle"]
    assert early.id == late.id and early.end_s < late.end_s
    extended = [i for _, r in results.got if r.stream for i in r.stream.extended_events]
    assert late.id in extended


def _timeline_at(settings: Settings, stream_id: str) -> tuple[str, str]:
    return settings.timeline_bucket, names.timeline_key(stream_id)
