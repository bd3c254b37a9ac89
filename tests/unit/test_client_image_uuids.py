"""The model client and vLLM's image uuid (sent, or dropped once a server refuses it) and the
prefix-cache hits a server reports (usage.prompt_tokens_details.cached_tokens)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from vidloc.errors import ModelRequestRejected
from vidloc.metrics import Metrics
from vidloc.settings import Settings
from workers.model.client import ImageUuids, ModelClient, model_client_from_settings

BASE = "http://model.test/v1"
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "be precise"},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "<1.0 seconds>"},
            {**IMAGE, "uuid": "v-1@abc:1.000000:0123"},
            {"type": "text", "text": "what happens?"},
        ],
    },
]
REFUSAL = {
    "error": {
        "message": "Unknown parameter: 'messages[1].content[1].uuid'.",
        "type": "invalid_request_error",
        "code": "unknown_parameter",
    }
}
SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}


def ok(usage: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "choices": [
                {"message": {"role": "assistant", "content": "{}"}, "finish_reason": "stop"}
            ],
            "usage": usage or {"prompt_tokens": 100, "completion_tokens": 2},
        },
    )


class Server:
    """Answers from ``respond(body)``; records every body it was sent."""

    def __init__(self, respond: Any) -> None:
        self.respond = respond
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        response: httpx.Response = self.respond(body)
        return response

    def uuids(self, i: int) -> list[str]:
        return [p["uuid"] for p in self.bodies[i]["messages"][1]["content"] if "uuid" in p]


def refuses_uuids(body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(400, json=REFUSAL) if "uuid" in json.dumps(body) else ok()


def client(
    server: Server, mode: ImageUuids = "auto", metrics: Metrics | None = None
) -> ModelClient:
    http = httpx.Client(transport=httpx.MockTransport(server))
    return ModelClient(
        BASE, "m", None, {}, http, sleep=lambda s: None, image_uuids=mode, metrics=metrics
    )


def test_auto_sends_uuids_to_a_server_that_takes_them() -> None:
    server = Server(lambda body: ok())
    client(server).complete(MESSAGES)
    assert server.uuids(0) == ["v-1@abc:1.000000:0123"]


def test_auto_resends_without_uuids_after_a_400_naming_them_and_remembers() -> None:
    server = Server(refuses_uuids)
    model = client(server)
    reply = model.complete(MESSAGES)
    assert reply.usage.requests == 1
    assert [server.uuids(i) for i in range(2)] == [["v-1@abc:1.000000:0123"], []]
    # The images themselves still went: only the field is gone.
    assert server.bodies[1]["messages"][1]["content"][1] == IMAGE
    model.complete(MESSAGES)
    assert len(server.bodies) == 3 and server.uuids(2) == []  # no wasted 400 the second time
    assert MESSAGES[1]["content"][1]["uuid"]  # the caller's messages are left alone


def test_a_400_about_something_else_keeps_the_uuids() -> None:
    def refuses_schema(body: dict[str, Any]) -> httpx.Response:
        if body.get("response_format", {}).get("type") == "json_schema":
            return httpx.Response(400, json={"error": {"message": "json_schema not supported"}})
        return ok()

    server = Server(refuses_schema)
    client(server).complete(MESSAGES, SCHEMA_FORMAT)
    assert [server.uuids(i) for i in range(2)] == [["v-1@abc:1.000000:0123"]] * 2
    assert server.bodies[1]["response_format"] == {"type": "json_object"}


def test_uuids_and_the_format_fallback_combine() -> None:
    def strict(body: dict[str, Any]) -> httpx.Response:
        if body.get("response_format", {}).get("type") == "json_schema":
            return httpx.Response(400, json={"error": {"message": "json_schema not supported"}})
        return refuses_uuids(body)

    server = Server(strict)
    reply = client(server).complete(MESSAGES, SCHEMA_FORMAT)
    assert reply.content == "{}"
    assert server.uuids(len(server.bodies) - 1) == []


def test_on_never_drops_them() -> None:
    server = Server(refuses_uuids)
    with pytest.raises(ModelRequestRejected, match="uuid"):
        client(server, "on").complete(MESSAGES)
    assert len(server.bodies) == 1


def test_off_never_sends_them() -> None:
    server = Server(lambda body: ok())
    client(server, "off").complete(MESSAGES)
    assert server.uuids(0) == []


def test_the_setting_reaches_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDLOC_VLM_IMAGE_UUIDS", "off")
    server = Server(lambda body: ok())
    http = httpx.Client(transport=httpx.MockTransport(server))
    model_client_from_settings(Settings(vlm_base_url=BASE), http).complete(MESSAGES)
    assert server.uuids(0) == []


@pytest.mark.parametrize(
    ("usage", "cached"),
    [
        pytest.param(
            {"prompt_tokens": 900, "prompt_tokens_details": {"cached_tokens": 864}}, 864, id="vllm"
        ),
        pytest.param({"prompt_tokens": 900}, 0, id="not-reported"),
        pytest.param({"prompt_tokens": 900, "prompt_tokens_details": None}, 0, id="null"),
        pytest.param(
            {"prompt_tokens": 900, "prompt_tokens_details": {"cached_tokens": None}}, 0, id="none"
        ),
        pytest.param(
            {"prompt_tokens": 900, "prompt_tokens_details": {"cached_tokens": "x"}}, 0, id="junk"
        ),
    ],
)
def test_cached_tokens_are_read_and_counted(usage: dict[str, Any], cached: int) -> None:
    metrics = Metrics()
    reply = client(Server(lambda body: ok(usage)), metrics=metrics).complete(MESSAGES)
    assert (reply.usage.prompt_tokens, reply.usage.cached_tokens) == (900, cached)
    counted = metrics.registry.get_sample_value("vidloc_cached_prompt_tokens_total")
    assert (counted or 0) == cached
