"""Chunks wait for the model as JPEGs: a model localizer is handed each coarse frame as the
JPEG it is sent and no pixels (a chunk held for the model is kilobytes a frame, not a decoded
picture), while the job's thumbnails, taken from the pixels before they go, are still kept."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from contracts import IngestEvent, decode_timeline
from devkit.fake_vlm.server import serve_in_thread
from devkit.synth.render import ensure_rendered
from devkit.synth.spec import SyntheticEvent, VideoSpec
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings
from workers.pipeline.job import JobRunner
from workers.service.main import localizer_factory, source_opener
from workers.types import Chunk, ChunkResult, FrameSample, Localizer, LocalizeRequest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TRUTH = SyntheticEvent("red circle", 6.0, 14.0)
SPEC = VideoSpec(
    name="chunks_as_jpeg",
    duration_s=24.0,
    fps=10.0,
    width=320,
    height=180,
    codec="h264",
    events=(TRUTH,),
)


class Recording:
    """The worker's localizer, noting every frame it is handed."""

    def __init__(self, inner: Localizer, seen: list[FrameSample]) -> None:
        self._inner = inner
        self._seen = seen

    def localize(
        self, chunk: Chunk, frames: Sequence[FrameSample], request: LocalizeRequest
    ) -> ChunkResult:
        self._seen.extend(frames)
        return self._inner.localize(chunk, frames, request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_model_localizer_is_handed_jpegs_and_thumbnails_are_still_kept(
    stack: Settings, tmp_path: Path
) -> None:
    base_url, stop = serve_in_thread()
    bucket = f"jpegchunks-{uuid.uuid4().hex[:8]}"
    settings = stack.model_copy(
        update={
            "vlm_base_url": base_url,
            "vlm_api_key": None,
            "localizer": "vlm",
            "video_bucket": bucket,
            "work_dir": tmp_path,
        }
    )
    store = ObjectStore(settings)
    store.ensure_bucket(bucket)
    path = ensure_rendered(SPEC, REPO / ".cache" / "test-media")
    etag = store.upload_file(bucket, SPEC.filename, path).etag
    seen: list[FrameSample] = []
    try:
        with httpx.Client() as http:
            make = localizer_factory(settings, http)

            def recording(name: str) -> Localizer:
                return Recording(make(name), seen)

            runner = JobRunner(settings, store, source_opener(settings), recording)
            event = IngestEvent.model_validate(
                {
                    "event_id": f"jpegchunks-{uuid.uuid4().hex[:8]}",
                    "source": {"bucket": bucket, "key": SPEC.filename, "etag": etag, "size": 1},
                    "options": {"labels": [TRUTH.label], "sample_fps": 1.0, "refine": False},
                    "submitted_at": datetime.now(UTC).isoformat(),
                }
            )
            outcome = runner.run(event, event.job_id, lambda *_: None)
    finally:
        stop()
    assert len(seen) == 24  # every coarse frame, at 1 fps over 24 s
    assert all(frame.image is None for frame in seen)
    for frame in seen:
        assert frame.jpeg is not None
        picture = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
        size = outcome.timeline.sampling.frame_size
        assert picture is not None and size is not None
        assert (picture.shape[1], picture.shape[0]) == tuple(size)
    stored = decode_timeline(store.get_bytes(outcome.timeline_bucket, outcome.timeline_key))
    (found,) = [e for e in stored.events if e.label == TRUTH.label]
    assert found.thumbnail is not None
    folder = outcome.timeline_key.rsplit("/", 1)[0]
    thumbnail = store.get_bytes(outcome.timeline_bucket, f"{folder}/{found.thumbnail}")
    assert thumbnail.startswith(b"\xff\xd8")  # a JPEG taken from the decoded pixels
