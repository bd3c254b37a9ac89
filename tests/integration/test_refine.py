"""Boundary refinement on the real S3 store with the fake model: closer to the truth than the
coarse pass, and its tokens shown apart in the stored timeline. And the coarse chunks reach the
model as JPEGs, with the thumbnails still kept."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
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
from workers.pipeline.job import JobOutcome, JobRunner
from workers.service.main import localizer_factory, source_opener
from workers.types import Chunk, ChunkResult, FrameSample, Localizer, LocalizeRequest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TRUTH = SyntheticEvent("red circle", 2.3, 5.6)
SPEC = VideoSpec(
    name="refine_h264",
    duration_s=8.0,
    fps=10.0,
    width=320,
    height=180,
    codec="h264",
    cuts=(6.5,),
    events=(TRUTH,),
    gop=20,
    # The shape travels and the picture is noisy, so colour evidence alone cannot settle the
    # boundaries (on a clean still clip it does, and the model is never asked again).
    moving_shapes=True,
    noise=8.0,
)


@pytest.fixture(scope="module")
def fake_vlm() -> Iterator[str]:
    base_url, stop = serve_in_thread()
    yield base_url
    stop()


def _uploaded(stack: Settings, fake_vlm: str, tmp_path: Path) -> tuple[Settings, str]:
    """Settings for a vlm job on the fake model, and the etag of SPEC uploaded to their bucket."""
    bucket = f"refine-{uuid.uuid4().hex[:8]}"
    settings = stack.model_copy(
        update={
            "vlm_base_url": fake_vlm,
            "vlm_api_key": None,
            "localizer": "vlm",
            "video_bucket": bucket,
            "work_dir": tmp_path,
        }
    )
    store = ObjectStore(settings)
    store.ensure_bucket(bucket)
    info = store.upload_file(
        bucket, SPEC.filename, ensure_rendered(SPEC, REPO / ".cache" / "test-media")
    )
    return settings, info.etag


def _job(
    settings: Settings,
    etag: str,
    refine: bool,
    wrap: Callable[[Localizer], Localizer] = lambda localizer: localizer,
) -> JobOutcome:
    store = ObjectStore(settings)
    with httpx.Client() as http:
        make = localizer_factory(settings, http)
        runner = JobRunner(settings, store, source_opener(settings), lambda name: wrap(make(name)))
        event = IngestEvent.model_validate(
            {
                "event_id": f"refine-{uuid.uuid4().hex[:8]}",
                "source": {
                    "bucket": settings.video_bucket,
                    "key": SPEC.filename,
                    "etag": etag,
                    "size": 1,
                },
                "options": {"labels": [TRUTH.label], "sample_fps": 1.0, "refine": refine},
                "submitted_at": datetime.now(UTC).isoformat(),
            }
        )
        return runner.run(event, event.job_id, lambda *_: None)


def _run(settings: Settings, etag: str, refine: bool) -> tuple[float, ...]:
    outcome = _job(settings, etag, refine)
    store = ObjectStore(settings)
    stored = decode_timeline(store.get_bytes(outcome.timeline_bucket, outcome.timeline_key))
    (found,) = [e for e in stored.events if e.label == TRUTH.label]
    refine_usage = stored.usage.refine
    if refine:
        assert refine_usage is not None and refine_usage.prompt_tokens > 0
        assert stored.usage.prompt_tokens > refine_usage.prompt_tokens  # totals include it
        assert stored.sampling.refined_boundaries == 2
    else:
        assert refine_usage is None
    return found.start_s, found.end_s


def test_refinement_moves_boundaries_closer_to_the_truth(
    stack: Settings, fake_vlm: str, tmp_path: Path
) -> None:
    settings, etag = _uploaded(stack, fake_vlm, tmp_path)
    coarse = _run(settings, etag, refine=False)
    refined = _run(settings, etag, refine=True)

    def error(pair: tuple[float, ...]) -> tuple[float, float]:
        return abs(pair[0] - TRUTH.start_s), abs(pair[1] - TRUTH.end_s)

    # 1 fps samples at 0.5, 1.5, ...: the coarse pass can only say 2.5 .. 5.5.
    assert coarse == pytest.approx((2.5, 5.5), abs=0.11)
    assert max(error(refined)) < min(error(coarse))
    assert max(error(refined)) <= 0.1 + 1e-6  # one frame at 10 fps


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


def test_chunks_reach_the_model_as_jpegs_and_thumbnails_are_still_kept(
    stack: Settings, fake_vlm: str, tmp_path: Path
) -> None:
    """A model localizer is handed each coarse frame as the JPEG it is sent and no pixels (a
    chunk held for the model is kilobytes a frame, not a decoded picture), while the job's
    thumbnails, taken from the pixels before they go, are still kept."""
    settings, etag = _uploaded(stack, fake_vlm, tmp_path)
    seen: list[FrameSample] = []
    outcome = _job(settings, etag, refine=False, wrap=lambda inner: Recording(inner, seen))
    assert len(seen) == 8  # every coarse frame, at 1 fps over 8 s
    assert all(frame.image is None for frame in seen)
    size = outcome.timeline.sampling.frame_size
    assert size is not None
    for frame in seen:
        assert frame.jpeg is not None
        picture = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert picture is not None and (picture.shape[1], picture.shape[0]) == tuple(size)
    store = ObjectStore(settings)
    stored = decode_timeline(store.get_bytes(outcome.timeline_bucket, outcome.timeline_key))
    (found,) = [e for e in stored.events if e.label == TRUTH.label]
    assert found.thumbnail is not None
    folder = outcome.timeline_key.rsplit("/", 1)[0]
    thumbnail = store.get_bytes(outcome.timeline_bucket, f"{folder}/{found.thumbnail}")
    assert thumbnail.startswith(b"\xff\xd8")  # a JPEG taken from the decoded pixels
