"""Search on the real stack: timelines of two tenants in S3 (first and later analyses), the API's
index synced from them and fed by the real ``video.results``, ``GET /search`` with keys, and
``vidloc search``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from apistack import isolated_settings, now, timeline_for, unique_id
from pipeline import REPO

from contracts import decode_result, decode_timeline, derive_analysis_id, encode
from devkit.serve_api import serve_in_thread
from vidloc import names
from vidloc.adapters.kafka import EventPublisher
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.app import create_app
from vidloc.api.keys import KeysFile, add_key, write_keys_file
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

ACME, BRAVO = (f"{name}-{uuid.uuid4().hex[:8]}" for name in ("acme", "bravo"))
# One later analysis id both tenants have, of one video id both have.
LATER = derive_analysis_id(unique_id("search-ask"))


def put(
    settings: Settings,
    tenant: str,
    video_id: str,
    events: list[tuple[str, float, float]],
    analysis_id: str | None = None,
) -> str:
    """Store a timeline (of the first analysis, or of ``analysis_id``); its key."""
    doc = timeline_for(
        video_id, settings.video_bucket, f"tenants/{tenant}/uploads/{video_id}.mp4", events=events
    )
    if analysis_id is not None:
        doc["analysis_id"] = analysis_id
    key = names.analysis_timeline_key(video_id, analysis_id, tenant)
    ObjectStore(settings).put_bytes(settings.timeline_bucket, key, encode(decode_timeline(doc)))
    return key


def put_with_thumbnail(
    settings: Settings, tenant: str, video_id: str, label: str, analysis_id: str
) -> None:
    """A later analysis' timeline whose one event has a thumbnail naming the tenant."""
    doc = timeline_for(
        video_id,
        settings.video_bucket,
        f"tenants/{tenant}/uploads/{video_id}.mp4",
        events=[(label, 2.0, 5.0)],
    )
    doc["analysis_id"] = analysis_id
    doc["events"][0]["thumbnail"] = "thumbnails/ev0.jpg"
    key = names.analysis_timeline_key(video_id, analysis_id, tenant)
    store = ObjectStore(settings)
    folder = key.rsplit("/", 1)[0]
    store.put_bytes(settings.timeline_bucket, f"{folder}/thumbnails/ev0.jpg", picture(tenant))
    store.put_bytes(settings.timeline_bucket, key, encode(decode_timeline(doc)))


def picture(tenant: str) -> bytes:
    return b"\xff\xd8\xff\xe0" + tenant.encode() + b"\xff\xd9"


@pytest.fixture(scope="module")
def search_settings(
    stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Settings, tuple[str, str]]:
    """Settings for the module (its buckets, keys file, index file) and (acme's, bravo's) key."""
    settings = isolated_settings(stack, "search")
    keys_path = tmp_path_factory.mktemp("search-keys") / "keys.json"
    file, _, acme = add_key(KeysFile(), ACME, ("read",))
    file, _, bravo = add_key(file, BRAVO, ("read",))
    write_keys_file(keys_path, file)
    put(settings, ACME, "cam-red", [("red car", 1.0, 4.0), ("person", 5.0, 6.0)])
    put(settings, ACME, "cam-blue", [("blue car", 2.0, 3.0)])
    put(settings, BRAVO, "cam-bravo", [("red car", 7.0, 9.0)])
    for tenant in (ACME, BRAVO):  # the same video id and later analysis id, the same words
        put(settings, tenant, "cam-both", [("red car", 1.0, 2.0)])
        put_with_thumbnail(settings, tenant, "cam-both", "yellow kite", LATER)
    index = tmp_path_factory.mktemp("search-index") / "index.sqlite"
    update = {"api_keys_file": keys_path, "search_index_path": index, "tenant": None}
    return settings.model_copy(update=update), (acme, bravo)


@pytest.fixture(scope="module")
def api(
    search_settings: tuple[Settings, tuple[str, str]],
) -> Iterator[tuple[httpx.Client, Settings, dict[str, str]]]:
    settings, (acme, bravo) = search_settings
    app = create_app(settings)
    base_url, stop = serve_in_thread(app)
    try:
        assert app.state.search.indexer.ready.wait(60.0), app.state.search.indexer.last_error
        with httpx.Client(base_url=base_url, timeout=15.0) as client:
            yield client, settings, {ACME: acme, BRAVO: bravo}
    finally:
        stop()


def search(client: httpx.Client, key: str, **params: object) -> httpx.Response:
    return client.get("/search", params=params, headers={"Authorization": f"Bearer {key}"})


def test_each_tenant_finds_only_its_own_moments(
    api: tuple[httpx.Client, Settings, dict[str, str]],
) -> None:
    client, _, keys = api
    body = search(client, keys[ACME], q="red car").json()
    assert {(r["video_id"], r["label"]) for r in body["results"]} == {
        ("cam-red", "red car"),
        ("cam-both", "red car"),
    }
    assert body["index"]["ready"] is True
    cars = search(client, keys[ACME], q="car", group="video").json()["groups"]
    assert {g["video_id"] for g in cars} == {"cam-red", "cam-blue", "cam-both"}
    bravo = search(client, keys[BRAVO], q="red car").json()["results"]
    assert {r["video_id"] for r in bravo} == {"cam-bravo", "cam-both"}
    # Another tenant's id is as unknown as an id nobody has.
    for vid in ("cam-bravo", "no-such-video"):
        missing = search(client, keys[ACME], q="car", video=vid)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "video_not_found"


def test_a_later_analysis_is_found_as_its_tenants_own(
    api: tuple[httpx.Client, Settings, dict[str, str]],
) -> None:
    """Synced at start: both tenants' cam-both has the later analysis LATER with the same words;
    each key finds only its own event, named by analysis, with a thumbnail link that serves
    that tenant's picture."""
    client, _, keys = api
    for tenant in (ACME, BRAVO):
        [hit] = search(client, keys[tenant], q="yellow kite").json()["results"]
        assert (hit["video_id"], hit["analysis"], hit["event_id"]) == ("cam-both", LATER, "ev0")
        base = f"/videos/cam-both/analyses/{LATER}/events/ev0"
        assert (hit["thumbnail_url"], hit["clip_url"]) == (f"{base}/thumbnail", f"{base}/clip")
        got = client.get(hit["thumbnail_url"], headers={"Authorization": f"Bearer {keys[tenant]}"})
        assert got.status_code == 200 and got.content == picture(tenant)
        first = search(client, keys[tenant], q="car", video="cam-both", analysis="default")
        assert [(r["analysis"], r["label"]) for r in first.json()["results"]] == [
            ("default", "red car")
        ]
        assert search(client, keys[tenant], q="car", analysis=LATER).json()["results"] == []


@pytest.mark.parametrize(
    ("q", "status", "code"),
    [
        ("", 400, "invalid_query"),
        ('"*" ( ) : ^ - +', 400, "invalid_query"),
        ("x" * 600, 400, "query_too_long"),
        ("x" * 10_240, 414, "uri_too_long"),
    ],
    ids=["empty", "only-syntax", "600-chars", "10kb"],
)
def test_bad_queries_are_clear_errors(
    api: tuple[httpx.Client, Settings, dict[str, str]], q: str, status: int, code: str
) -> None:
    client, _, keys = api
    response = search(client, keys[ACME], q=q)
    assert response.status_code == status and response.json()["error"]["code"] == code


def test_operators_and_quotes_are_words(api: tuple[httpx.Client, Settings, dict[str, str]]) -> None:
    client, _, keys = api
    for q in ('red" OR "person', "red AND NOT car", "car*", "label:red", "NEAR(red car)"):
        response = search(client, keys[ACME], q=q)
        assert response.status_code == 200, (q, response.text)
        own = ("cam-red", "cam-blue", "cam-both")  # acme's videos
        assert all(r["video_id"] in own for r in response.json()["results"])


def test_a_new_result_is_searchable_within_seconds(
    api: tuple[httpx.Client, Settings, dict[str, str]],
) -> None:
    client, settings, keys = api
    vid = unique_id("cam-new")
    put(settings, ACME, vid, [("green tractor", 3.0, 8.0)])
    result = decode_result(
        {
            "schema": "vidloc.result.v1",
            "event_id": unique_id("search-test"),
            "video_id": vid,
            "job_id": f"job-{vid}",
            "status": "succeeded",
            "tenant": ACME,
            "source": {"bucket": settings.video_bucket, "key": f"tenants/{ACME}/uploads/{vid}.mp4"},
            "timeline": {"bucket": settings.timeline_bucket, "key": names.timeline_key(vid, ACME)},
            "summary": {"events": 1, "duration_s": 12.0},
            "created_at": now(),
        }
    )
    with EventPublisher(settings) as publisher:
        publisher.publish(names.TOPIC_RESULTS, vid, encode(result))
    started = time.monotonic()
    while time.monotonic() - started < 30:
        found = search(client, keys[ACME], q="tractor").json()["results"]
        if found:
            break
        time.sleep(0.1)
    assert [r["video_id"] for r in found] == [vid]
    assert search(client, keys[BRAVO], q="tractor").json()["results"] == []


def test_a_later_analysis_result_is_searchable_for_its_tenant_only(
    api: tuple[httpx.Client, Settings, dict[str, str]],
) -> None:
    """Two tenants' results for the same video id and analysis id, each with its own words,
    through the real video.results: each is found by its tenant only."""
    client, settings, keys = api
    vid, analysis = unique_id("cam-ask"), derive_analysis_id(unique_id("search-ask"))
    words = {ACME: "orange balloon", BRAVO: "purple balloon"}
    with EventPublisher(settings) as publisher:
        for tenant, label in words.items():
            key = put(settings, tenant, vid, [(label, 1.0, 3.0)], analysis)
            result = decode_result(
                {
                    "schema": "vidloc.result.v1",
                    "event_id": unique_id("search-test"),
                    "video_id": vid,
                    "job_id": f"job-{vid}",
                    "analysis_id": analysis,
                    "status": "succeeded",
                    "tenant": tenant,
                    "source": {
                        "bucket": settings.video_bucket,
                        "key": f"tenants/{tenant}/uploads/{vid}.mp4",
                    },
                    "timeline": {"bucket": settings.timeline_bucket, "key": key},
                    "summary": {"events": 1, "duration_s": 12.0},
                    "created_at": now(),
                }
            )
            publisher.publish(names.TOPIC_RESULTS, vid, encode(result))
    started = time.monotonic()
    found: dict[str, list[dict[str, object]]] = {}
    while time.monotonic() - started < 30 and len(found) < 2:
        for tenant in words:
            hits = search(client, keys[tenant], q="balloon").json()["results"]
            if hits:
                found[tenant] = hits
        time.sleep(0.1)
    for tenant, label in words.items():
        assert [(r["video_id"], r["analysis"], r["label"]) for r in found[tenant]] == [
            (vid, analysis, label)
        ]


def test_the_cli_searches_a_tenants_timelines(
    search_settings: tuple[Settings, tuple[str, str]], tmp_path: Path
) -> None:
    settings, _ = search_settings
    env = {
        **os.environ,
        "VIDLOC_VIDEO_BUCKET": settings.video_bucket,
        "VIDLOC_TIMELINE_BUCKET": settings.timeline_bucket,
        "VIDLOC_SEARCH_INDEX_PATH": str(tmp_path / "cli-index.sqlite"),
        "VIDLOC_TENANT": ACME,
    }
    env.pop("VIDLOC_API_KEYS_FILE", None)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vidloc", "search", *args],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    done = cli("red car", "--json")
    assert done.returncode == 0, done.stderr
    assert {r["video_id"] for r in json.loads(done.stdout)["results"]} == {"cam-red", "cam-both"}
    bravo = cli("red car", "--json", "--tenant", BRAVO)
    assert {r["video_id"] for r in json.loads(bravo.stdout)["results"]} == {
        "cam-bravo",
        "cam-both",
    }
    table = cli("person")
    assert table.returncode == 0 and "cam-red" in table.stdout
    later = cli("kite", "--json", "--analysis", LATER)
    assert [(r["video_id"], r["analysis"]) for r in json.loads(later.stdout)["results"]] == [
        ("cam-both", LATER)
    ]
    assert json.loads(cli("kite", "--json", "--analysis", "default").stdout)["results"] == []
    for bad in ("", "x" * 10_240, '" ( ) *'):
        refused = cli(bad)
        assert refused.returncode == 2 and "vidloc search:" in refused.stderr
        assert "Traceback" not in refused.stderr
