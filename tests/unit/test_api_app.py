"""The FastAPI app over an in-memory store and a hand-fed status book (no services)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from api_fixtures import MemoryStore, make_progress, make_result, make_timeline

from devkit.serve_api import serve_in_thread
from vidloc.api.app import create_app
from vidloc.api.status import StatusBook
from vidloc.errors import BusUnavailable
from vidloc.settings import Settings


class Probe:
    def __init__(self) -> None:
        self.fail = False

    def __call__(self) -> str:
        if self.fail:
            raise BusUnavailable("no broker at 127.0.0.1:1")
        return "ok"


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    store.put_timeline(make_timeline("vid-1"))
    store.put_timeline(make_timeline("vid-2"))
    return store


@pytest.fixture
def book() -> StatusBook:
    book = StatusBook()
    book.apply_result(make_result("vid-1"))
    book.apply_result(make_result("vid-bad", "failed"))
    # A job reporting now is running; one silent for longer than api_stalled_after_s stalled.
    book.apply_progress(make_progress("vid-run", at=datetime.now(UTC).isoformat()))
    book.apply_progress(make_progress("vid-stuck", at="2025-01-31T12:01:00Z"))
    return book


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def client(store: MemoryStore, book: StatusBook, probe: Probe) -> Iterator[httpx.Client]:
    app = create_app(
        Settings(),
        store=store,
        book=book,
        follow_bus=False,
        probes={"kafka": probe},  # type: ignore[arg-type]
    )
    base_url, stop = serve_in_thread(app)
    try:
        with httpx.Client(base_url=base_url, timeout=10.0) as http:
            http.app = app  # type: ignore[attr-defined]
            yield http
    finally:
        stop()


def assert_error(response: object, status: int, code: str) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code


def test_list_videos_merges_s3_and_bus(client: httpx.Client) -> None:
    body = client.get("/videos").json()
    assert body["total"] == 5
    got = {v["video_id"]: (v["status"], v["has_timeline"]) for v in body["videos"]}
    assert got == {
        "vid-1": ("succeeded", True),
        "vid-2": ("succeeded", True),
        "vid-bad": ("failed", False),
        "vid-run": ("running", False),
        "vid-stuck": ("stalled", False),
    }
    stalled = client.get("/videos", params={"status": "stalled"}).json()
    assert [v["video_id"] for v in stalled["videos"]] == ["vid-stuck"]
    failed = client.get("/videos", params={"status": "failed"}).json()
    assert [v["video_id"] for v in failed["videos"]] == ["vid-bad"]
    page = client.get("/videos", params={"limit": 2, "offset": 1}).json()
    assert [v["video_id"] for v in page["videos"]] == ["vid-2", "vid-bad"] and page["total"] == 5


def test_video_state_fills_counts_from_the_timeline(client: httpx.Client) -> None:
    body = client.get("/videos/vid-2").json()
    assert (body["status"], body["events"], body["duration_s"], body["job_id"]) == (
        "succeeded",
        4,
        10.0,
        "job-1",
    )
    assert client.get("/videos/vid-bad").json()["error"]["code"] == "decode_failed"


def test_timeline_round_trips(client: httpx.Client) -> None:
    body = client.get("/videos/vid-1/timeline").json()
    assert body["schema"] == "vidloc.timeline.v1" and body["video_id"] == "vid-1"
    assert [e["id"] for e in body["events"]] == ["e1", "e2", "e3", "e4"]


def test_unknown_video_and_missing_timeline_are_404(client: httpx.Client) -> None:
    assert_error(client.get("/videos/nope"), 404, "video_not_found")
    assert_error(client.get("/videos/nope/timeline"), 404, "video_not_found")
    assert_error(client.get("/videos/nope/events"), 404, "video_not_found")
    assert_error(client.get("/videos/vid-bad/timeline"), 404, "timeline_not_found")
    assert_error(client.get("/no/such/route"), 404, "not_found")
    # POST /videos submits now (issue 26); DELETE is still no method of /videos.
    assert_error(client.delete("/videos"), 405, "method_not_allowed")


def test_events_query(client: httpx.Client) -> None:
    body = client.get(
        "/videos/vid-1/events", params={"label": "red circle", "start_s": 2, "end_s": 9}
    ).json()
    assert [e["id"] for e in body["events"]] == ["e1", "e3"] and body["count"] == 2
    assert body["query"] == {"labels": ["red circle"], "start_s": 2.0, "end_s": 9.0}
    many = client.get(
        "/videos/vid-1/events", params=[("label", "red circle"), ("label", "blue triangle")]
    )
    assert many.json()["count"] == 3


@pytest.mark.parametrize(
    "params",
    [
        {"start_s": 5, "end_s": 1},
        {"start_s": -1},
        {"end_s": "nan"},
        {"start_s": "inf"},
        {"start_s": "abc"},
    ],
)
def test_bad_query_is_422_in_the_error_shape(
    client: httpx.Client, params: dict[str, object]
) -> None:
    assert_error(client.get("/videos/vid-1/events", params=params), 422, "invalid_request")


def test_bad_ids_are_422(client: httpx.Client) -> None:
    assert_error(client.get("/videos/a%20b"), 422, "invalid_request")
    assert_error(client.get("/videos/-x/timeline"), 422, "invalid_request")
    # An encoded slash splits the path: no route, so never a key outside timelines/<id>/.
    assert_error(client.get("/videos/..%2Fetc/timeline"), 404, "not_found")
    assert_error(client.get("/videos", params={"limit": 0}), 422, "invalid_request")


def test_storage_outage_is_503_without_internals(client: httpx.Client, store: MemoryStore) -> None:
    store.down = True
    response = client.get("/videos/vid-1/timeline")
    assert_error(response, 503, "storage_unavailable")
    assert "down" not in response.text and "Traceback" not in response.text


def test_unexpected_error_is_500_without_a_traceback(
    client: httpx.Client, store: MemoryStore
) -> None:
    store.objects[("timelines", "timelines/vid-1/timeline.json")] = (
        b'{"schema": "vidloc.timeline.v1"}'
    )
    response = client.get("/videos/vid-1/timeline")
    assert_error(response, 500, "timeline_unreadable")
    assert "Traceback" not in response.text and "video_id" not in response.text


def test_health_and_readiness(client: httpx.Client, probe: Probe) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"kafka": "ok"}
    probe.fail = True
    client.app.state.services.readiness._cached = None  # type: ignore[attr-defined]
    assert_error(client.get("/readyz"), 503, "not_ready")
    assert "bus_unavailable" in client.get("/readyz").json()["error"]["message"]


def test_viewer_page_links_a_presigned_video(client: httpx.Client) -> None:
    response = client.get("/videos/vid-1/view")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert 'src="http://s3.test/videos/uploads/vid-1.mp4?X-Amz-Expires=300"' in response.text
    assert response.text.count('class="bar"') == 4


def test_openapi_documents_the_error_shape(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/videos", "/videos/{video_id}/events", "/healthz", "/readyz"} <= set(spec["paths"])
    responses = spec["paths"]["/videos/{video_id}/events"]["get"]["responses"]
    assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorResponse"
    )
    assert client.get("/docs").status_code == 200


def test_metrics_count_stalled_videos_apart(client: httpx.Client) -> None:
    text = client.get("/metrics").text
    assert 'vidloc_videos{status="stalled"} 1.0' in text
    assert 'vidloc_videos{status="running"} 1.0' in text
