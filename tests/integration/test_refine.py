"""Boundary refinement on the real S3 store with the fake model: closer to the truth than the
coarse pass, and its tokens shown apart in the stored timeline."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from contracts import IngestEvent, decode_timeline
from devkit.fake_vlm.server import serve_in_thread
from devkit.synth.render import ensure_rendered
from devkit.synth.spec import SyntheticEvent, VideoSpec
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings
from workers.pipeline.job import JobRunner
from workers.service.main import localizer_factory, source_opener

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


def _run(settings: Settings, bucket: str, key: str, etag: str, refine: bool) -> tuple[float, ...]:
    store = ObjectStore(settings)
    with httpx.Client() as http:
        runner = JobRunner(
            settings, store, source_opener(settings), localizer_factory(settings, http)
        )
        event = IngestEvent.model_validate(
            {
                "event_id": f"refine-{uuid.uuid4().hex[:8]}",
                "source": {"bucket": bucket, "key": key, "etag": etag, "size": 1},
                "options": {"labels": [TRUTH.label], "sample_fps": 1.0, "refine": refine},
                "submitted_at": datetime.now(UTC).isoformat(),
            }
        )
        outcome = runner.run(event, event.job_id, lambda *_: None)
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
    path = ensure_rendered(SPEC, REPO / ".cache" / "test-media")
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
    info = store.upload_file(bucket, SPEC.filename, path)
    etag = info.etag

    coarse = _run(settings, bucket, SPEC.filename, etag, refine=False)
    refined = _run(settings, bucket, SPEC.filename, etag, refine=True)

    def error(pair: tuple[float, ...]) -> tuple[float, float]:
        return abs(pair[0] - TRUTH.start_s), abs(pair[1] - TRUTH.end_s)

    # 1 fps samples at 0.5, 1.5, ...: the coarse pass can only say 2.5 .. 5.5.
    assert coarse == pytest.approx((2.5, 5.5), abs=0.11)
    assert max(error(refined)) < min(error(coarse))
    assert max(error(refined)) <= 0.1 + 1e-6  # one frame at 10 fps
