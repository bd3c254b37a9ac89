"""Search on the real stack: timelines of two tenants in S3, the API's index synced from them and
fed by the real ``video.results``, ``GET /search`` with keys, and ``vidloc search``."""

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

from contracts import decode_result, decode_timeline, encode
from devkit.serve_api import serve_in_thread
from vidloc import names
from vidloc.adapters.kafka import EventPublisher
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.app import create_app
from vidloc.api.keys import KeysFile, add_key, write_keys_file
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

ACME, BRAVO = (f"{name}-{uuid.uuid4().hex[:8]}" for name in ("acme", "bravo"))


def put(
    settings: Settings, tenant: str, video_id: str, events: list[tuple[str, float, float]]
) -> None:
    doc = timeline_for(
        video_id, settings.video_bucket, f"tenants/{tenant}/uploads/{video_id}.mp4", events=events
    )
    ObjectStore(settings).put_bytes(
        settings.timeline_bucket, names.timeline_key(video_id, tenant), encode(decode_timeline(doc))
    )


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
    assert [(r["video_id"], r["label"]) for r in body["results"]] == [("cam-red", "red car")]
    assert body["index"]["ready"] is True
    cars = search(client, keys[ACME], q="car", group="video").json()["groups"]
    assert {g["video_id"] for g in cars} == {"cam-red", "cam-blue"}
    bravo = search(client, keys[BRAVO], q="red car").json()["results"]
    assert [r["video_id"] for r in bravo] == ["cam-bravo"]
    # Another tenant's id is as unknown as an id nobody has.
    for vid in ("cam-bravo", "no-such-video"):
        missing = search(client, keys[ACME], q="car", video=vid)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "video_not_found"


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
        assert all(r["video_id"] in ("cam-red", "cam-blue") for r in response.json()["results"])


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
    assert [r["video_id"] for r in json.loads(done.stdout)["results"]] == ["cam-red"]
    bravo = cli("red car", "--json", "--tenant", BRAVO)
    assert [r["video_id"] for r in json.loads(bravo.stdout)["results"]] == ["cam-bravo"]
    table = cli("person")
    assert table.returncode == 0 and "cam-red" in table.stdout
    for bad in ("", "x" * 10_240, '" ( ) *'):
        refused = cli(bad)
        assert refused.returncode == 2 and "vidloc search:" in refused.stderr
        assert "Traceback" not in refused.stderr
