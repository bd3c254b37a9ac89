"""Search: the query checks (pure), the SQLite FTS5 index, the sync, and GET /search over an
in-memory store (tenants, hostile queries, cursors)."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from api_fixtures import MemoryStore, make_result, make_timeline, timeline_doc

from contracts import decode_timeline, encode
from devkit.serve_api import serve_in_thread
from vidloc import names
from vidloc.api.app import create_app
from vidloc.api.keys import KeysFile, add_key, write_keys_file
from vidloc.api.search import build_search
from vidloc.search import Indexer, QueryError, SearchIndex, make_cursor, make_request
from vidloc.search.feeder import slot_of_key
from vidloc.search.query import MAX_QUERY_CHARS, match_expression, words
from vidloc.settings import Settings

HOSTILE = [
    pytest.param('red" OR "x', id="quote"),
    pytest.param("red*", id="prefix-star"),
    pytest.param("NEAR(red circle)", id="near"),
    pytest.param("label:red", id="column-filter"),
    pytest.param("red AND NOT circle", id="operators"),
    pytest.param("-red ^circle", id="minus-caret"),
    pytest.param("'; DROP TABLE events; --", id="sql"),
    pytest.param("{label description}: red", id="column-set"),
    pytest.param('"""', id="only-quotes"),
]


def test_words_are_letters_and_digits_case_folded_once() -> None:
    assert words("Red CIRCLE, red_circle; 3rd!") == ["red", "circle", "3rd"]
    assert words('"*()^:-') == []
    assert words("Straße über") == ["strasse", "über"]


def test_every_word_goes_in_quoted() -> None:
    assert match_expression(["red", "circle"]) == '"red" "circle"'
    assert match_expression(["red", "circle"], "any") == '"red" OR "circle"'
    with pytest.raises(QueryError):
        match_expression([])


@pytest.mark.parametrize("text", ["", "   ", "!!! ??? ***", '""'])
def test_a_query_with_no_word_is_refused(text: str) -> None:
    with pytest.raises(QueryError, match="empty"):
        make_request(text)


def test_a_long_query_is_refused() -> None:
    with pytest.raises(QueryError) as info:
        make_request("a" * 10_240)
    assert info.value.code == "query_too_long"
    with pytest.raises(QueryError) as info:
        make_request(" ".join(f"w{i}" for i in range(40)))
    assert info.value.code == "query_too_long"
    assert make_request("x" * MAX_QUERY_CHARS).terms == ["x" * MAX_QUERY_CHARS]


def test_a_cursor_is_bound_to_its_query() -> None:
    first = make_request("red circle", limit=2)
    cursor = make_cursor(2, first.fingerprint())
    assert make_request("red circle", limit=2, cursor=cursor).offset == 2
    for bad in (make_cursor(2, make_request("green").fingerprint()), "garbage!", "e30"):
        with pytest.raises(QueryError) as info:
            make_request("red circle", limit=2, cursor=bad)
        assert info.value.code == "invalid_cursor"


def test_key_slots() -> None:
    assert slot_of_key("timelines/v1/timeline.json") == (None, "v1", "default")
    assert slot_of_key("tenants/acme/timelines/v1/timeline.json") == ("acme", "v1", "default")
    later = names.analysis_timeline_key("v1", "a-1", "acme")
    assert slot_of_key(later) == ("acme", "v1", "a-1")
    assert slot_of_key(names.analysis_timeline_key("v1", "a-1")) == (None, "v1", "a-1")
    for other in (
        "timelines/v1/x.json",
        "checkpoints/v1/j/chunk-00001.json",
        "timelines/a/b/timeline.json",
        "timelines/v1/analyses/timeline.json",
        "timelines/v1/analyses/default/timeline.json",  # the first analysis lives above
        "timelines/v1/other/a-1/timeline.json",
        "timelines/v1/analyses/a-1/x/timeline.json",
    ):
        assert slot_of_key(other) is None


@pytest.fixture
def index(tmp_path: Path) -> Iterator[SearchIndex]:
    found = SearchIndex(tmp_path / "index.sqlite")
    yield found
    found.close()


def test_index_ranks_filters_and_keeps_tenants_apart(index: SearchIndex) -> None:
    index.put("acme", make_timeline("vid-1"), "e1")
    index.put("bravo", make_timeline("vid-1"), "e1")
    # Words every event has score nothing (BM25's IDF): make "red" and "circle" rare.
    filler = timeline_doc("dogs")
    filler["events"] = [{**e, "label": "dog", "description": "a dog"} for e in filler["events"]]
    index.put_many([(f"t{i}", decode_timeline(filler), "f") for i in range(5)])
    hits = index.search("acme", make_request("red circle")).hits
    assert {(h.tenant, h.event_id) for h in hits} == {("acme", "e1"), ("acme", "e3")}
    # "red circle" twice in e1 (label and description) beats e3 (label only).
    assert [h.event_id for h in hits] == ["e1", "e3"] and hits[0].score > hits[1].score > 0
    assert index.search(None, make_request("red")).hits == []
    assert [h.event_id for h in index.search("acme", make_request("moves")).hits] == ["e2"]
    assert index.search("acme", make_request("red", labels=("Green Square",))).hits == []
    anyword = index.search("acme", make_request("flash triangle", mode="any")).hits
    assert {h.event_id for h in anyword} == {"e3", "e4"}
    assert index.search("acme", make_request("flash triangle")).hits == []


@pytest.mark.parametrize("text", HOSTILE)
def test_fts_syntax_is_only_characters(index: SearchIndex, text: str) -> None:
    index.put(None, make_timeline("vid-1"), "e1")
    try:
        request = make_request(text)
    except QueryError:
        return  # nothing searchable in it: refused, never passed on
    index.search(None, request)  # no sqlite3.OperationalError
    assert index.counts() == (1, 4)  # and nothing was dropped


def test_a_replaced_timeline_replaces_its_events(index: SearchIndex) -> None:
    index.put(None, make_timeline("vid-1"), "e1")
    doc = timeline_doc("vid-1")
    doc["events"] = doc["events"][:1]
    index.put(None, decode_timeline(doc), "e2")
    assert index.counts() == (1, 1) and index.etag(None, "vid-1", "default") == "e2"
    index.remove(None, "vid-1")
    assert index.counts() == (0, 0)
    assert index.search(None, make_request("red")).hits == []


def test_an_index_of_another_schema_version_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 999")
    fresh = SearchIndex(path)
    assert fresh.counts() == (0, 0)
    fresh.close()


def test_sync_fetches_only_what_changed_and_drops_what_is_gone(index: SearchIndex) -> None:
    store = MemoryStore()
    store.put_timeline(make_timeline("vid-1"))
    store.objects[("timelines", names.timeline_key("vid-2", "acme"))] = encode(
        make_timeline("vid-2")
    )
    store.objects[("timelines", "checkpoints/vid-1/job-1/chunk-00000.json")] = b"{}"
    store.objects[("timelines", names.timeline_key("vid-bad"))] = b"not json"
    indexer = Indexer(index, store, "timelines")  # type: ignore[arg-type]
    report = indexer.sync()
    assert (report.listed, report.fetched, report.unreadable) == (3, 2, 1)
    assert set(index.etags()) == {(None, "vid-1", "default"), ("acme", "vid-2", "default")}
    assert indexer.sync().fetched == 0
    del store.objects[("timelines", names.timeline_key("vid-1"))]
    assert indexer.sync().removed == 1
    assert set(index.etags()) == {("acme", "vid-2", "default")}


def test_a_result_is_queued_only_for_this_bucket_and_the_tenants_own_key(
    index: SearchIndex,
) -> None:
    indexer = Indexer(index, MemoryStore(), "timelines")  # type: ignore[arg-type]
    now = datetime.now(UTC).isoformat()
    indexer.offer(make_result("vid-1", at=now))
    indexer.offer(make_result("vid-2", "failed", at=now))
    assert set(indexer._pending) == {(None, "vid-1", "default")}
    elsewhere = make_result("vid-3", at=now)
    assert elsewhere.timeline is not None
    indexer.offer(
        elsewhere.model_copy(
            update={"timeline": elsewhere.timeline.model_copy(update={"bucket": "other"})}
        )
    )
    assert (None, "vid-3", "default") not in indexer._pending
    indexer.synced_at = datetime.now(UTC).timestamp()
    indexer.offer(make_result("vid-4", at="2020-01-01T00:00:00Z"))  # the sync saw it
    assert (None, "vid-4", "default") not in indexer._pending


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    store = MemoryStore()
    for tenant, vid in (("acme", "cam-1"), ("acme", "cam-2"), ("bravo", "cam-9")):
        store.objects[("timelines", names.timeline_key(vid, tenant))] = encode(make_timeline(vid))
    keys_path = tmp_path / "keys.json"
    file, _, acme = add_key(KeysFile(), "acme", ("read",))
    file, _, bravo = add_key(file, "bravo", ("read",))
    file, _, submit = add_key(file, "acme", ("submit",))
    write_keys_file(keys_path, file)
    settings = Settings(api_keys_file=keys_path, search_index_path=tmp_path / "search.sqlite")
    app = create_app(settings, store=store, follow_bus=False, probes={})  # type: ignore[arg-type]
    base_url, stop = serve_in_thread(app)
    try:
        assert app.state.search.indexer.ready.wait(10.0)
        with httpx.Client(base_url=base_url, timeout=10.0) as http:
            yield http, {"acme": acme, "bravo": bravo, "submit": submit}
    finally:
        stop()


def _get(http: httpx.Client, key: str, **params: object) -> httpx.Response:
    return http.get("/search", params=params, headers={"Authorization": f"Bearer {key}"})


def test_search_route_answers_one_tenant(keyed: tuple[httpx.Client, dict[str, str]]) -> None:
    http, keys = keyed
    body = _get(http, keys["acme"], q="red circle").json()
    assert body["index"]["ready"] is True and body["terms"] == ["red", "circle"]
    assert {(r["video_id"], r["event_id"]) for r in body["results"]} == {
        (v, e) for v in ("cam-1", "cam-2") for e in ("e1", "e3")
    }
    first = body["results"][0]
    assert set(first) == {
        "video_id", "analysis", "job_id", "event_id", "label", "start_s", "end_s",
        "description", "confidence", "score", "thumbnail_url", "clip_url",
    }  # fmt: skip
    assert first["analysis"] == "default" and first["job_id"] == "job-1"
    assert first["thumbnail_url"] is None
    assert first["clip_url"] == f"/videos/{first['video_id']}/events/{first['event_id']}/clip"
    bravo = _get(http, keys["bravo"], q="red circle").json()["results"]
    assert {r["video_id"] for r in bravo} == {"cam-9"}
    grouped = _get(http, keys["acme"], q="red", group="video").json()["groups"]
    assert [len(g["moments"]) for g in grouped] == [2, 2]
    assert _get(http, keys["submit"], q="red").status_code == 403
    assert http.get("/search", params={"q": "red"}).status_code == 401


def test_search_pages_with_a_cursor(keyed: tuple[httpx.Client, dict[str, str]]) -> None:
    http, keys = keyed
    seen, cursor, pages = [], None, 0
    while True:
        params = {"q": "red", "limit": 3, **({"cursor": cursor} if cursor else {})}
        body = _get(http, keys["acme"], **params).json()
        seen += [(r["video_id"], r["event_id"]) for r in body["results"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 2 and len(seen) == len(set(seen)) == 4
    other = _get(http, keys["acme"], q="green", cursor=body_cursor(http, keys["acme"]))
    assert other.status_code == 400 and other.json()["error"]["code"] == "invalid_cursor"


def body_cursor(http: httpx.Client, key: str) -> str:
    cursor: str = _get(http, key, q="red", limit=1).json()["next_cursor"]
    return cursor


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        pytest.param({"q": ""}, 400, "invalid_query", id="empty"),
        pytest.param({}, 400, "invalid_query", id="missing"),
        pytest.param({"q": '" * ^ ( ) :'}, 400, "invalid_query", id="only-syntax"),
        pytest.param({"q": "a" * 1000}, 400, "query_too_long", id="1kb"),
        pytest.param({"q": "a" * 10_240}, 414, "uri_too_long", id="10kb"),
        pytest.param({"q": "red", "limit": 0}, 422, "invalid_request", id="limit"),
        pytest.param({"q": "red", "since": "yesterday"}, 422, "invalid_request", id="since"),
        pytest.param({"q": "red", "since": "0001-01-01T00:00:00"}, 200, None, id="year-1"),
        pytest.param({"q": "red", "until": "9999-12-31T23:59:59"}, 200, None, id="year-9999"),
        pytest.param({"q": "red", "video": "cam-9"}, 404, "video_not_found", id="bravos-video"),
        pytest.param({"q": "red", "video": "nope"}, 404, "video_not_found", id="unknown-video"),
    ],
)
def test_bad_searches_are_clear_errors(
    keyed: tuple[httpx.Client, dict[str, str]],
    params: dict[str, object],
    status: int,
    code: str | None,
) -> None:
    http, keys = keyed
    response = _get(http, keys["acme"], **params)
    assert response.status_code == status, response.text
    if code is not None:
        assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_queries_never_500(keyed: tuple[httpx.Client, dict[str, str]], text: str) -> None:
    http, keys = keyed
    response = _get(http, keys["acme"], q=text)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 200:
        assert all(r["video_id"] in ("cam-1", "cam-2") for r in response.json()["results"])


def test_an_unwritable_index_path_falls_back_to_the_temp_dir(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    settings = Settings(search_index_path=blocked / "index.sqlite", timeline_bucket="tb-fallback")
    service = build_search(settings, MemoryStore())  # type: ignore[arg-type]
    try:
        assert service.index.path.parent.name == "vidloc-search"
        assert service.index.path.name == "index.sqlite"
    finally:
        service.index.close()


def test_later_pages_rank_the_first_pages_window(index: SearchIndex) -> None:
    """A cursor carries the rows its first page ranked: an event indexed meanwhile neither
    shows up between pages nor pushes one off; a fresh search sees it."""
    index.put("acme", make_timeline("vid-1"), "e1")
    index.put("bravo", make_timeline("vid-1"), "e1")
    ask = make_request("red", limit=1)
    first = index.search("acme", ask)
    assert first.more and first.window is not None
    cursor = make_cursor(1, ask.fingerprint(), first.window)
    index.put("acme", make_timeline("vid-2"), "e2")  # two more red events
    rest = index.search("acme", make_request("red", limit=10, cursor=cursor))
    seen = [(h.video_id, h.event_id) for h in first.hits + rest.hits]
    assert sorted(seen) == [("vid-1", "e1"), ("vid-1", "e3")] and not rest.more
    assert len(index.search("acme", make_request("red", limit=10)).hits) == 4
    # The window is a range of acme's rowids: another tenant's search with it finds nothing of
    # acme's (the index keeps every range inside the caller's own block).
    foreign = index.search("bravo", make_request("red", limit=10, cursor=cursor)).hits
    assert all(h.tenant == "bravo" for h in foreign)


@pytest.mark.parametrize(
    "window", [{"f": "x", "c": 1, "w": 0}, {"f": 1, "c": 2}, {"f": -1, "c": 2, "w": 0}]
)
def test_a_cursor_with_a_garbled_window_is_refused(window: dict[str, object]) -> None:
    ask = make_request("red")
    raw = json.dumps({"o": 20, "q": ask.fingerprint(), **window}).encode()
    with pytest.raises(QueryError) as info:
        make_request("red", cursor=base64.urlsafe_b64encode(raw).decode())
    assert info.value.code == "invalid_cursor"


@pytest.mark.parametrize(
    ("at_least", "found"),
    [
        (0.3, {"e1", "e2", "e3", "e4"}),  # below the tenths that are tags: the column filters
        (0.8, {"e1", "e2", "e3"}),
        (0.81, {"e1", "e2"}),  # between tenths: the tag selects 0.8.., the column says 0.81
        (0.85, {"e1", "e2"}),
        (0.9, {"e1"}),
        (1.0, set()),
    ],
)
def test_min_confidence_is_exact(index: SearchIndex, at_least: float, found: set[str]) -> None:
    doc = timeline_doc("vid-1")
    confidences = {"e1": 0.95, "e2": 0.85, "e3": 0.8, "e4": 0.3}
    doc["events"] = [
        {**e, "description": "a kite", "confidence": confidences[e["id"]]} for e in doc["events"]
    ]
    doc["events"].append({**doc["events"][0], "id": "e5", "confidence": None})
    index.put("acme", decode_timeline(doc), "e1")
    hits = index.search("acme", make_request("kite", min_confidence=at_least)).hits
    assert {h.event_id for h in hits} == found
    assert len(index.search("acme", make_request("kite")).hits) == 5


KITES = {
    "jan-31-late": "2026-01-31T23:30:00Z",
    "feb-01-early": "2026-02-01T00:10:00Z",
    "feb-15": "2026-02-15T12:00:00Z",
    "mar-01": "2026-03-01T00:00:00Z",
    "mar-31-last": "2026-03-31T23:59:59Z",
    "apr-02": "2026-04-02T08:00:00+02:00",  # 06:00 UTC
}


@pytest.mark.parametrize(
    ("since", "until"),
    [
        pytest.param("2026-02-01T00:00:00Z", "2026-03-31T23:59:59Z", id="two-whole-months"),
        pytest.param("2026-01-31T23:45:00Z", "2026-02-01T00:05:00Z", id="within-edge-days"),
        pytest.param("2026-02-01T01:00:00+02:00", None, id="open-end-other-zone"),
        pytest.param(None, "2026-02-15T11:59:59Z", id="open-start"),
        pytest.param("2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z", id="one-instant"),
        pytest.param("2026-05-01T00:00:00Z", None, id="after-everything"),
        pytest.param("2025-01-01T00:00:00Z", "2026-12-31T00:00:00Z", id="most-events"),
    ],
)
def test_since_and_until_are_exact(
    index: SearchIndex, since: str | None, until: str | None
) -> None:
    """Whether the days are tags in the MATCH (a range holding under half the tenant's events)
    or only the column filters (the rest), a search keeps exactly the timelines made within."""
    for name, at in KITES.items():
        doc = timeline_doc(name, created_at=at)
        doc["events"] = [{**doc["events"][0], "description": "a kite"}]
        index.put("acme", decode_timeline(doc), "e")
    filler = timeline_doc("filler", created_at="2025-06-01T00:00:00Z")
    index.put("acme", decode_timeline(filler), "e")  # 4 events: some ranges hold under half
    index.put("bravo", decode_timeline({**filler, "video_id": "kite-b"}), "e")

    def moment(text: str | None) -> datetime | None:
        return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))

    low, high = moment(since), moment(until)
    expected = {
        name
        for name, at in KITES.items()
        if (low is None or moment(at) >= low) and (high is None or moment(at) <= high)  # type: ignore[operator]
    }
    request = make_request("kite", since=low, until=high, limit=50)
    assert {h.video_id for h in index.search("acme", request).hits} == expected


def test_time_tags_cover_whole_months_days_and_hours() -> None:
    from vidloc.search.match import time_match

    def at(text: str) -> datetime:
        return datetime.fromisoformat(text)

    assert time_match(at("2026-01-30T22:10:00+00:00"), at("2026-03-01T01:59:00+00:00")) == (
        'tags : ("h2026013022" OR "h2026013023" OR "d20260131" OR "m202602" OR "h2026030100"'
        ' OR "h2026030101")'
    )
    assert time_match(at("2026-01-01T00:00:00+00:00"), at("2026-12-31T23:00:00+00:00")) == (
        "tags : (" + " OR ".join(f'"m2026{m:02d}"' for m in range(1, 13)) + ")"
    )
    # Another zone is its UTC hour.
    assert time_match(at("2026-02-01T01:30:00+02:00"), at("2026-01-31T23:59:00+00:00")) == (
        'tags : ("h2026013123")'
    )
    assert time_match(at("2020-01-01T00:00:00+00:00"), at("2026-12-31T00:00:00+00:00")) is None


def test_a_window_never_fills_with_rows_the_filters_drop(
    index: SearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tags of a range's last day or of a confidence between tenths select more than the
    filters keep: the newest matches (here: later that day, or at 0.8) must not take the whole
    window and leave the ones the filters keep unranked."""
    import vidloc.search.index as index_module

    monkeypatch.setattr(index_module, "RANK_WINDOW", 3)

    def put(video_id: str, at: str, confidence: float) -> None:
        doc = timeline_doc(video_id, created_at=at)
        doc["events"] = [
            {**e, "description": "a kite", "confidence": confidence} for e in doc["events"]
        ]
        index.put("acme", decode_timeline(doc), "e")

    for n in range(10):  # under half of the tenant's events are on the day below: tags select
        put(f"old-{n}", "2025-06-01T00:00:00Z", 0.5)
    put("at-midnight", "2026-03-01T00:00:00Z", 0.9)
    for n in range(3):  # newer rows, the same day and tenth, outside the filters
        put(f"later-{n}", "2026-03-01T10:00:00Z", 0.8)
    until = make_request(
        "kite", since=datetime(2026, 1, 1, tzinfo=UTC), until=datetime(2026, 3, 1, tzinfo=UTC)
    )
    assert {h.video_id for h in index.search("acme", until).hits} == {"at-midnight"}
    between = make_request("kite", min_confidence=0.85)
    assert {h.video_id for h in index.search("acme", between).hits} == {"at-midnight"}


def test_a_forged_cursor_window_ranks_no_more_than_a_window(
    index: SearchIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window comes back from the caller: one that spans every rowid still ranks only the
    newest RANK_WINDOW matches (the cost of a page stays bounded) of the caller's own rows."""
    import vidloc.search.index as index_module
    from vidloc.search.query import Window

    monkeypatch.setattr(index_module, "RANK_WINDOW", 3)
    for n in range(5):
        index.put("acme", make_timeline(f"vid-{n}"), "e")  # two red events each
    index.put("bravo", make_timeline("vid-b"), "e")
    ask = make_request("red", limit=50)
    forged = make_cursor(0, ask.fingerprint(), Window(0, 2**62, False))
    hits = index.search("acme", make_request("red", limit=50, cursor=forged)).hits
    assert len(hits) == 3 and {h.tenant for h in hits} == {"acme"}
    assert {h.video_id for h in hits} <= {"vid-3", "vid-4"}  # the newest three matches
