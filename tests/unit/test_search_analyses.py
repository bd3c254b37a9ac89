"""Search over every analysis of a video: a later analysis' timeline (``analyses/<id>/``) is
indexed beside the first's, hits name their analysis and link its thumbnail and clip routes, and
two tenants with the same video ids and analysis ids never see each other's moments."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_fixtures import MemoryStore, make_result, timeline_doc

from contracts import decode_timeline, encode
from devkit.serve_api import serve_in_thread
from vidloc import names
from vidloc.api.app import create_app
from vidloc.api.keys import KeysFile, add_key, write_keys_file
from vidloc.search import Indexer, SearchIndex, make_request
from vidloc.settings import Settings

TENANTS = ("acme", "bravo")
VIDEO, LATER = "cam-1", "a-0123456789abcdef"


def jpeg(tenant: str) -> bytes:
    return b"\xff\xd8\xff\xe0" + tenant.encode() + b"\xff\xd9"


def later_doc(tenant: str) -> dict[str, Any]:
    """The later analysis: the same words for both tenants, so a leak would be found."""
    doc = timeline_doc(VIDEO, analysis_id=LATER, job_id="job-2", prompt="Find the kites")
    doc["labels"] = ["yellow kite"]
    doc["events"] = [
        {
            "id": "k1",
            "label": "yellow kite",
            "start_s": 2.0,
            "end_s": 5.0,
            "description": f"a yellow kite over {tenant}'s field",
            "confidence": 0.8,
            "thumbnail": "thumbnails/k1.jpg",
        }
    ]
    return doc


def fill(store: MemoryStore) -> None:
    """Both tenants: cam-1's first analysis (shapes) and the same later analysis id (kites)."""
    for tenant in TENANTS:
        first = names.timeline_key(VIDEO, tenant)
        store.objects[("timelines", first)] = encode(decode_timeline(timeline_doc(VIDEO)))
        later = names.analysis_timeline_key(VIDEO, LATER, tenant)
        store.objects[("timelines", later)] = encode(decode_timeline(later_doc(tenant)))
        folder = later.rsplit("/", 1)[0]
        store.objects[("timelines", f"{folder}/thumbnails/k1.jpg")] = jpeg(tenant)


@pytest.fixture
def index(tmp_path: Path) -> Iterator[SearchIndex]:
    found = SearchIndex(tmp_path / "index.sqlite")
    yield found
    found.close()


def test_the_sync_indexes_every_analysis_and_keeps_tenants_apart(index: SearchIndex) -> None:
    store = MemoryStore()
    fill(store)
    indexer = Indexer(index, store, "timelines")  # type: ignore[arg-type]
    assert indexer.sync().fetched == 4
    assert index.counts() == (4, 10)
    for tenant in TENANTS:
        hits = index.search(tenant, make_request("kite")).hits
        assert [(h.tenant, h.video_id, h.analysis, h.job_id, h.event_id) for h in hits] == [
            (tenant, VIDEO, LATER, "job-2", "k1")
        ]
        assert hits[0].description == f"a yellow kite over {tenant}'s field"
        shapes = index.search(tenant, make_request("red circle")).hits
        assert {(h.analysis, h.event_id) for h in shapes} == {("default", "e1"), ("default", "e3")}
    assert index.search("acme", make_request("bravo")).hits == []
    assert index.search(None, make_request("kite")).hits == []
    only_first = make_request("kite red", mode="any", analyses=("default",))
    assert {h.analysis for h in index.search("acme", only_first).hits} == {"default"}
    only_later = make_request("kite red", mode="any", analyses=(LATER,))
    assert [h.event_id for h in index.search("acme", only_later).hits] == ["k1"]
    # A later analysis gone from the store goes from the index; the first stays.
    del store.objects[("timelines", names.analysis_timeline_key(VIDEO, LATER, "acme"))]
    assert indexer.sync().removed == 1
    assert index.search("acme", make_request("kite")).hits == []
    assert len(index.search("bravo", make_request("kite")).hits) == 1
    assert index.has_video("acme", VIDEO) and index.etag("acme", VIDEO, LATER) is None


def test_a_timeline_stored_under_another_analysis_is_not_indexed(index: SearchIndex) -> None:
    store = MemoryStore()
    # The first analysis' place holding a later analysis' timeline: its events would be linked
    # to routes that do not serve them.
    key = names.timeline_key(VIDEO, "acme")
    store.objects[("timelines", key)] = encode(decode_timeline(later_doc("acme")))
    report = Indexer(index, store, "timelines").sync()  # type: ignore[arg-type]
    assert (report.fetched, report.unreadable) == (0, 1) and index.counts() == (0, 0)


def test_a_later_analysis_result_queues_that_analysis(index: SearchIndex) -> None:
    store = MemoryStore()
    fill(store)
    indexer = Indexer(index, store, "timelines")  # type: ignore[arg-type]
    base = make_result(VIDEO, at=datetime.now(UTC).isoformat())
    assert base.timeline is not None

    def result(key: str, analysis_id: str | None) -> Any:
        timeline = base.timeline.model_copy(update={"key": key})  # type: ignore[union-attr]
        return base.model_copy(
            update={"tenant": "acme", "analysis_id": analysis_id, "timeline": timeline}
        )

    later_key = names.analysis_timeline_key(VIDEO, LATER, "acme")
    indexer.offer(result(later_key, LATER))
    # An event that names the first analysis' key for a later analysis (or the reverse), or
    # another tenant's key, is not trusted.
    indexer.offer(result(names.timeline_key(VIDEO, "acme"), LATER))
    indexer.offer(result(later_key, None))
    indexer.offer(result(names.analysis_timeline_key(VIDEO, LATER, "bravo"), LATER))
    assert set(indexer._pending) == {("acme", VIDEO, LATER)}
    assert indexer.refresh("acme", VIDEO, LATER)
    assert [h.event_id for h in index.search("acme", make_request("kite")).hits] == ["k1"]
    assert index.search("bravo", make_request("kite")).hits == []


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    store = MemoryStore()
    fill(store)
    keys_path = tmp_path / "keys.json"
    file, _, acme = add_key(KeysFile(), "acme", ("read",))
    file, _, bravo = add_key(file, "bravo", ("read",))
    write_keys_file(keys_path, file)
    settings = Settings(api_keys_file=keys_path, search_index_path=tmp_path / "search.sqlite")
    app = create_app(settings, store=store, follow_bus=False, probes={})  # type: ignore[arg-type]
    base_url, stop = serve_in_thread(app)
    try:
        assert app.state.search.indexer.ready.wait(10.0)
        with httpx.Client(base_url=base_url, timeout=10.0) as http:
            yield http, {"acme": acme, "bravo": bravo}
    finally:
        stop()


def _get(http: httpx.Client, key: str, path: str, **params: Any) -> httpx.Response:
    return http.get(path, params=params, headers={"Authorization": f"Bearer {key}"})


def test_hits_link_their_analysis_thumbnail_and_clip(
    keyed: tuple[httpx.Client, dict[str, str]],
) -> None:
    http, keys = keyed
    for tenant in TENANTS:
        body = _get(http, keys[tenant], "/search", q="kite").json()
        [hit] = body["results"]
        base = f"/videos/{VIDEO}/analyses/{LATER}/events/k1"
        assert (hit["analysis"], hit["job_id"]) == (LATER, "job-2")
        assert (hit["thumbnail_url"], hit["clip_url"]) == (f"{base}/thumbnail", f"{base}/clip")
        # The link serves the tenant's own picture, though both tenants have the same path.
        picture = _get(http, keys[tenant], hit["thumbnail_url"])
        assert picture.status_code == 200 and picture.content == jpeg(tenant)
    grouped = _get(http, keys["acme"], "/search", q="kite red", match="any", group="video")
    assert {(g["video_id"], g["analysis"]) for g in grouped.json()["groups"]} == {
        (VIDEO, "default"),
        (VIDEO, LATER),
    }
    first = _get(http, keys["acme"], "/search", q="kite red", match="any", analysis="default")
    assert {r["analysis"] for r in first.json()["results"]} == {"default"}
    assert all(
        r["clip_url"] == f"/videos/{VIDEO}/events/{r['event_id']}/clip"
        for r in first.json()["results"]
    )


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        pytest.param(
            "/search", {"q": "kite", "analysis": "../x"}, 422, "invalid_request", id="bad"
        ),
        pytest.param(
            f"/videos/{VIDEO}/analyses/a-nope/events/k1/thumbnail",
            {},
            404,
            "analysis_not_found",
            id="unknown-analysis",
        ),
        pytest.param(
            f"/videos/cam-9/analyses/{LATER}/events/k1/thumbnail",
            {},
            404,
            "video_not_found",
            id="unknown-video",
        ),
        pytest.param(
            f"/videos/{VIDEO}/events/k1/thumbnail", {}, 404, "event_not_found", id="first-has-no-k1"
        ),
        pytest.param(
            f"/videos/{VIDEO}/analyses/{LATER}/events/e1/clip",
            {},
            404,
            "event_not_found",
            id="later-has-no-e1",
        ),
    ],
)
def test_bad_analysis_addresses_are_clear_errors(
    keyed: tuple[httpx.Client, dict[str, str]],
    path: str,
    params: dict[str, Any],
    status: int,
    code: str,
) -> None:
    http, keys = keyed
    response = _get(http, keys["acme"], path, **params)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
