"""Cancelling a running video over HTTP and from the Python clients: the route writes the
running job's cancel marker under the key's tenant, refuses what it cannot cancel in the API's
error shape, and another tenant's video answers 404 like an unknown one. An in-memory store
and a hand-fed status book stand in for S3 and Kafka."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_fixtures import WritableStore as Store
from api_fixtures import make_progress, make_result

from devkit.serve_api import serve_in_thread
from producers.cancels import cancel_refusal
from vidloc import names
from vidloc.api.app import create_app
from vidloc.api.keys import KeysFile, add_key, write_keys_file
from vidloc.api.status import StatusBook
from vidloc.client import AsyncClient, Client, Conflict, NotFound
from vidloc.settings import Settings

BUCKET = "timelines"


def _now() -> str:
    return datetime.now(UTC).isoformat()


@pytest.fixture
def store() -> Store:
    store = Store()
    store.put_tenant_timeline("vid-done", None)
    return store


@pytest.fixture
def book() -> StatusBook:
    book = StatusBook()
    book.apply_result(make_result("vid-done"))
    book.apply_result(make_result("vid-bad", "failed"))
    book.apply_progress(make_progress("vid-run", at=_now(), job="job-run"))
    return book


def _serve(settings: Settings, store: Store, book: StatusBook) -> Any:
    app = create_app(settings, store=store, book=book, follow_bus=False, probes={})  # type: ignore[arg-type]
    return serve_in_thread(app)


@pytest.fixture
def base_url(store: Store, book: StatusBook) -> Iterator[str]:
    url, stop = _serve(Settings(), store, book)
    try:
        yield url
    finally:
        stop()


def test_a_running_video_is_cancelled_by_its_job_id(base_url: str, store: Store) -> None:
    answer = httpx.post(f"{base_url}/videos/vid-run/cancel", timeout=10.0)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["video_id"] == "vid-run" and body["job_id"] == "job-run"
    assert body["status"] == "cancelling"
    marker = json.loads(store.objects[(BUCKET, names.cancel_key("vid-run", "job-run"))])
    assert marker["job_id"] == "job-run" and marker["tenant"] is None
    # Asked again: the same cancel, as first asked (the marker is not rewritten).
    again = httpx.post(f"{base_url}/videos/vid-run/cancel", timeout=10.0).json()
    assert again["requested_at"] == body["requested_at"]


@pytest.mark.parametrize(
    ("video_id", "status", "code"),
    [
        pytest.param("vid-done", 409, "video_not_running", id="succeeded"),
        pytest.param("vid-bad", 409, "video_not_running", id="failed"),
        pytest.param("vid-nobody", 404, "video_not_found", id="unknown"),
    ],
)
def test_what_cannot_be_cancelled_is_refused_and_nothing_is_written(
    base_url: str, store: Store, video_id: str, status: int, code: str
) -> None:
    before = dict(store.objects)
    answer = httpx.post(f"{base_url}/videos/{video_id}/cancel", timeout=10.0)
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code
    assert store.objects == before


def test_a_stalled_job_can_be_cancelled() -> None:
    assert cancel_refusal("v", "stalled", "j") is None
    assert cancel_refusal("v", "running", None) is not None  # no job to name: nothing to do


@pytest.fixture
def keyed(store: Store, book: StatusBook, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    keys, _, acme = add_key(KeysFile(), "acme", ("read", "submit"))
    keys, _, acme_read = add_key(keys, "acme", ("read",))
    keys, _, bravo = add_key(keys, "bravo", ("read", "submit"))
    write_keys_file(tmp_path / "keys.json", keys)
    running = make_progress("shared", at=_now(), job="job-acme")
    book.apply_progress(running.model_copy(update={"tenant": "acme"}))
    settings = Settings(api_keys_file=tmp_path / "keys.json", api_rate_burst=1000)
    url, stop = _serve(settings, store, book)
    try:
        yield url, {"acme": acme, "acme_read": acme_read, "bravo": bravo}
    finally:
        stop()


def test_only_the_keys_tenant_cancels_and_only_with_submit(
    keyed: tuple[str, dict[str, str]], store: Store
) -> None:
    base_url, keys = keyed

    def cancel(who: str) -> httpx.Response:
        auth = {"Authorization": f"Bearer {keys[who]}"}
        return httpx.post(f"{base_url}/videos/shared/cancel", headers=auth, timeout=10.0)

    # Another tenant's running video answers exactly like an unknown one.
    other = cancel("bravo")
    unknown = httpx.post(
        f"{base_url}/videos/nobody/cancel",
        headers={"Authorization": f"Bearer {keys['bravo']}"},
        timeout=10.0,
    )
    assert other.status_code == unknown.status_code == 404
    assert other.json()["error"]["code"] == unknown.json()["error"]["code"] == "video_not_found"
    assert cancel("acme_read").status_code == 403
    assert not [k for _, k in store.objects if "/cancels/" in k or k.startswith("cancels/")]
    assert cancel("acme").status_code == 202
    assert (BUCKET, names.cancel_key("shared", "job-acme", "acme")) in store.objects


def test_the_clients_cancel_and_raise_the_apis_codes(base_url: str, store: Store) -> None:
    with Client(base_url) as vidloc:
        asked = vidloc.job("vid-run").cancel()
        assert asked.job_id == "job-run" and asked.status == "cancelling"
        with pytest.raises(Conflict) as finished:
            vidloc.cancel("vid-done")
        assert finished.value.code == "video_not_running"
        with pytest.raises(NotFound):
            vidloc.cancel("vid-nobody")

    async def run() -> None:
        async with AsyncClient(base_url) as vidloc:
            asked = await vidloc.cancel("vid-run")
            assert asked.job_id == "job-run"
            with pytest.raises(Conflict):
                await vidloc.cancel("vid-bad")

    asyncio.run(run())
    assert (BUCKET, names.cancel_key("vid-run", "job-run")) in store.objects
