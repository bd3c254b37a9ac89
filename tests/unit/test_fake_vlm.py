"""The fake model server over a real socket, driven by the real client and localizer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from devkit.fake_vlm.__main__ import parse_args
from devkit.fake_vlm.server import FakeConfig, serve_in_thread
from devkit.fake_vlm.styles import ANSWER_STYLES, render_style
from devkit.fake_vlm.vision import Sighting, events_from_sightings, visible_labels
from devkit.synth.palette import (
    BACKGROUNDS,
    COLOUR_TOLERANCE,
    MIN_COVERAGE,
    PALETTE,
    entry_for_label,
)
from vidloc.errors import ModelAuthFailed, ModelRateLimited, ModelUnavailable
from workers.localizers.answer.read import MAX_EVENTS, parse_answer
from workers.localizers.prompt import build_messages, response_format_for_answer
from workers.localizers.vlm import VlmLocalizer
from workers.model.client import ModelClient
from workers.types import Chunk, FrameSample, LocalizeRequest

TIMES = tuple(float(t) for t in range(9))  # 0..8 s
CHUNK = Chunk(index=0, start_s=0.0, end_s=8.0, times=TIMES)
W, H = 128, 96
RED = ("red circle", 3.0, 5.0)
BLUE = ("blue triangle", 6.0, 7.0)


def draw(label: str, image: np.ndarray) -> None:
    colour = entry_for_label(label).rgb
    if label == "red circle":
        cv2.circle(image, (40, 40), 18, colour, -1)
    else:
        pts = np.array([[90, 20], [110, 60], [70, 60]], dtype=np.int32)
        cv2.fillPoly(image, [pts], colour)


def make_frames(*events: tuple[str, float, float]) -> list[FrameSample]:
    frames = []
    for t in TIMES:
        image = np.empty((H, W, 3), dtype=np.uint8)
        image[:, :] = BACKGROUNDS[0]
        for label, start, end in events:
            if start <= t <= end:
                draw(label, image)
        frames.append(FrameSample(t_s=t, image=image))
    return frames


# One client for the whole module: building an httpx.Client (its SSL context) costs ~0.1 s.
HTTP = httpx.Client(timeout=10.0)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    base_url, stop = serve_in_thread()
    yield base_url
    stop()
    HTTP.close()


@pytest.fixture
def base_url(server: str) -> str:
    HTTP.post(server.removesuffix("/v1") + "/_fake/reset").raise_for_status()
    return server


def admin(base_url: str, path: str, payload: Any = None) -> Any:
    url = base_url.removesuffix("/v1") + path
    response = HTTP.post(url, json=payload) if payload is not None else HTTP.get(url)
    response.raise_for_status()
    return response.json()


_OPEN: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def client(
    base_url: str, delays: list[float], timeout: float | None = None, **kw: Any
) -> ModelClient:
    http = HTTP
    if timeout is not None:
        http = httpx.Client(timeout=timeout)
        _OPEN.append(http)  # closed after each test: unclosed sockets are errors under pytest
    return ModelClient(
        base_url,
        "qwen/qwen3-vl-8b-instruct",
        "sk-fake",
        kw.pop("params", {}),
        http,
        max_retries=kw.pop("max_retries", 3),
        max_backoff_s=0.05,
        sleep=delays.append,
    )


def localize(
    base_url: str, frames: list[FrameSample], labels: tuple[str, ...] = (), answer_retries: int = 1
) -> Any:
    localizer = VlmLocalizer(client(base_url, []), answer_retries=answer_retries)
    return localizer.localize(CHUNK, frames, LocalizeRequest(labels=labels, video_duration_s=8.0))


def spans(result: Any) -> list[tuple[str, float, float]]:
    return sorted((e.label, e.start_s, e.end_s) for e in result.events)


# ---- vision (pure) ------------------------------------------------------------------------


def test_vision_sees_only_palette_colours() -> None:
    frames = make_frames(("red circle", 0, 8), ("blue triangle", 0, 8))
    assert visible_labels(frames[0].image) == {"red circle", "blue triangle"}
    assert visible_labels(make_frames()[0].image) == frozenset()


def _labels_by_rule(image: np.ndarray[Any, Any]) -> frozenset[str]:
    """The fake's rule said plainly: every channel within the tolerance, over the coverage."""
    pixels = image.astype(np.int16)
    seen = set()
    for entry in PALETTE:
        close = np.all(np.abs(pixels - np.array(entry.rgb, dtype=np.int16)) <= COLOUR_TOLERANCE, 2)
        if close.sum() >= MIN_COVERAGE * image.shape[0] * image.shape[1]:
            seen.add(entry.label)
    return frozenset(seen)


def test_vision_keeps_the_rule_at_its_edges() -> None:
    rng = np.random.default_rng(7)
    # Patches exactly at the tolerance, one past it, and just under and over the coverage.
    needed = int(np.ceil(MIN_COVERAGE * W * H))
    for entry in PALETTE:
        for offset in (
            COLOUR_TOLERANCE,
            COLOUR_TOLERANCE + 1,
            -COLOUR_TOLERANCE,
            -COLOUR_TOLERANCE - 1,
        ):
            for count in (needed - 1, needed):
                image = np.zeros((H, W, 3), dtype=np.uint8)
                colour = np.clip(np.array(entry.rgb) + offset, 0, 255).astype(np.uint8)
                image.reshape(-1, 3)[:count] = colour
                assert visible_labels(image) == _labels_by_rule(image), (entry.label, offset, count)
    # And noisy frames with palette-like blobs of every size.
    for _ in range(100):
        image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        for entry in PALETTE:
            y, x, h, w = rng.integers(0, H - 8), rng.integers(0, W - 8), *rng.integers(1, 8, 2)
            jitter = rng.integers(-70, 71, 3)
            image[y : y + h, x : x + w] = np.clip(np.array(entry.rgb) + jitter, 0, 255)
        assert visible_labels(image) == _labels_by_rule(image)


def test_events_from_sightings_splits_runs_and_filters() -> None:
    red = frozenset({"red circle"})
    sightings = [
        Sighting(2.0, red),
        Sighting(0.0, red),
        Sighting(1.0, frozenset()),
        Sighting(3.0, red | {"green square"}),
    ]
    events = events_from_sightings(sightings)
    assert [(e["label"], e["start_s"], e["end_s"]) for e in events] == [
        ("red circle", 0.0, 0.0),
        ("red circle", 2.0, 3.0),
        ("green square", 3.0, 3.0),
    ]
    assert events[0]["description"] == "a red circle is visible"
    only = events_from_sightings(sightings, ["Green Square"])
    assert [e["label"] for e in only] == ["green square"]


# ---- protocol -----------------------------------------------------------------------------


def test_sees_red_circle_and_answers_openai_style(base_url: str) -> None:
    messages = build_messages(make_frames(RED), LocalizeRequest(), CHUNK)
    body = {"model": "m", "messages": messages, "response_format": response_format_for_answer()}
    response = HTTP.post(f"{base_url}/chat/completions", json=body)
    assert response.status_code == 200
    payload = response.json()
    assert payload["object"] == "chat.completion"
    assert payload["id"].startswith("chatcmpl-")
    assert payload["model"] == "m"
    choice = payload["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"].startswith('{"events"')
    parsed = parse_answer(
        choice["message"]["content"], "stop", chunk=CHUNK, video_duration_s=8.0, labels=()
    )
    assert [(e.label, e.start_s, e.end_s) for e in parsed.events] == [RED]
    usage = payload["usage"]
    image_tokens = len(TIMES) * (W // 32) * (H // 32)
    assert usage["prompt_tokens"] > image_tokens
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    stats = admin(base_url, "/_fake/stats")
    assert stats["requests"] == 1
    assert stats["images"] == len(TIMES)
    assert stats["frames_seen_times"] == list(TIMES)
    assert stats["by_status"] == {"200": 1}


def test_without_response_format_answer_is_fenced_prose(base_url: str) -> None:
    messages = build_messages(make_frames(RED), LocalizeRequest(), CHUNK)
    body = HTTP.post(f"{base_url}/chat/completions", json={"model": "m", "messages": messages})
    content = body.json()["choices"][0]["message"]["content"]
    assert "```json" in content
    assert not content.startswith("{")


def test_localizer_end_to_end_with_labels(base_url: str) -> None:
    frames = make_frames(RED, BLUE)
    assert spans(localize(base_url, frames)) == sorted([RED, BLUE])
    result = localize(base_url, frames, labels=("blue triangle",))
    assert spans(result) == [BLUE]
    assert result.usage.requests == 1
    assert result.usage.prompt_tokens > 0


def test_models_endpoint(base_url: str) -> None:
    data = HTTP.get(f"{base_url}/models").json()
    assert data["object"] == "list"
    assert data["data"][0]["id"] == "qwen/qwen3-vl-8b-instruct"


IMG = "data:image/jpeg;base64,"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "role"),
        (
            {
                "model": "m",
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "http://x/y.jpg"}}],
                    }
                ],
            },
            "data:image",
        ),
        (
            {
                "model": "m",
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": IMG + "!!!"}}],
                    }
                ],
            },
            "base64",
        ),
        (
            {
                "model": "m",
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": IMG + "aGVsbG8="}}],
                    }
                ],
            },
            "decoded",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "yaml"},
            },
            "response_format",
        ),
    ],
)
def test_bad_requests_get_openai_errors(base_url: str, body: dict[str, Any], needle: str) -> None:
    response = HTTP.post(f"{base_url}/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert needle in error["message"]
    assert error["type"] == "invalid_request_error"
    assert "code" in error


def test_non_json_body(base_url: str) -> None:
    response = HTTP.post(f"{base_url}/chat/completions", content=b"{nope")
    assert response.status_code == 400
    assert "not JSON" in response.json()["error"]["message"]


def test_api_key_required_when_configured() -> None:
    url, stop = serve_in_thread(config=FakeConfig(api_key="sk-right"))
    try:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        bad = HTTP.post(
            f"{url}/chat/completions", json=body, headers={"Authorization": "Bearer sk-wrong"}
        )
        assert bad.status_code == 401
        assert "sk-wrong" not in bad.text
        good = HTTP.post(
            f"{url}/chat/completions", json=body, headers={"Authorization": "Bearer sk-right"}
        )
        assert good.status_code == 200
        with pytest.raises(ModelAuthFailed):
            client(url, []).complete(body["messages"])
    finally:
        stop()


# ---- faults -------------------------------------------------------------------------------


def test_429_retry_after_is_honoured(base_url: str) -> None:
    admin(base_url, "/_fake/faults", [{"kind": "429", "retry_after": 1, "count": 2}])
    delays: list[float] = []
    reply = client(base_url, delays).complete([{"role": "user", "content": "hi"}])
    assert reply.finish_reason == "stop"
    assert len(delays) == 2
    assert all(d >= 1.0 for d in delays)
    stats = admin(base_url, "/_fake/stats")
    assert stats["requests"] == 3
    assert stats["by_status"] == {"429": 2, "200": 1}


def test_429_exhausts_retries(base_url: str) -> None:
    admin(base_url, "/_fake/faults", [{"kind": "429", "retry_after": 1, "count": 5}])
    with pytest.raises(ModelRateLimited) as info:
        client(base_url, [], max_retries=2).complete([{"role": "user", "content": "hi"}])
    assert info.value.retry_after_s == 1.0
    assert admin(base_url, "/_fake/stats")["requests"] == 3


@pytest.mark.parametrize("kind", ["500", "502", "503", "drop_connection"])
def test_server_errors_are_retried(base_url: str, kind: str) -> None:
    admin(base_url, "/_fake/faults", [{"kind": kind, "count": 2}])
    delays: list[float] = []
    frames = make_frames(RED)
    localizer = VlmLocalizer(client(base_url, delays))
    result = localizer.localize(CHUNK, frames, LocalizeRequest(video_duration_s=8.0))
    assert spans(result) == [RED]
    assert len(delays) == 2
    assert admin(base_url, "/_fake/stats")["requests"] == 3


def test_server_errors_exhausted(base_url: str) -> None:
    admin(base_url, "/_fake/faults", [{"kind": "503", "count": 3}])
    with pytest.raises(ModelUnavailable):
        client(base_url, [], max_retries=2).complete([{"role": "user", "content": "hi"}])


def test_slow_answer_times_out_then_succeeds(base_url: str) -> None:
    admin(base_url, "/_fake/faults", [{"kind": "slow", "delay_s": 1.0}])
    delays: list[float] = []
    reply = client(base_url, delays, timeout=0.3).complete([{"role": "user", "content": "hi"}])
    assert reply.content
    assert len(delays) == 1


@pytest.mark.parametrize("kind", ["fenced", "prose"])
def test_wrapped_answers_are_parsed(base_url: str, kind: str) -> None:
    admin(base_url, "/_fake/faults", [{"kind": kind}])
    result = localize(base_url, make_frames(RED))
    assert spans(result) == [RED]
    assert result.usage.requests == 1


@pytest.mark.parametrize("kind", ["broken_json", "empty"])
def test_unreadable_answer_is_asked_again(base_url: str, kind: str) -> None:
    admin(base_url, "/_fake/faults", [{"kind": kind}])
    result = localize(base_url, make_frames(RED), answer_retries=1)
    assert spans(result) == [RED]
    assert result.usage.requests == 2
    assert result.rejected_events == 1


def test_unreadable_answers_give_up_with_zero_events(base_url: str) -> None:
    admin(base_url, "/_fake/faults", [{"kind": "broken_json", "count": 3}])
    result = localize(base_url, make_frames(RED), answer_retries=2)
    assert result.events == ()
    assert result.usage.requests == 3
    assert result.rejected_events == 3


def test_truncated_answer_keeps_complete_events(base_url: str) -> None:
    admin(base_url, "/_fake/faults", [{"kind": "truncated"}])
    messages = build_messages(make_frames(RED, BLUE), LocalizeRequest(), CHUNK)
    reply = client(base_url, []).complete(messages, response_format_for_answer())
    assert reply.finish_reason == "length"
    parsed = parse_answer(
        reply.content, reply.finish_reason, chunk=CHUNK, video_duration_s=8.0, labels=()
    )
    assert [(e.label, e.start_s, e.end_s) for e in parsed.events] == [RED]
    assert any("truncated" in p for p in parsed.problems)


def test_huge_answer_is_capped(base_url: str) -> None:
    admin(base_url, "/_fake/faults", [{"kind": "huge"}])
    result = localize(base_url, make_frames(RED))
    assert len(result.events) == MAX_EVENTS
    # 5000 events are over the parser's input cap, so only the first ~256 KiB is even read
    assert result.rejected_events > 1000


def test_garbage_times_are_cleaned(base_url: str) -> None:
    admin(base_url, "/_fake/faults", [{"kind": "garbage_times"}])
    result = localize(base_url, make_frames(RED))
    assert spans(result) == [RED]
    assert result.rejected_events == 3


def test_json_schema_refusal_falls_back(base_url: str) -> None:
    admin(base_url, "/_fake/faults", [{"kind": "reject_json_schema"}])
    result = localize(base_url, make_frames(RED))
    assert spans(result) == [RED]
    stats = admin(base_url, "/_fake/stats")
    assert stats["by_status"] == {"400": 1, "200": 1}
    assert stats["last_params"]["response_format"] == {"type": "json_object"}


def test_params_reach_the_server(base_url: str) -> None:
    params = {"temperature": 0.7, "top_k": 20, "repetition_penalty": 1.05, "seed": 7}
    client(base_url, [], params=params).complete([{"role": "user", "content": "hi"}])
    last = admin(base_url, "/_fake/stats")["last_params"]
    assert {k: last[k] for k in params} == params
    assert last["stream"] is False


def test_faults_apply_in_order_and_reset_clears(base_url: str) -> None:
    admin(base_url, "/_fake/faults", [{"kind": "500"}, {"kind": "empty", "count": 2}])
    statuses = []
    for _ in range(4):
        r = HTTP.post(
            f"{base_url}/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        )
        statuses.append(
            (
                r.status_code,
                r.json()["choices"][0]["message"]["content"] == ""
                if r.status_code == 200
                else None,
            )
        )
    assert statuses == [(500, None), (200, True), (200, True), (200, False)]
    admin(base_url, "/_fake/faults", [{"kind": "503", "count": 9}])
    admin(base_url, "/_fake/reset", {})
    stats = admin(base_url, "/_fake/stats")
    assert stats["requests"] == 0
    assert stats["pending_faults"] == []


@pytest.mark.parametrize("spec", [{"kind": "teapot"}, {"kind": "500", "count": 0}, ["x"]])
def test_bad_fault_specs_are_refused(base_url: str, spec: Any) -> None:
    response = HTTP.post(base_url.removesuffix("/v1") + "/_fake/faults", json=spec)
    assert response.status_code == 400


def test_localizer_is_safe_to_share_between_threads(base_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    localizer = VlmLocalizer(client(base_url, []), max_concurrency=2)
    frames = {RED: make_frames(RED), BLUE: make_frames(BLUE)}
    jobs = [RED, BLUE] * 4
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(
                lambda truth: localizer.localize(
                    CHUNK, frames[truth], LocalizeRequest(video_duration_s=8.0)
                ),
                jobs,
            )
        )
    assert [spans(r) for r in results] == [[truth] for truth in jobs]
    assert admin(base_url, "/_fake/stats")["requests"] == len(jobs)


# ---- answer styles: the shapes the real model answers in -----------------------------------

LATE_OFFSET = 40.0  # a request that starts well after 0, so relative times differ from absolute


def late_frames(*events: tuple[str, float, float]) -> list[FrameSample]:
    return [FrameSample(f.t_s + LATE_OFFSET, f.image) for f in make_frames(*events)]


@pytest.mark.parametrize("style", [s for s in ANSWER_STYLES if s != "unusable"])
def test_every_answer_style_reads_back_to_what_the_fake_saw(base_url: str, style: str) -> None:
    admin(base_url, "/_fake/style", {"style": style})
    frames = late_frames(RED, BLUE)
    late = Chunk(0, LATE_OFFSET, LATE_OFFSET + 8.0, tuple(f.t_s for f in frames))
    localizer = VlmLocalizer(client(base_url, []), answer_retries=1)
    request = LocalizeRequest(labels=("red circle", "blue triangle"), video_duration_s=60.0)
    result = localizer.localize(late, frames, request)
    assert spans(result) == sorted(
        (label, start + LATE_OFFSET, end + LATE_OFFSET) for label, start, end in (RED, BLUE)
    )
    assert result.rejected_events == 0
    assert (result.answer.reasked, result.answer.failed) == (0, False)
    assert result.answer.relative_shifted == (2 if style == "relative" else 0)
    assert admin(base_url, "/_fake/stats")["answer_style"] == style


@pytest.mark.parametrize(
    ("style", "needle"),
    [
        pytest.param("range_field", '"time": "43.0 - 45.0 seconds"', id="range_field"),
        pytest.param("timestamp_pairs", '"timestamp": [43.0, 45.0]', id="timestamp_pairs"),
        pytest.param("time_keyed", '"00:43.00 - 00:45.00": "a red circle is visible"', id="tk"),
        pytest.param("mmss", '"start": "00:43.00", "end": "00:45.00"', id="mmss"),
        pytest.param("chinese", '"time": "43.0秒到45.0秒"', id="chinese"),
        pytest.param("relative", '"start_s": 3.0, "end_s": 5.0', id="relative"),
        pytest.param(
            "stamps_prose",
            "The red circle is visible from <43.0 seconds> to <45.0 seconds>.",
            id="stamps_prose",
        ),
        pytest.param("table", "| red circle | 43.0 s | 45.0 s | d |", id="table"),
        pytest.param(
            "nested_keys",
            '{"video": {"detected_events": [{"name": "red circle", "begin": "00:43.00", '
            '"finish": "00:45.00", "summary": "d"',
            id="nested_keys",
        ),
    ],
)
def test_answer_styles_are_worded_as_the_real_model_words_them(style: str, needle: str) -> None:
    events = [{"label": "red circle", "start_s": 43.0, "end_s": 45.0, "description": "d"}]
    content, finish = render_style(style, events, first_frame_s=LATE_OFFSET, json_mode=True)
    assert needle in content and finish == "stop"


@pytest.mark.parametrize("style", [s for s in ANSWER_STYLES if s != "unusable"])
def test_every_style_says_plainly_when_it_saw_nothing(style: str) -> None:
    content, _ = render_style(style, [], first_frame_s=LATE_OFFSET, json_mode=False)
    late = Chunk(0, LATE_OFFSET, LATE_OFFSET + 8.0, tuple(LATE_OFFSET + t for t in TIMES))
    parsed = parse_answer(content, "stop", chunk=late, video_duration_s=60.0, labels=())
    assert (parsed.events, parsed.usable, parsed.rejected) == ((), True, 0), content


def test_thinking_style_closes_think_after_a_wrong_draft() -> None:
    events = [{"label": "red circle", "start_s": 43.0, "end_s": 45.0}]
    content, _ = render_style("thinking", events, first_frame_s=0.0, json_mode=True)
    draft, _, final = content.partition("</think>")
    assert "<think>" not in content
    assert '"start_s": 50.0' in draft and '"start_s": 43.0' in final


def test_unusable_style_is_reasked_then_fails_the_chunk(base_url: str) -> None:
    admin(base_url, "/_fake/style", {"style": "unusable"})
    result = localize(base_url, make_frames(RED), labels=("red circle",))
    assert result.events == ()
    assert result.answer.failed
    assert (result.answer.answers, result.answer.reasked) == (2, 1)
    assert admin(base_url, "/_fake/stats")["requests"] == 2


def test_a_content_fault_wins_over_the_style_for_its_requests(base_url: str) -> None:
    admin(base_url, "/_fake/style", {"style": "unusable"})
    admin(base_url, "/_fake/faults", [{"kind": "fenced"}])
    result = localize(base_url, make_frames(RED), answer_retries=0)
    assert spans(result) == [RED]


def test_style_switch_validates_and_reset_restores_the_configured_style(base_url: str) -> None:
    refused = HTTP.post(base_url.removesuffix("/v1") + "/_fake/style", json={"style": "haiku"})
    assert refused.status_code == 400
    assert "range_field" in refused.json()["error"]["message"]
    admin(base_url, "/_fake/style", {"style": "chinese"})
    admin(base_url, "/_fake/reset", {})
    assert admin(base_url, "/_fake/stats")["answer_style"] == "canonical"


def test_answer_style_from_config_cli_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown answer style"):
        FakeConfig(answer_style="haiku")
    assert parse_args(["--answer-style", "mmss"]).answer_style == "mmss"
    monkeypatch.setenv("VIDLOC_FAKE_VLM_ANSWER_STYLE", "thinking")
    assert parse_args([]).answer_style == "thinking"
    base_url, stop = serve_in_thread(config=FakeConfig(answer_style="timestamp_pairs"))
    try:
        HTTP.post(base_url.removesuffix("/v1") + "/_fake/reset").raise_for_status()
        assert admin(base_url, "/_fake/stats")["answer_style"] == "timestamp_pairs"
    finally:
        stop()
