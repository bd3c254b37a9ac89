"""A video's analyses over HTTP (issue 24): asking one publishes a vidloc.ingest.v2 event for the
first timeline's object version; refusals start nothing; the status of a later analysis never
touches the video's own. An in-memory store, a hand-fed status book and a publisher that keeps
what it was given stand in for S3 and Kafka."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_fixtures import WritableStore as Store
from api_fixtures import make_progress, make_result, make_timeline

from contracts import (
    INGEST_V2,
    ObjectRef,
    ProgressEvent,
    ResultEvent,
    decode_ingest,
    encode,
)
from devkit.serve_api import serve_in_thread
from producers.analyses import record_key
from vidloc import names
from vidloc.api.app import create_app
from vidloc.api.keys import KeysFile, add_key, write_keys_file
from vidloc.api.status import StatusBook
from vidloc.errors import BusUnavailable
from vidloc.settings import Settings

BUCKET = "timelines"


class Publisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes]] = []
        self.down = False

    def publish(self, topic: str, key: str, value: bytes, *, timeout_s: float = 30.0) -> None:
        if self.down:
            raise BusUnavailable("no broker")
        self.sent.append((topic, key, value))

    def close(self) -> None:
        pass


def later(event: ResultEvent | ProgressEvent, aid: str) -> Any:
    return event.model_copy(update={"analysis_id": aid})


@pytest.fixture
def store() -> Store:
    store = Store()
    store.put_tenant_timeline("vid-1", None)
    store.put_tenant_timeline("vid-run", None)
    return store


@pytest.fixture
def book() -> StatusBook:
    book = StatusBook()
    book.apply_result(make_result("vid-1"))
    book.apply_result(make_result("vid-bad", "failed"))
    book.apply_progress(make_progress("vid-run", at=datetime.now(UTC).isoformat()))
    return book


@pytest.fixture
def publisher() -> Publisher:
    return Publisher()


def _serve(settings: Settings, store: Store, book: StatusBook, publisher: Publisher) -> Any:
    app = create_app(settings, store=store, book=book, follow_bus=False, probes={})  # type: ignore[arg-type]
    app.state.front._publisher = publisher
    return serve_in_thread(app)


@pytest.fixture
def client(store: Store, book: StatusBook, publisher: Publisher) -> Iterator[httpx.Client]:
    base_url, stop = _serve(Settings(), store, book, publisher)
    try:
        with httpx.Client(base_url=base_url, timeout=10.0) as http:
            yield http
    finally:
        stop()


def error_code(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return str(body["error"]["code"])


def test_an_ask_publishes_a_v2_event_for_the_first_timelines_object_version(
    client: httpx.Client, publisher: Publisher
) -> None:
    response = client.post(
        "/videos/vid-1/analyses",
        json={"prompt": "when does anyone stand up", "labels": ["stand up"]},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    aid = body["analysis_id"]
    assert body["status"] == "running" and body["stage"] == "queued"
    assert body["prompt"] == "when does anyone stand up" and body["labels"] == ["stand up"]
    assert body["links"]["timeline"] == f"/videos/vid-1/analyses/{aid}/timeline"
    assert response.headers["location"] == f"/videos/vid-1/analyses/{aid}"
    [(topic, key, value)] = publisher.sent
    assert (topic, key) == (names.TOPIC_INGEST, "vid-1")
    event = decode_ingest(value)
    assert event.schema_id == INGEST_V2 and event.analysis_id == aid != "default"
    assert event.video_id == "vid-1" and event.job_id == body["job_id"]
    assert event.source.model_dump() == {
        "bucket": "videos",
        "key": "uploads/vid-1.mp4",
        "etag": "etag-1",
        "size": 1234,
    }
    assert event.options.prompt == "when does anyone stand up"
    assert event.options.labels == ["stand up"]

    listed = client.get("/videos/vid-1/analyses").json()
    assert [a["analysis_id"] for a in listed["analyses"]] == ["default", aid]
    first, second = listed["analyses"]
    assert first["status"] == "succeeded" and first["prompt"] == "Find the shapes"
    assert second["status"] == "running" and second["created_at"] is not None
    assert client.get(f"/videos/vid-1/analyses/{aid}").json()["analysis_id"] == aid


def test_an_ask_while_the_finished_jobs_result_is_not_read_yet_is_taken(
    client: httpx.Client, store: Store, book: StatusBook, publisher: Publisher
) -> None:
    """The job stored its final timeline and its result is not committed yet: the bus shows
    only its progress. The video is done, so the ask is taken, reading the timeline once."""
    store.put_tenant_timeline("vid-late", None, job_id="job-2")
    book.apply_progress(make_progress("vid-late", at=datetime.now(UTC).isoformat(), job="job-2"))
    key = ("timelines", names.timeline_key("vid-late"))
    reads: list[tuple[str, str]] = []
    read = store.get_bytes

    def counted(bucket: str, name: str) -> bytes:
        reads.append((bucket, name))
        return read(bucket, name)

    store.get_bytes = counted  # type: ignore[method-assign]
    response = client.post("/videos/vid-late/analyses", json={"prompt": "anyone standing?"})
    assert response.status_code == 202, response.text
    assert reads.count(key) == 1
    [(topic, video, _)] = publisher.sent
    assert (topic, video) == (names.TOPIC_INGEST, "vid-late")


def test_localizer_options_travel_and_options_may_carry_the_question(
    client: httpx.Client, publisher: Publisher
) -> None:
    response = client.post(
        "/videos/vid-1/analyses",
        json={"options": {"labels": ["slide"], "localizer": "vlm", "sample_fps": 2.0}},
    )
    assert response.status_code == 202, response.text
    event = decode_ingest(publisher.sent[0][2])
    assert event.options.labels == ["slide"] and event.options.prompt is None
    assert event.options.localizer == "vlm" and event.options.sample_fps == 2.0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param({"prompt": "   ", "labels": []}, "empty_question", id="blank"),
        pytest.param({}, "empty_question", id="nothing"),
        pytest.param({"labels": [" "]}, "empty_question", id="blank-label"),
        pytest.param({"prompt": "x" * 8001}, "prompt_too_long", id="oversized"),
        pytest.param({"prompt": "p", "options": {"sample_fps": -1}}, "invalid_request", id="opt"),
        pytest.param({"prompt": "p", "video": "x"}, "invalid_request", id="unknown-field"),
    ],
)
def test_a_bad_question_is_422_and_starts_nothing(
    client: httpx.Client, publisher: Publisher, store: Store, body: dict[str, Any], code: str
) -> None:
    before = dict(store.objects)
    assert error_code(client.post("/videos/vid-1/analyses", json=body), 422) == code
    assert publisher.sent == [] and store.objects == before


@pytest.mark.parametrize(
    ("video_id", "status", "code"),
    [
        pytest.param("nope", 404, "video_not_found", id="unknown"),
        pytest.param("vid-run", 409, "video_running", id="running"),
        pytest.param("vid-bad", 409, "video_not_analysed", id="failed-without-timeline"),
    ],
)
def test_refused_videos_start_nothing(
    client: httpx.Client,
    publisher: Publisher,
    store: Store,
    video_id: str,
    status: int,
    code: str,
) -> None:
    before = dict(store.objects)
    response = client.post(f"/videos/{video_id}/analyses", json={"prompt": "anyone standing?"})
    assert error_code(response, status) == code
    assert publisher.sent == [] and store.objects == before


def test_a_live_streams_timeline_has_no_analyses(
    client: httpx.Client, store: Store, publisher: Publisher
) -> None:
    store.put_tenant_timeline(
        "vid-live", None, stream={"stream_id": "vid-live", "last_seq": 3, "covered_s": 8.0}
    )
    response = client.post("/videos/vid-live/analyses", json={"prompt": "p"})
    assert error_code(response, 409) == "stream_not_analysable" and publisher.sent == []


def test_an_idempotency_key_asks_once(client: httpx.Client, publisher: Publisher) -> None:
    headers = {"Idempotency-Key": "retry-me-1"}
    first = client.post("/videos/vid-1/analyses", json={"prompt": "p"}, headers=headers)
    again = client.post("/videos/vid-1/analyses", json={"prompt": "p"}, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["analysis_id"] == again.json()["analysis_id"]
    assert len(publisher.sent) == 1
    other = client.post("/videos/vid-1/analyses", json={"prompt": "q"}, headers=headers)
    assert error_code(other, 422) == "idempotency_key_reused" and len(publisher.sent) == 1
    # Without a key every ask is an analysis of its own.
    client.post("/videos/vid-1/analyses", json={"prompt": "p"})
    client.post("/videos/vid-1/analyses", json={"prompt": "p"})
    assert len({decode_ingest(v).analysis_id for _, _, v in publisher.sent}) == 3


def test_a_bus_outage_is_503_and_leaves_no_analysis_listed(
    client: httpx.Client, publisher: Publisher
) -> None:
    publisher.down = True
    assert error_code(client.post("/videos/vid-1/analyses", json={"prompt": "p"}), 503)
    listed = client.get("/videos/vid-1/analyses").json()["analyses"]
    assert [a["analysis_id"] for a in listed] == ["default"]


def test_results_of_an_analysis_update_only_that_analysis(
    client: httpx.Client, book: StatusBook, store: Store, publisher: Publisher
) -> None:
    aid = client.post("/videos/vid-1/analyses", json={"prompt": "p"}).json()["analysis_id"]
    before = client.get("/videos/vid-1").json()
    now = datetime.now(UTC).isoformat()
    book.apply_progress(later(make_progress("vid-1", at=now, job="j-ask"), aid))
    assert client.get("/videos/vid-1").json() == before
    running = client.get(f"/videos/vid-1/analyses/{aid}").json()
    assert running["status"] == "running" and running["stage"] == "localizing"

    failed = later(make_result("vid-1", "failed", at=now, job="j-ask"), aid)
    book.apply_result(failed)
    assert client.get("/videos/vid-1").json() == before
    gone = client.get(f"/videos/vid-1/analyses/{aid}").json()
    assert gone["status"] == "failed" and gone["error"]["code"] == "decode_failed"

    # A later success, with its timeline stored beside the first.
    answer = make_timeline("vid-1", analysis_id=aid, prompt="p", labels=[], job_id="j-ask2")
    store.objects[(BUCKET, names.analysis_timeline_key("vid-1", aid))] = encode(answer)
    done = later(make_result("vid-1", at=datetime.now(UTC).isoformat(), job="j-ask2"), aid)
    book.apply_result(done)
    assert client.get("/videos/vid-1").json() == before
    assert client.get(f"/videos/vid-1/analyses/{aid}").json()["status"] == "succeeded"
    served = client.get(f"/videos/vid-1/analyses/{aid}/timeline").json()
    assert served["job_id"] == "j-ask2" and served["analysis_id"] == aid
    # The first analysis is 'default', the same timeline the default route serves.
    assert client.get("/videos/vid-1/analyses/default/timeline").json() == (
        client.get("/videos/vid-1/timeline").json()
    )
    # The video list still holds videos only.
    ids = [v["video_id"] for v in client.get("/videos").json()["videos"]]
    assert ids.count("vid-1") == 1 and aid not in ids


def test_unknown_analyses_and_missing_timelines_are_404(client: httpx.Client) -> None:
    assert error_code(client.get("/videos/vid-1/analyses/a-nope"), 404) == "analysis_not_found"
    assert error_code(client.get("/videos/nope/analyses/a-nope"), 404) == "video_not_found"
    assert error_code(client.get("/videos/nope/analyses"), 404) == "video_not_found"
    aid = client.post("/videos/vid-1/analyses", json={"prompt": "p"}).json()["analysis_id"]
    response = client.get(f"/videos/vid-1/analyses/{aid}/timeline")
    assert error_code(response, 404) == "timeline_not_found"
    assert error_code(client.get("/videos/vid-1/analyses/a%20b/timeline"), 422)


def test_the_viewer_lists_the_analyses_and_shows_each(client: httpx.Client, store: Store) -> None:
    page = client.get("/videos/vid-1/view").text
    assert 'class="analyses"' not in page  # one analysis: nothing to switch to
    aid = client.post("/videos/vid-1/analyses", json={"prompt": "who stands up"}).json()[
        "analysis_id"
    ]
    answer = make_timeline("vid-1", analysis_id=aid, prompt="who stands up", job_id="j-2")
    store.objects[(BUCKET, names.analysis_timeline_key("vid-1", aid))] = encode(answer)
    page = client.get("/videos/vid-1/view").text
    assert f'data-analysis-id="{aid}"' in page and 'href="view"' in page
    assert f'href="analyses/{aid}/view"' in page and "who stands up" in page
    shown = client.get(f"/videos/vid-1/analyses/{aid}/view")
    assert shown.status_code == 200 and "job j-2" in shown.text
    assert 'href="../../view"' in shown.text and f'href="../../analyses/{aid}/view"' in shown.text
    assert 'class="analysis current"' in shown.text


@pytest.fixture
def keyed(
    tmp_path: Path, store: Store, book: StatusBook, publisher: Publisher
) -> Iterator[tuple[str, dict[str, str]]]:
    keys, _, acme = add_key(KeysFile(), "acme", ("read", "submit"))
    keys, _, acme_read = add_key(keys, "acme", ("read",))
    keys, _, bravo = add_key(keys, "bravo", ("read", "submit"))
    write_keys_file(tmp_path / "keys.json", keys)
    store.put_tenant_timeline("shared", "acme")
    book.apply_result(make_result("shared").model_copy(update={"tenant": "acme"}))
    settings = Settings(api_keys_file=tmp_path / "keys.json", api_rate_burst=1000)
    base_url, stop = _serve(settings, store, book, publisher)
    try:
        yield base_url, {"acme": acme, "acme_read": acme_read, "bravo": bravo}
    finally:
        stop()


def test_another_tenants_video_is_404_and_scopes_hold(
    keyed: tuple[str, dict[str, str]], publisher: Publisher, store: Store
) -> None:
    base_url, keys = keyed

    def call(who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        auth = {"Authorization": f"Bearer {keys[who]}"}
        return httpx.request(method, base_url + path, headers=auth, timeout=10.0, **kwargs)

    bravo = call("bravo", "POST", "/videos/shared/analyses", json={"prompt": "p"})
    unknown = call("bravo", "POST", "/videos/never-seen/analyses", json={"prompt": "p"})
    assert error_code(bravo, 404) == error_code(unknown, 404) == "video_not_found"
    assert bravo.json()["error"]["message"] == "no video 'shared'"
    assert error_code(call("acme_read", "POST", "/videos/shared/analyses", json={}), 403)
    assert publisher.sent == []

    asked = call("acme", "POST", "/videos/shared/analyses", json={"labels": ["wave"]})
    assert asked.status_code == 202, asked.text
    event = decode_ingest(publisher.sent[0][2])
    assert event.tenant == "acme" and event.source.key == "tenants/acme/uploads/shared.mp4"
    aid = asked.json()["analysis_id"]
    assert (BUCKET, record_key("shared", aid, "acme")) in store.objects
    assert error_code(call("bravo", "GET", f"/videos/shared/analyses/{aid}"), 404) == (
        "video_not_found"
    )
    assert error_code(call("bravo", "GET", "/videos/shared/analyses"), 404) == "video_not_found"
    listed = call("acme_read", "GET", "/videos/shared/analyses").json()["analyses"]
    assert [a["analysis_id"] for a in listed] == ["default", aid]


def test_the_book_keeps_analyses_apart_from_their_video() -> None:
    book = StatusBook()
    book.apply_result(make_result("v"))
    book.apply_result(later(make_result("v", "failed", at="2025-02-01T00:00:00Z"), "a-1"))
    book.apply_progress(later(make_progress("v", at="2025-02-02T00:00:00Z"), "a-2"))
    book.apply_result(later(make_result("v", at="2025-02-03T00:00:00Z"), "default"))
    view = book.get("v")
    assert view is not None and view.result is not None and view.progress is None
    assert view.result.created_at.isoformat().startswith("2025-02-03")
    assert set(book.analyses("v")) == {"a-1", "a-2"} and book.analyses("v", "acme") == {}
    one = book.analysis("v", "a-1")
    assert one is not None and one.result is not None and one.result.status == "failed"
    assert set(book.snapshot()) == {"v"}


def test_search_indexes_a_later_analysis_apart_from_the_first(tmp_path: Path) -> None:
    """The index syncs every analysis: a key under analyses/ is that analysis of the video, and
    a result naming a later analysis' timeline queues that analysis (tenant prefixes included);
    tests/unit/test_search_analyses.py has the rest."""
    from vidloc.search.feeder import Indexer, slot_of_key
    from vidloc.search.index import SearchIndex

    for tenant in (None, "acme"):
        assert slot_of_key(names.timeline_key("v", tenant)) == (tenant, "v", "default")
        later_key = names.analysis_timeline_key("v", "a-1", tenant)
        assert slot_of_key(later_key) == (tenant, "v", "a-1")
    store = Store()
    store.put_tenant_timeline("v", None)
    answer = make_timeline("v", analysis_id="a-1", job_id="j-later")
    store.objects[(BUCKET, names.analysis_timeline_key("v", "a-1"))] = encode(answer)
    indexer = Indexer(SearchIndex(tmp_path / "i.sqlite"), store, BUCKET)  # type: ignore[arg-type]
    assert indexer.sync().listed == 2
    assert set(indexer.index.etags()) == {(None, "v", "default"), (None, "v", "a-1")}
    key = names.analysis_timeline_key("v", "a-1")
    result = make_result("v", at=datetime.now(UTC).isoformat()).model_copy(
        update={"analysis_id": "a-1", "timeline": ObjectRef(bucket=BUCKET, key=key)}
    )
    indexer.offer(result)
    assert set(indexer._pending) == {(None, "v", "a-1")}
