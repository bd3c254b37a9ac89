from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from vidloc.errors import (
    ModelAnswerInvalid,
    ModelAuthFailed,
    ModelImageLimit,
    ModelRateLimited,
    ModelRequestRejected,
    ModelUnavailable,
)
from workers.model.client import ModelClient

API_KEY = "sk-test-secret-1234567890"
BASE = "http://model.test/v1"
MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "hi"}]
SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}

Handler = Callable[[httpx.Request], httpx.Response]


def ok(content: str = '{"events": []}', finish: str = "stop") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "served-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish,
                }
            ],
            "usage": {"prompt_tokens": 120, "completion_tokens": 7, "total_tokens": 127},
        },
    )


class Script:
    """A transport handler answering from a list, recording every request."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.responses.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


def make_client(
    handler: Handler, *, params: dict[str, Any] | None = None, max_retries: int = 3
) -> tuple[ModelClient, list[float]]:
    delays: list[float] = []
    client = ModelClient(
        BASE,
        "qwen/qwen3-vl-8b-instruct",
        API_KEY,
        params or {},
        httpx.Client(transport=httpx.MockTransport(handler)),
        max_retries=max_retries,
        max_backoff_s=4.0,
        sleep=delays.append,
    )
    return client, delays


def test_success_parses_envelope_and_sends_auth() -> None:
    script = Script(ok('{"events": [1]}', "length"))
    client, delays = make_client(script)
    reply = client.complete(MESSAGES, None)
    assert reply.content == '{"events": [1]}'
    assert reply.finish_reason == "length"
    assert reply.model == "served-model"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.requests) == (
        120,
        7,
        1,
    )
    request = script.requests[0]
    assert str(request.url) == f"{BASE}/chat/completions"
    assert request.method == "POST"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert script.bodies()[0]["messages"] == MESSAGES
    assert delays == []


def test_no_key_sends_no_authorization() -> None:
    script = Script(ok())
    client = ModelClient(BASE, "m", None, {}, httpx.Client(transport=httpx.MockTransport(script)))
    client.complete(MESSAGES, None)
    assert "Authorization" not in script.requests[0].headers


def test_content_parts_are_joined() -> None:
    response = ok()
    payload = json.loads(response.content)
    payload["choices"][0]["message"]["content"] = [
        {"type": "text", "text": '{"events"'},
        {"type": "text", "text": ": []}"},
    ]
    client, _ = make_client(Script(httpx.Response(200, json=payload)))
    assert client.complete(MESSAGES, None).content == '{"events": []}'


def test_429_honours_retry_after_then_succeeds() -> None:
    script = Script(
        httpx.Response(429, headers={"Retry-After": "3"}, json={"error": {"message": "slow"}}),
        httpx.Response(429, headers={"Retry-After": "2"}, json={"error": {"message": "slow"}}),
        ok(),
    )
    client, delays = make_client(script)
    client.complete(MESSAGES, None)
    assert len(script.requests) == 3
    assert len(delays) == 2
    assert delays[0] >= 3.0
    assert delays[1] >= 2.0


def test_429_exhausted_raises_rate_limited_with_retry_after() -> None:
    script = Script(*[httpx.Response(429, headers={"Retry-After": "1"}) for _ in range(3)])
    client, delays = make_client(script, max_retries=2)
    with pytest.raises(ModelRateLimited) as info:
        client.complete(MESSAGES, None)
    assert info.value.retry_after_s == 1.0
    assert isinstance(info.value.__cause__, httpx.HTTPStatusError)
    assert len(delays) == 2


def test_retry_after_beyond_limit_fails_fast() -> None:
    script = Script(httpx.Response(429, headers={"Retry-After": "3600"}), ok())
    client, delays = make_client(script)
    with pytest.raises(ModelRateLimited):
        client.complete(MESSAGES, None)
    assert delays == []
    assert len(script.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 409])
def test_retryable_status_then_success(status: int) -> None:
    script = Script(httpx.Response(status, text="upstream sad"), ok())
    client, delays = make_client(script)
    assert client.complete(MESSAGES, None).content == '{"events": []}'
    assert len(delays) == 1
    assert 0.0 <= delays[0] <= 4.0


def test_5xx_exhausted_raises_unavailable() -> None:
    script = Script(*[httpx.Response(503) for _ in range(4)])
    client, delays = make_client(script, max_retries=3)
    with pytest.raises(ModelUnavailable, match="HTTP 503"):
        client.complete(MESSAGES, None)
    assert len(script.requests) == 4
    assert len(delays) == 3


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ConnectError("connection refused"),
        httpx.RemoteProtocolError("peer closed connection"),
        httpx.ReadError("reset"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transport_errors_are_retried(exc: Exception) -> None:
    script = Script(exc, ok())
    client, delays = make_client(script)
    client.complete(MESSAGES, None)
    assert len(script.requests) == 2
    assert len(delays) == 1


def test_transport_errors_exhausted_become_unavailable_from_httpx() -> None:
    script = Script(*[httpx.ConnectError("refused") for _ in range(2)])
    client, _ = make_client(script, max_retries=1)
    with pytest.raises(ModelUnavailable) as info:
        client.complete(MESSAGES, None)
    assert isinstance(info.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize("status", [400, 413, 422])
def test_bad_request_is_not_retried(status: int) -> None:
    script = Script(httpx.Response(status, json={"error": {"message": "too many image tokens"}}))
    client, delays = make_client(script)
    with pytest.raises(ModelRequestRejected, match="too many image tokens") as info:
        client.complete(MESSAGES, None)
    assert info.value.status_code == status
    assert len(script.requests) == 1
    assert delays == []


@pytest.mark.parametrize("status", [401, 403, 404])
def test_auth_and_not_found_are_config_errors(status: int) -> None:
    client, delays = make_client(Script(httpx.Response(status, text="nope")))
    with pytest.raises(ModelAuthFailed):
        client.complete(MESSAGES, None)
    assert delays == []


def test_malformed_envelope_is_retried_then_invalid() -> None:
    script = Script(
        httpx.Response(200, text="<html>gateway</html>"), httpx.Response(200, json={"choices": []})
    )
    client, delays = make_client(script, max_retries=1)
    with pytest.raises(ModelAnswerInvalid):
        client.complete(MESSAGES, None)
    assert len(delays) == 1


def test_json_schema_refusal_falls_back_to_json_object_once_and_remembers() -> None:
    refusal = {
        "error": {
            "message": "response_format type json_schema is not supported",
            "type": "invalid_request_error",
        }
    }
    script = Script(httpx.Response(400, json=refusal), ok(), ok())
    client, _ = make_client(script)
    client.complete(MESSAGES, SCHEMA_FORMAT)
    client.complete(MESSAGES, SCHEMA_FORMAT)
    formats = [b["response_format"] for b in script.bodies()]
    assert formats == [SCHEMA_FORMAT, {"type": "json_object"}, {"type": "json_object"}]


def test_every_format_refused_is_not_looped_and_not_remembered() -> None:
    refusal = {"error": {"message": "unsupported response_format"}}
    script = Script(*[httpx.Response(400, json=refusal) for _ in range(3)], ok())
    client, _ = make_client(script)
    with pytest.raises(ModelRequestRejected):
        client.complete(MESSAGES, SCHEMA_FORMAT)
    formats = [b.get("response_format") for b in script.bodies()]
    assert formats == [SCHEMA_FORMAT, {"type": "json_object"}, None]
    # Nothing got through, so the 400 may have been about something else: the next request
    # still asks for the schema.
    client.complete(MESSAGES, SCHEMA_FORMAT)
    assert script.bodies()[-1]["response_format"] == SCHEMA_FORMAT


@pytest.mark.parametrize(
    "refusal",
    [
        {"error": {"message": "Invalid request", "type": "BadRequestError"}},
        {"object": "error", "message": "grammar compilation failed", "code": 400},
        "Bad Request",
    ],
    ids=["unnamed", "vllm-shape", "plain-text"],
)
def test_any_400_to_a_format_falls_back_through_every_step(refusal: Any) -> None:
    refused = (
        httpx.Response(400, text=refusal)
        if isinstance(refusal, str)
        else httpx.Response(400, json=refusal)
    )
    script = Script(refused, httpx.Response(400, json={"error": {"message": "no"}}), ok(), ok())
    client, delays = make_client(script)
    reply = client.complete(MESSAGES, SCHEMA_FORMAT)
    assert reply.content == '{"events": []}' and delays == []
    client.complete(MESSAGES, SCHEMA_FORMAT)  # remembered: the plain prompt straight away
    formats = [b.get("response_format") for b in script.bodies()]
    assert formats == [SCHEMA_FORMAT, {"type": "json_object"}, None, None]


def test_a_json_object_request_falls_back_to_the_plain_prompt() -> None:
    script = Script(httpx.Response(400, json={"error": {"message": "bad"}}), ok())
    client, _ = make_client(script)
    client.complete(MESSAGES, {"type": "json_object"})
    assert [b.get("response_format") for b in script.bodies()] == [{"type": "json_object"}, None]


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"message": "At most 64 image(s) may be provided in one prompt."}},
        {"object": "error", "message": "At most 8 image(s) may be provided in one prompt."},
    ],
)
def test_an_image_limit_is_its_own_error_and_never_a_format_fallback(
    body: dict[str, Any],
) -> None:
    script = Script(httpx.Response(400, json=body))
    client, delays = make_client(script)
    with pytest.raises(ModelImageLimit) as info:
        client.complete(MESSAGES, SCHEMA_FORMAT)
    assert info.value.limit in (64, 8) and info.value.status_code == 400
    assert isinstance(info.value, ModelRequestRejected)  # a 400 all the same
    assert len(script.requests) == 1 and delays == []


ALL_PARAMS: dict[str, Any] = {
    "temperature": 0.7,
    "top_p": 0.8,
    "top_k": 20,
    "frequency_penalty": 0.1,
    "presence_penalty": 1.5,
    "repetition_penalty": 1.05,
    "min_p": 0.01,
    "top_a": 0.2,
    "seed": 42,
    "max_tokens": 1234,
    "logit_bias": {"100": -5},
    "logprobs": True,
    "top_logprobs": 3,
    "response_format": {"type": "json_object"},
    "structured_outputs": {"json": {"type": "object"}},
    "stop": ["</answer>"],
    "verbosity": "low",
    "some_future_knob": {"nested": [1, 2]},
}


def test_every_param_is_passed_through_and_wins() -> None:
    script = Script(ok())
    client, _ = make_client(script, params=ALL_PARAMS)
    client.complete(MESSAGES, SCHEMA_FORMAT)
    body = script.bodies()[0]
    for key, value in ALL_PARAMS.items():
        assert body[key] == value, key
    assert body["model"] == "qwen/qwen3-vl-8b-instruct"
    assert body["stream"] is False


def test_defaults_apply_without_params_and_params_cannot_replace_messages() -> None:
    script = Script(ok())
    client, _ = make_client(script, params={"messages": [], "stream": True})
    client.complete(MESSAGES, SCHEMA_FORMAT)
    body = script.bodies()[0]
    assert body["messages"] == MESSAGES
    assert body["stream"] is False
    assert body["response_format"] == SCHEMA_FORMAT
    # Qwen's recommended generation parameters for the Qwen3-VL Instruct models.
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.7, 0.8, 20)
    assert body["presence_penalty"] == 1.5
    assert body["max_tokens"] == 4096


def test_api_key_never_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    echo = {"error": {"message": f"Incorrect API key provided: {API_KEY}"}}
    script = Script(
        httpx.Response(503, json=echo),
        httpx.ConnectError(f"failed with {API_KEY}"),
        httpx.Response(401, json=echo),
    )
    client, _ = make_client(script)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ModelAuthFailed) as info:
        client.complete(MESSAGES, None)
    assert "Incorrect API key" in str(info.value)
    assert API_KEY not in str(info.value)
    assert API_KEY not in repr(info.value.args)
    assert all(API_KEY not in r.getMessage() for r in caplog.records)
    ours = [r.getMessage() for r in caplog.records if r.name == "workers.model.client"]
    assert len(ours) == 2  # one line per retry
    assert "retry 1/3" in ours[0]
    assert "retry 2/3" in ours[1]
