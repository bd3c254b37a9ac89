"""The query API on the real stack: timelines in S3, status from video.results/progress."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from apistack import (
    isolated_settings,
    publish_failed,
    publish_progress,
    put_timeline,
    timeline_for,
    unique_id,
)

from contracts import SPANS_PENDING
from devkit.serve_api import serve_in_thread
from vidloc.adapters.kafka import EventPublisher
from vidloc.api.app import create_app
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

EVENTS = [("red circle", 1.0, 3.0), ("green square", 5.0, 7.5), ("red circle", 9.0, 10.0)]


@pytest.fixture(scope="module")
def api_settings(stack: Settings) -> Settings:
    return isolated_settings(stack, "api")


@pytest.fixture(scope="module")
def videos(api_settings: Settings) -> dict[str, str]:
    """Three videos: one with a timeline, one failed, one running (events published now); and
    three whose job's progress is read without its result (not yet committed): its final
    timeline stored, a partial one stored (spans pending), an older job's stored (a re-run)."""
    names = ("done", "failed", "running", "stored", "partial", "rerun")
    ids = {s: unique_id(f"api-{s}") for s in names}
    for name in ("done", "stored", "partial", "rerun"):
        doc = timeline_for(
            ids[name], api_settings.video_bucket, f"uploads/{ids[name]}.mp4", events=EVENTS
        )
        if name == "partial":
            doc["warnings"] = [{"code": SPANS_PENDING, "message": "partial: 1 of 4 spans done"}]
        if name == "rerun":
            doc["job_id"] = "job-before"
        put_timeline(api_settings, doc)
    with EventPublisher(api_settings) as publisher:
        publish_failed(publisher, ids["failed"])
        for name in ("running", "stored", "partial", "rerun"):
            publish_progress(publisher, ids[name])
    return ids


@pytest.fixture(scope="module")
def api(api_settings: Settings, videos: dict[str, str]) -> Iterator[httpx.Client]:
    app = create_app(api_settings)
    base_url, stop = serve_in_thread(app)
    try:
        assert app.state.feed.caught_up.wait(30.0), app.state.feed.last_error
        with httpx.Client(base_url=base_url, timeout=15.0) as client:
            yield client
    finally:
        stop()


def test_status_comes_from_s3_and_the_bus(api: httpx.Client, videos: dict[str, str]) -> None:
    listed = {v["video_id"]: v for v in api.get("/videos").json()["videos"]}
    assert listed[videos["done"]]["status"] == "succeeded"
    assert listed[videos["done"]]["has_timeline"] is True
    assert listed[videos["failed"]]["status"] == "failed"
    assert listed[videos["failed"]]["error"]["code"] == "not_a_video"
    running = listed[videos["running"]]
    assert (running["status"], running["stage"], running["chunks_done"]) == (
        "running",
        "localizing",
        2,
    )
    one = api.get(f"/videos/{videos['done']}").json()
    assert (one["events"], one["duration_s"]) == (3, 12.0)


def test_a_job_whose_final_timeline_is_stored_is_not_running(
    api: httpx.Client, videos: dict[str, str]
) -> None:
    """Its timeline is stored before its result commits: a replica that has read the job's
    progress and not its result says succeeded, as it did from S3 alone, and never flips back
    to running (an ask in that window was refused 409 video_running)."""
    stored = api.get(f"/videos/{videos['stored']}").json()
    assert (stored["status"], stored["job_id"], stored["events"]) == (
        "succeeded",
        f"job-{videos['stored']}",
        3,
    )
    for name in ("partial", "rerun"):  # the job still adds to its timeline; a new job runs
        state = api.get(f"/videos/{videos[name]}").json()
        assert (state["status"], state["job_id"]) == ("running", f"job-{videos[name]}"), name


def test_status_follows_new_events(
    api: httpx.Client, api_settings: Settings, videos: dict[str, str]
) -> None:
    """The feed keeps reading after the replay: a result published now shows up."""
    late = unique_id("api-late")
    with EventPublisher(api_settings) as publisher:
        publish_failed(publisher, late)
    deadline = time.monotonic() + 20.0
    response = api.get(f"/videos/{late}")
    while response.status_code == 404 and time.monotonic() < deadline:
        time.sleep(0.3)
        response = api.get(f"/videos/{late}")
    assert response.status_code == 200 and response.json()["status"] == "failed"


def test_timeline_and_event_queries(api: httpx.Client, videos: dict[str, str]) -> None:
    vid = videos["done"]
    timeline = api.get(f"/videos/{vid}/timeline").json()
    assert timeline["video_id"] == vid and len(timeline["events"]) == 3
    red = api.get(f"/videos/{vid}/events", params={"label": "Red Circle"}).json()
    assert [(e["start_s"], e["end_s"]) for e in red["events"]] == [(1.0, 3.0), (9.0, 10.0)]
    window = api.get(f"/videos/{vid}/events", params={"start_s": 2.5, "end_s": 5.0}).json()
    assert [e["label"] for e in window["events"]] == ["red circle", "green square"]
    both = api.get(
        f"/videos/{vid}/events", params={"label": "red circle", "start_s": 8, "end_s": 12}
    ).json()
    assert both["count"] == 1 and both["events"][0]["start_s"] == 9.0


def test_errors_have_one_shape(api: httpx.Client, videos: dict[str, str]) -> None:
    for path, status, code in (
        ("/videos/never-seen-video", 404, "video_not_found"),
        (f"/videos/{videos['failed']}/timeline", 404, "timeline_not_found"),
        (f"/videos/{videos['done']}/events?start_s=5&end_s=1", 422, "invalid_request"),
        ("/videos?status=bogus", 422, "invalid_request"),
    ):
        response = api.get(path)
        assert response.status_code == status, path
        assert response.json() == {
            "error": {"code": code, "message": response.json()["error"]["message"]}
        }
        assert "Traceback" not in response.text


def test_health_readiness_and_docs(api: httpx.Client) -> None:
    assert api.get("/healthz").json()["status"] == "ok"
    ready = api.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert set(ready.json()["checks"]) == {"kafka", "s3"}
    assert "/videos/{video_id}/events" in api.get("/openapi.json").json()["paths"]
    assert "swagger" in api.get("/docs").text.lower()


def test_readiness_is_503_when_kafka_is_unreachable(api_settings: Settings) -> None:
    dead = api_settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:1"})
    base_url, stop = serve_in_thread(create_app(dead, follow_bus=False))
    try:
        response = httpx.get(f"{base_url}/readyz", timeout=30.0)
        healthy = httpx.get(f"{base_url}/healthz", timeout=5.0)
    finally:
        stop()
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "not_ready" and "kafka: bus_unavailable" in error["message"]
    assert "s3: ok" in error["message"]
    assert healthy.status_code == 200  # alive, just not ready


def test_metrics_count_requests_and_videos_by_status(
    api: httpx.Client, videos: dict[str, str]
) -> None:
    assert api.get(f"/videos/{videos['done']}/timeline").status_code == 200
    assert api.get("/videos/no-such-video/timeline").status_code == 404
    scrape = api.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    lines = scrape.text.splitlines()

    def value(prefix: str) -> float:
        matching = [line for line in lines if line.startswith(prefix)]
        assert len(matching) == 1, (prefix, matching)
        return float(matching[0].rsplit(" ", 1)[1])

    route = "/videos/{video_id}/timeline"
    ok = f'vidloc_api_requests_total{{method="GET",route="{route}",status="200"}}'
    missing = f'vidloc_api_requests_total{{method="GET",route="{route}",status="404"}}'
    assert value(ok) >= 1 and value(missing) >= 1
    # The feed has seen the failed and the running video of this module (and maybe others).
    assert value('vidloc_videos{status="failed"}') >= 1
    assert value('vidloc_videos{status="running"}') >= 1
