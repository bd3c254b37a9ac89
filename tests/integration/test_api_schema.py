"""Schemathesis against the API's own OpenAPI spec, served by a live uvicorn on the real stack.

Every documented operation gets generated inputs (valid and invalid); the API must never answer
5xx (503 is allowed only from /readyz, and only if a dependency is down), and every answer must
match the spec: status codes, content types and response bodies, errors included.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from apistack import isolated_settings, put_timeline, timeline_for, unique_id
from hypothesis import HealthCheck, settings

from devkit.serve_api import serve_in_thread
from vidloc.api.app import create_app
from vidloc.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api_url(stack: Settings) -> Iterator[str]:
    isolated = isolated_settings(stack, "schema")
    events = [("red circle", 1.0, 3.0), ("green square", 2.0, 4.0)]
    # "0" is the first id Hypothesis tries for the id pattern, so generated requests reach
    # stored data (200s validated against the spec) as well as the 404 paths.
    for vid in ("0", unique_id("schema")):
        put_timeline(isolated, timeline_for(vid, isolated.video_bucket, "up/v.mp4", events=events))
    base_url, stop = serve_in_thread(create_app(isolated, follow_bus=False))
    yield base_url
    stop()


# The spec comes from the app object itself (no I/O to build it). Schemathesis' lazy
# ``from_fixture`` loader breaks on pytest 9 (it writes ``node._nodeid``), so the schema is
# loaded at import and the live server's URL is passed per call instead.
schema = schemathesis.openapi.from_dict(create_app(Settings(), follow_bus=False).openapi())


HAPPY_PATHS: set[tuple[str, int]] = set()


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
def test_api_conforms_to_its_spec(case: schemathesis.Case, api_url: str) -> None:
    query = case.query or {}
    start, end = _number(query.get("start_s")), _number(query.get("end_s"))
    if start is not None and end is not None and end < start:
        # The one rule OpenAPI cannot state (end_s >= start_s): a reversed window is a 422 in
        # the error shape, which schemathesis would count as "valid data rejected".
        response = case.call(base_url=api_url)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_request"
        return
    response = case.call_and_validate(base_url=api_url)
    if case.path_parameters and case.path_parameters.get("video_id") == "0":
        HAPPY_PATHS.add((case.path, response.status_code))
    assert response.status_code < 500 or (response.status_code == 503 and case.path == "/readyz"), (
        response.text
    )


def test_generated_requests_reached_stored_data() -> None:
    """Guards the trick above: the conformance run saw real 200s, not only 404s."""
    ok = {path for path, status in HAPPY_PATHS if status == 200}
    assert "/videos/{video_id}/timeline" in ok and "/videos/{video_id}/events" in ok, HAPPY_PATHS
