"""Schemathesis against the API's own OpenAPI spec, served by a live uvicorn on the real stack.

Every documented operation gets generated inputs (valid and invalid); the API must never answer
5xx (503 is allowed only from /readyz, and only if a dependency is down), and every answer must
match the spec: status codes, content types and response bodies, errors included.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import schemathesis
from apistack import isolated_settings, timeline_for, unique_id
from hypothesis import HealthCheck, settings

from contracts import decode_timeline, encode
from devkit.serve_api import serve_in_thread
from vidloc import names
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.app import create_app
from vidloc.api.keys import KeysFile, add_key, write_keys_file
from vidloc.settings import Settings

pytestmark = pytest.mark.integration


TENANT = "schema"
MAX_URL_BYTES = Settings().api_max_url_bytes


@pytest.fixture(scope="module")
def api(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, an admin key of tenant "schema"): the run goes through authentication."""
    keys_path = tmp_path_factory.mktemp("schema-keys") / "keys.json"
    keys, _, key = add_key(KeysFile(), TENANT, ("admin",))
    write_keys_file(keys_path, keys)
    # A rate limit the run cannot reach: 429s are documented but would hide the 200 paths.
    isolated = isolated_settings(stack, "schema").model_copy(
        update={"api_keys_file": keys_path, "api_rate_per_s": 1e6, "api_rate_burst": 1_000_000}
    )
    events = [("red circle", 1.0, 3.0), ("green square", 2.0, 4.0)]
    store = ObjectStore(isolated)
    # "0" is the first id Hypothesis tries for the id pattern, so generated requests reach
    # stored data (200s validated against the spec) as well as the 404 paths.
    for vid in ("0", unique_id("schema")):
        doc = timeline_for(vid, isolated.video_bucket, f"tenants/{TENANT}/up/v.mp4", events=events)
        key_ = names.timeline_key(vid, TENANT)
        store.put_bytes(isolated.timeline_bucket, key_, encode(decode_timeline(doc)))
    base_url, stop = serve_in_thread(create_app(isolated, follow_bus=False))
    yield base_url, key
    stop()


# The spec comes from the app object itself (no I/O to build it). Schemathesis' lazy
# ``from_fixture`` loader breaks on pytest 9 (it writes ``node._nodeid``), so the schema is
# loaded at import and the live server's URL is passed per call instead.
schema = schemathesis.openapi.from_dict(create_app(Settings(), follow_bus=False).openapi())


HAPPY_PATHS: set[tuple[str, int]] = set()
SUBMIT_PATHS = {
    "/videos",
    "/webhooks",
    "/videos/{video_id}/upload/complete",
    "/videos/{video_id}/analyses",
}
SUBMIT_CODES = {
    "invalid_request",
    "empty_question",
    "prompt_too_long",
    "idempotency_key_reused",
    "not_a_video_name",
    "key_not_allowed",
    "target_not_allowed",
    "video_too_large",
    "request_too_large",
}


def _number(value: object) -> float | None:
    """A query value as the API would read it (schemathesis sends strings)."""
    try:
        return float(value) if isinstance(value, str | int | float) else None
    except ValueError:
        return None


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_spec(case: schemathesis.Case, api: tuple[str, str]) -> None:
    api_url, key = api
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}"}
    query = case.query or {}
    start, end = _number(query.get("start_s")), _number(query.get("end_s"))
    response = case.call(base_url=api_url)
    target = urlsplit(str(response.request.url))
    if len(target.path) + len(target.query) > MAX_URL_BYTES:
        # Enough long labels make a URL the API refuses before reading it (documented 414);
        # schemathesis' negative checks do not expect 414 for "invalid data".
        assert response.status_code == 414, response.text
        assert response.json()["error"]["code"] == "uri_too_long"
        return
    if start is not None and end is not None and end < start:
        # The one rule OpenAPI cannot state (end_s >= start_s): a reversed window is a 422 in
        # the error shape, which schemathesis would count as "valid data rejected".
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_request"
        return
    if case.path == "/search" and response.status_code == 400:
        # What OpenAPI cannot state either: q must hold a word (letters or digits, at most
        # 32), and a cursor belongs to the query that gave it (docs/search.md).
        codes = {"invalid_query", "query_too_long", "invalid_cursor"}
        assert response.json()["error"]["code"] in codes, response.text
        return
    if case.method == "POST" and response.status_code in (413, 422) and case.path in SUBMIT_PATHS:
        # Rules OpenAPI does not state here: a key, or a file name and a size; a video file
        # name; a key the tenant may name; a target the deployment allows; the size limits;
        # an analysis asks a prompt or labels, with a prompt of at most 8000 characters.
        assert response.json()["error"]["code"] in SUBMIT_CODES, response.text
        return
    case.validate_response(response)
    if case.path_parameters and case.path_parameters.get("video_id") == "0":
        HAPPY_PATHS.add((case.path, response.status_code))
    assert response.status_code < 500 or (response.status_code == 503 and case.path == "/readyz"), (
        response.text
    )


def test_generated_requests_reached_stored_data() -> None:
    """Guards the trick above: the conformance run saw real 200s, not only 404s."""
    ok = {path for path, status in HAPPY_PATHS if status == 200}
    assert "/videos/{video_id}/timeline" in ok and "/videos/{video_id}/events" in ok, HAPPY_PATHS
