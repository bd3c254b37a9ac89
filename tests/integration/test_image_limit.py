"""A server's image limit (vLLM's --limit-mm-per-prompt) on the real stack: a refinement at
20 fps over 4 s windows never sends more images than the cap, and a server with a lower limit
than configured makes requests split, not jobs fail."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts import IngestEvent, decode_timeline
from devkit.fake_vlm.server import FakeConfig, serve_in_thread
from devkit.synth.render import ensure_rendered
from devkit.synth.spec import SyntheticEvent, VideoSpec
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings
from workers.pipeline.job import JobRunner
from workers.service.main import localizer_factory, source_opener

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TRUTH = SyntheticEvent("red circle", 7.3, 15.6)  # within 4 s of the coarse edges
SPEC = VideoSpec(
    name="image_limit_h264",
    duration_s=24.0,
    fps=25.0,
    width=320,
    height=180,
    codec="h264",
    events=(TRUTH,),
    gop=25,
)
SERVER_LIMIT = 24


@pytest.fixture(scope="module")
def limited_vlm() -> Iterator[str]:
    base_url, stop = serve_in_thread(config=FakeConfig(max_images=SERVER_LIMIT))
    yield base_url
    stop()


@pytest.fixture(scope="module")
def uploaded(stack: Settings) -> tuple[str, str]:
    path = ensure_rendered(SPEC, REPO / ".cache" / "test-media")
    bucket = f"imglimit-{uuid.uuid4().hex[:8]}"
    store = ObjectStore(stack.model_copy(update={"video_bucket": bucket}))
    store.ensure_bucket(bucket)
    return bucket, store.upload_file(bucket, SPEC.filename, path).etag


def _admin(base_url: str, path: str) -> Any:
    url = base_url.removesuffix("/v1") + path
    response = httpx.post(url) if path.endswith("reset") else httpx.get(url)
    response.raise_for_status()
    return response.json()


def _refine_job(
    stack: Settings,
    base_url: str,
    uploaded: tuple[str, str],
    cap: int,
    tmp_path: Path,
    sample_fps: float = 0.2,
) -> tuple[float, float, int]:
    bucket, etag = uploaded
    settings = stack.model_copy(
        update={
            "vlm_base_url": base_url,
            "vlm_api_key": None,
            "localizer": "vlm",
            "video_bucket": bucket,
            "work_dir": tmp_path,
            "refine_fps": 20.0,
            "refine_window_s": 4.0,
            "vlm_max_images_per_request": cap,
            "vlm_concurrency": 1,
        }
    )
    store = ObjectStore(settings)
    with httpx.Client() as http:
        runner = JobRunner(
            settings, store, source_opener(settings), localizer_factory(settings, http)
        )
        event = IngestEvent.model_validate(
            {
                "event_id": f"imglimit-{uuid.uuid4().hex[:8]}",
                "source": {"bucket": bucket, "key": SPEC.filename, "etag": etag, "size": 1},
                # One coarse sample every 5 s: brackets of ~4 s, 79 refinement frames each.
                "options": {"labels": [TRUTH.label], "sample_fps": sample_fps, "refine": True},
                "submitted_at": datetime.now(UTC).isoformat(),
            }
        )
        outcome = runner.run(event, event.job_id, lambda *_: None)
    stored = decode_timeline(store.get_bytes(outcome.timeline_bucket, outcome.timeline_key))
    (found,) = [e for e in stored.events if e.label == TRUTH.label]
    assert stored.sampling.refined_boundaries == 2
    assert stored.usage.refine is not None and stored.usage.refine.requests is not None
    return found.start_s, found.end_s, int(stored.usage.refine.requests)


def test_refinement_at_20_fps_never_sends_more_images_than_the_cap(
    stack: Settings, limited_vlm: str, uploaded: tuple[str, str], tmp_path: Path
) -> None:
    _admin(limited_vlm, "/_fake/reset")
    start, end, refine_requests = _refine_job(stack, limited_vlm, uploaded, SERVER_LIMIT, tmp_path)
    stats = _admin(limited_vlm, "/_fake/stats")
    # The server refuses anything over its limit, so not one 400 means no request went over.
    assert stats["by_status"] == {"200": stats["requests"]}
    # Refinement no longer sends its ~79-frame windows: on this clean still clip the colour
    # evidence settles both boundaries, and a search shows at most two frames a boundary a round.
    assert refine_requests <= 7
    # Split windows are read as one: each boundary within one refinement frame of the truth.
    assert start == pytest.approx(TRUTH.start_s, abs=0.05 + 1e-6)
    assert end == pytest.approx(TRUTH.end_s, abs=0.05 + 1e-6)


def test_a_lower_server_limit_splits_requests_instead_of_failing_the_job(
    stack: Settings, limited_vlm: str, uploaded: tuple[str, str], tmp_path: Path
) -> None:
    _admin(limited_vlm, "/_fake/reset")
    # 2 fps: the coarse chunk holds 48 frames, over the server's 24.
    start, end, _ = _refine_job(stack, limited_vlm, uploaded, 64, tmp_path, sample_fps=2.0)
    stats = _admin(limited_vlm, "/_fake/stats")
    assert stats["by_status"].get("400", 0) >= 1  # the server named its limit at least once
    assert start == pytest.approx(TRUTH.start_s, abs=0.05 + 1e-6)
    assert end == pytest.approx(TRUTH.end_s, abs=0.05 + 1e-6)
