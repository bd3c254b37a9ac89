"""A span's worker reads only its part of the video from the real store (versitygw), by ranges.

The member that hands a long video off reads only its header and end (probe by ranges), with
the facts the full probe of the downloaded file gives, or falls back to that probe.

No download, no probe: the decoder child opens the object through the ranged reader, seeks to
the keyframe before the span, and fetches well under the whole object for a middle span. The
frames are the ones decoding the downloaded file gives (irregular keyframes too), and an object
replaced while a span reads it fails clearly instead of mixing two versions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from contracts import IngestEvent
from devkit.fake_vlm.faults import Fault
from devkit.fake_vlm.server import FakeConfig, serve_in_thread
from devkit.synth.catalogue import spec_named
from devkit.synth.matrix import MatrixClip, render_clip
from devkit.synth.render import corrupt_copy, ensure_rendered
from devkit.synth.spec import SyntheticEvent, VideoSpec
from vidloc.adapters.object_store import ObjectStore
from vidloc.adapters.ranged_reader import RangedReader
from vidloc.errors import ObjectMissing
from vidloc.metrics import Metrics
from vidloc.settings import Settings
from workers.frames import close_source, open_ranged_source
from workers.frames.probe import probe_video
from workers.frames.pyav_source import PyAVSource
from workers.pipeline.job import HandOff, JobRunner
from workers.priority import PrioritySlots, in_background
from workers.service.main import localizer_factory, ranged_opener, source_opener

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MEDIA = REPO / ".cache" / "test-media"
CHUNK_S = 30.0
# Eight minutes in 16 chunks of 30 s, keyframes every 10 s; four spans of four chunks.
SPEC = VideoSpec(
    name="span_reads_h264",
    duration_s=480.0,
    fps=4.0,
    width=320,
    height=180,
    codec="h264",
    cuts=(100.0, 300.0),
    events=(SyntheticEvent("red circle", 250.0, 262.0),),
    gop=40,
    noise=4.0,  # bytes spread over the whole file, as real footage's are
)
CHUNKS = int(SPEC.duration_s // CHUNK_S)


@pytest.fixture
def uploaded(stack: Settings, tmp_path: Path) -> Iterator[tuple[Settings, ObjectStore, str, str]]:
    bucket = f"ranged-{uuid.uuid4().hex[:8]}"
    settings = stack.model_copy(
        update={
            "video_bucket": bucket,
            "work_dir": tmp_path,
            "localizer": "cv",
            "chunk_s": CHUNK_S,
            "sample_fps": 1.0,
            "refine": False,
        }
    )
    store = ObjectStore(settings)
    store.ensure_bucket(bucket)
    info = store.upload_file(bucket, SPEC.filename, ensure_rendered(SPEC, MEDIA))
    yield settings, store, bucket, info.etag


def _order(
    bucket: str, etag: str, size: int, first: int, end: int, localizer: str = "cv"
) -> IngestEvent:
    return IngestEvent.model_validate(
        {
            "event_id": f"ranged-{uuid.uuid4().hex[:8]}",
            "source": {"bucket": bucket, "key": SPEC.filename, "etag": etag, "size": size},
            "options": {"localizer": localizer, "sample_fps": 1.0, "chunk_s": CHUNK_S},
            "submitted_at": datetime.now(UTC).isoformat(),
            "span": {
                "role": "order",
                "index": first // (end - first),
                "count": CHUNKS // (end - first),
                "first_chunk": first,
                "end_chunk": end,
                "chunks_total": CHUNKS,
                "start_s": first * CHUNK_S,
                "end_s": end * CHUNK_S,
                "video": {
                    "duration_s": SPEC.duration_s,
                    "fps": SPEC.fps,
                    "width": SPEC.width,
                    "height": SPEC.height,
                    "codec": "h264",
                },
            },
        }
    )


def _runner(settings: Settings, store: ObjectStore, http: httpx.Client, **shared: Any) -> JobRunner:
    """A worker's job runner, reading spans by ranges (``shared``: what a worker's jobs share)."""
    return JobRunner(
        settings,
        store,
        source_opener(settings),
        localizer_factory(settings, http),
        open_ranged=ranged_opener(settings, store),
        **shared,
    )


def test_a_middle_span_reads_well_under_the_whole_object(
    uploaded: tuple[Settings, ObjectStore, str, str],
) -> None:
    settings, store, bucket, etag = uploaded
    size = store.stat(bucket, SPEC.filename).size
    with httpx.Client() as http:
        runner = _runner(settings, store, http)
        # The third span of four: chunks 8-11, 240-360 s.
        order = _order(bucket, etag, size, 8, 12)
        done = runner.run_span(order, order.job_id, lambda *_: None)
    assert done.chunks == 4 and done.chunks_from_checkpoint == 0
    assert done.object_bytes == size
    assert 0 < done.bytes_fetched < 0.6 * size, (done.bytes_fetched, size)


def test_a_span_is_decoded_ahead_while_its_chunks_wait_for_the_model(
    uploaded: tuple[Settings, ObjectStore, str, str],
) -> None:
    """The span's decoder runs to the end of the span and ends before the model has answered
    its first chunk: a worker does not keep a decoder child per span order for as long as the
    model takes (workers/pipeline/ahead.py)."""
    settings, store, bucket, etag = uploaded
    slow = Fault("slow", count=100, delay_s=1.5)
    base_url, stop = serve_in_thread(config=FakeConfig(faults=(slow,)))
    settings = settings.model_copy(
        update={"vlm_base_url": base_url, "vlm_api_key": None, "vlm_concurrency": 1}
    )
    size = store.stat(bucket, SPEC.filename).size
    metrics = Metrics()
    decoded_at_first_answer: list[float | None] = []

    def progress(stage: str, done: int, total: int, detail: str) -> None:
        if stage == "localizing" and "done" in detail and not decoded_at_first_answer:
            decoded_at_first_answer.append(
                metrics.registry.get_sample_value("vidloc_frames_decoded_total")
            )

    try:
        with httpx.Client() as http:
            # As a worker builds it: chunks held at once across its jobs, one span decoding.
            runner = _runner(
                settings,
                store,
                http,
                metrics=metrics,
                frame_budget=PrioritySlots(2),
                span_decoders=PrioritySlots(1),
            )
            order = _order(bucket, etag, size, 8, 12, localizer="vlm")
            with in_background():  # as a worker runs a span order
                done = runner.run_span(order, order.job_id, progress)
    finally:
        stop()
    assert done.chunks == 4 and done.chunks_from_checkpoint == 0
    # 4 chunks of 30 s at 1 fps (and the frames their overlaps share): every frame the span
    # decodes is decoded by the first answer, 1.5 s after the first request; streamed, at most
    # the two chunks the budget holds would have been.
    total = metrics.registry.get_sample_value("vidloc_frames_decoded_total")
    assert total is not None and total >= 120
    assert decoded_at_first_answer == [total]


@pytest.mark.parametrize(
    "clip",
    [
        pytest.param(None, id="h264-mp4"),
        # libvpx puts a keyframe at a scene cut between its regular ones (issue 21).
        pytest.param(MatrixClip("webm", "vp9", "scenecut45"), id="vp9-webm-irregular-keyframes"),
    ],
)
def test_ranged_frames_are_the_downloaded_files_frames(
    uploaded: tuple[Settings, ObjectStore, str, str],
    tmp_path: Path,
    clip: MatrixClip | None,
) -> None:
    _, store, bucket, _ = uploaded
    if clip is None:
        path, times = ensure_rendered(SPEC, MEDIA), [240.0 + t for t in range(120)]
    else:
        path, times = render_clip(clip, tmp_path), [float(t) for t in range(30, 45)]
    key = f"frames/{path.name}"
    info = store.upload_file(bucket, key, path)
    remote = store.remote_object(bucket, key, max_bytes=1 << 30, expected_etag=info.etag)
    source = open_ranged_source(remote)
    try:
        ranged = list(source.frames(key, times, (160, 96)))
    finally:
        close_source(source)
    local = list(PyAVSource().frames(str(path), times, (160, 96)))
    assert [s.t_s for s in ranged] == [s.t_s for s in local]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(ranged, local, strict=True))
    assert 0 < source.read_stats.fetched <= info.size


def test_an_object_replaced_mid_read_fails_clearly(
    uploaded: tuple[Settings, ObjectStore, str, str], tmp_path: Path
) -> None:
    _, store, bucket, etag = uploaded
    remote = store.remote_object(bucket, SPEC.filename, max_bytes=1 << 30, expected_etag=etag)
    reader = RangedReader(remote)
    first = reader.read(1000)
    assert len(first) == 1000
    other = tmp_path / "other.bin"
    other.write_bytes(b"\0" * remote.size)  # same size, other bytes: only the version tells
    store.upload_file(bucket, SPEC.filename, other)
    reader.seek(remote.size // 2)
    with pytest.raises(ObjectMissing, match="replaced while reading it"):
        reader.read(1000)
    # A span ordered for the old version does not start on the new one either.
    with pytest.raises(ObjectMissing, match="was replaced"):
        store.remote_object(bucket, SPEC.filename, max_bytes=1 << 30, expected_etag=etag)


def test_the_object_size_limit_holds_for_ranged_reads(
    uploaded: tuple[Settings, ObjectStore, str, str],
) -> None:
    from vidloc.errors import ObjectTooLarge

    _, store, bucket, etag = uploaded
    with pytest.raises(ObjectTooLarge):
        store.remote_object(bucket, SPEC.filename, max_bytes=1000, expected_etag=etag)


def test_the_hand_off_reads_the_header_and_end_only(
    uploaded: tuple[Settings, ObjectStore, str, str],
) -> None:
    settings, store, bucket, etag = uploaded
    settings = settings.model_copy(update={"span_s": 120.0})
    size = store.stat(bucket, SPEC.filename).size
    order = _order(bucket, etag, size, 0, CHUNKS)
    event = order.model_copy(update={"span": None})
    with httpx.Client() as http:
        # A group of 8 members of two span slots.
        runner = _runner(settings, store, http, span_slots=lambda: 16)
        handed = runner.run_or_hand_off(event, event.job_id, lambda *_: None)
    assert isinstance(handed, HandOff)
    # Four spans of 120 s rounded up toward the group's 16 span slots, never under two chunks.
    assert handed.chunks_total == CHUNKS and len(handed.spans) == CHUNKS // 2
    assert handed.object_bytes == size
    assert 0 < handed.bytes_fetched < 0.1 * size, (handed.bytes_fetched, size)
    # The plan stands on the facts the full probe of the downloaded file gives.
    assert handed.info == probe_video(str(ensure_rendered(SPEC, MEDIA)))


@pytest.mark.parametrize(
    "name",
    [
        "h264-mp4",
        "vp9-webm-irregular-keyframes",
        "vfr-h264-mp4",
        "h265-mkv",
        "truncated-mp4",
        "truncated-mkv",
        "mpegts",
    ],
)
def test_a_probe_by_ranges_is_the_full_probe_or_none(
    uploaded: tuple[Settings, ObjectStore, str, str], tmp_path: Path, name: str
) -> None:
    _, store, bucket, _ = uploaded
    media = ensure_rendered(SPEC, MEDIA)
    path = {
        "h264-mp4": lambda: media,
        "vp9-webm-irregular-keyframes": lambda: render_clip(
            MatrixClip("webm", "vp9", "scenecut45"), tmp_path
        ),
        "vfr-h264-mp4": lambda: ensure_rendered(spec_named("vfr_h264"), MEDIA),
        "h265-mkv": lambda: ensure_rendered(spec_named("h265_mkv"), MEDIA),
        "truncated-mp4": lambda: corrupt_copy(media, tmp_path / "t.mp4", "truncate"),
        "truncated-mkv": lambda: corrupt_copy(
            ensure_rendered(spec_named("h265_mkv"), MEDIA), tmp_path / "t.mkv", "truncate"
        ),
        "mpegts": lambda: _remuxed(media, tmp_path / "v.ts"),
    }[name]()
    key = f"probe/{path.name}"
    info = store.upload_file(bucket, key, path)
    remote = store.remote_object(bucket, key, max_bytes=1 << 30, expected_etag=info.etag)
    source = open_ranged_source(remote)
    try:
        probed = source.probe_by_ranges()
    finally:
        close_source(source)
    full = probe_video(str(path))
    if name in ("truncated-mp4", "truncated-mkv", "mpegts"):
        # Only every packet tells: the caller downloads and probes the file.
        assert probed.info is None, probed
        assert full.warnings or name == "mpegts"
    else:
        assert probed.info == full, probed.reason
    assert 0 < probed.stats.fetched <= info.size


def _remuxed(source: Path, dest: Path) -> Path:
    import subprocess

    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(source), "-c", "copy", str(dest)], check=True
    )
    return dest
