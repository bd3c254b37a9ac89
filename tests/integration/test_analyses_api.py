"""Analyses through the front door on the real stack (issue 24): a real worker analyses a
synthetic video; ``Client.ask`` (POST /videos/{id}/analyses) publishes the v2 event, the worker
answers from the kept frames, and the API, following the real topics, lists the analysis as
succeeded, serves its timeline and the viewer's link to it, while the video's own status is the
first job's throughout."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from reliability import Ingest, WorkerGroup, wait_group_stable

from devkit.fake_vlm.server import serve_in_thread as serve_fake
from devkit.serve_api import serve_in_thread
from devkit.synth.catalogue import spec_named
from devkit.synth.render import ensure_rendered
from vidloc import names
from vidloc.api.app import create_app
from vidloc.client import Client, InvalidRequest, NotFound
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def group(stack: Settings, tmp_path: Path) -> Iterator[WorkerGroup]:
    fake, stop_fake = serve_fake()
    made = WorkerGroup(stack, fake, tmp_path, "askapi")
    try:
        made.workers.start(1)
        wait_group_stable(made.log_dir, 1)
        yield made
    finally:
        made.close()
        stop_fake()


def _until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} not within {timeout_s:.0f} s")


def test_an_ask_over_http_is_answered_and_listed_apart(group: WorkerGroup) -> None:
    clip = ensure_rendered(spec_named("h264_mp4"), REPO / ".cache" / "test-media")
    first = group.upload(clip, labels=["red circle"], localizer="vlm")
    video_id = first.effective_video_id
    with Ingest(group.settings) as ingest:
        ingest.send(first)
    _until(lambda: group.timeline_stored(video_id), 120, "the first timeline")

    base_url, stop = serve_in_thread(create_app(group.settings))
    try:
        with Client(base_url) as vidloc:
            # Succeeded from its stored timeline, whether or not this replica has read the
            # result yet (the timeline is stored before the result's transaction commits); it
            # must not say running in between, nor refuse the ask 409 video_running.
            def succeeded_with_its_job() -> bool:
                state = vidloc.video(video_id)
                return state.status == "succeeded" and state.job_id is not None

            _until(succeeded_with_its_job, 60, "the video's result")
            before = vidloc.video(video_id)
            with pytest.raises(InvalidRequest):
                vidloc.ask(video_id, prompt=" ")
            with pytest.raises(NotFound):
                vidloc.ask("askapi-never-seen", prompt="p")
            job = vidloc.ask(
                video_id, prompt="When is the blue triangle visible?", labels=["blue triangle"]
            )
            aid = job.analysis_id

            # Other sessions' workers share video.ingest and may refuse this bucket's event
            # with a failed result first; the answer of this group's worker is the success.
            _until(lambda: vidloc.analysis(video_id, aid).status == "succeeded", 120, "answer")
            answered = vidloc.analysis(video_id, aid)
            assert answered.prompt == "When is the blue triangle visible?"
            timeline = job.timeline()
            assert timeline.analysis_id == aid and timeline.labels == ["blue triangle"]
            key = names.analysis_timeline_key(video_id, aid)
            assert group.store.exists(group.settings.timeline_bucket, key)

            after = vidloc.video(video_id)
            assert (after.status, after.job_id) == (before.status, before.job_id)
            assert vidloc.timeline(video_id).job_id == before.job_id
            assert [a.analysis_id for a in vidloc.analyses(video_id)] == ["default", aid]
            ids = [v["video_id"] for v in httpx.get(f"{base_url}/videos").json()["videos"]]
            assert aid not in ids
            page = httpx.get(f"{base_url}/videos/{video_id}/view").text
            assert f'href="analyses/{aid}/view"' in page

            # Search (issue 25): the answer's events are found as that analysis, indexed from
            # its result on video.results, with links to that analysis' thumbnails and clips.
            triangles = {e.id for e in timeline.events if "triangle" in e.label.casefold()}
            assert triangles  # the fake model finds the rendered blue triangle

            def hits() -> list[dict[str, Any]]:
                params: dict[str, str | int] = {"q": "triangle", "analysis": aid, "limit": 200}
                body: dict[str, Any] = httpx.get(f"{base_url}/search", params=params).json()
                return list(body["results"])

            _until(lambda: {h["event_id"] for h in hits()} >= triangles, 30, "the answer found")
            for hit in hits():
                assert (hit["video_id"], hit["analysis"]) == (video_id, aid)
                assert hit["clip_url"].startswith(f"/videos/{video_id}/analyses/{aid}/events/")
                # A later analysis' events take their pictures from the kept frames.
                picture = httpx.get(base_url + hit["thumbnail_url"])
                assert picture.status_code == 200 and picture.content[:2] == b"\xff\xd8"
            first_hit = hits()[0]
            link = httpx.get(
                base_url + first_hit["clip_url"], headers={"Accept": "application/json"}
            )
            assert link.status_code == 200, link.text
            assert abs(link.json()["first_frame_s"] - first_hit["start_s"]) <= 0.1 + 1e-6

    finally:
        stop()
