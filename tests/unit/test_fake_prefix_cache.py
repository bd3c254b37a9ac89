"""The fake model's prefix cache (counted like vLLM's) and its strict content parts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from devkit.fake_vlm.__main__ import parse_args
from devkit.fake_vlm.faults import parse_faults
from devkit.fake_vlm.prefix import BLOCK_TOKENS, PrefixCache, block_hashes
from devkit.fake_vlm.server import FakeConfig, serve_in_thread
from workers.localizers.prompt import build_messages
from workers.model.client import ModelClient
from workers.types import Chunk, FrameSample, LocalizeRequest

TIMES = (0.0, 1.0, 2.0, 3.0)
CHUNK = Chunk(index=0, start_s=0.0, end_s=3.0, times=TIMES)
MEDIA = "v-1@0123456789ab"


def tokens(*names: str) -> list[bytes]:
    return [n.encode() for n in names]


# --- the cache alone --------------------------------------------------------------------------


def test_blocks_are_chained_full_blocks_of_16() -> None:
    assert len(block_hashes(tokens(*"a" * 47))) == 2  # the partial third block has no name
    one = block_hashes(tokens(*"ab" * 16))
    other = block_hashes(tokens(*"ba" * 8, *"ab" * 8))
    assert one[0] != other[0] and one[1] != other[1]  # same second block, other parent


def test_leading_blocks_seen_before_are_cached_and_the_last_token_never() -> None:
    cache = PrefixCache()
    prompt = tokens(*(f"t{i}" for i in range(100)))
    assert cache.admit(prompt) == 0
    assert cache.admit(prompt) == 96  # 6 full blocks; all of them, as (100 - 1) // 16 = 6
    exactly = tokens(*(f"t{i}" for i in range(64)))
    assert cache.admit(exactly) == 48  # a full hit still computes its last block
    other_question = prompt[:40] + tokens("x", "y") + prompt[42:]
    assert cache.admit(other_question) == 32  # up to the block the change falls in


def test_least_recently_used_blocks_go_first() -> None:
    cache = PrefixCache(capacity_blocks=4)
    a = tokens(*(f"a{i}" for i in range(33)))  # 2 blocks
    b = tokens(*(f"b{i}" for i in range(33)))
    c = tokens(*(f"c{i}" for i in range(33)))
    cache.admit(a)
    cache.admit(b)
    cache.admit(a)  # a is the more recent now
    cache.admit(c)  # evicts b's blocks
    assert len(cache) == 4
    assert cache.admit(a) == 32
    assert cache.admit(b) == 0


def test_a_cache_of_no_blocks_reports_nothing() -> None:
    cache = PrefixCache(capacity_blocks=0)
    prompt = tokens(*(f"t{i}" for i in range(40)))
    cache.admit(prompt)
    assert cache.admit(prompt) == 0


# --- through the server -----------------------------------------------------------------------

HTTP = httpx.Client(timeout=10.0)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    base_url, stop = serve_in_thread()
    yield base_url
    stop()
    HTTP.close()


def frames(shade: int = 60) -> list[FrameSample]:
    return [
        FrameSample(t_s=t, image=np.full((96, 128, 3), shade + 20 * i, dtype=np.uint8))
        for i, t in enumerate(TIMES)
    ]


def ask(base_url: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    body = {"model": "m", "messages": messages}
    response = HTTP.post(base_url + "/chat/completions", json=body)
    response.raise_for_status()
    usage: dict[str, Any] = response.json()["usage"]
    return usage


def cached(usage: dict[str, Any]) -> int:
    return int((usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0))


def test_a_second_question_about_the_same_frames_repeats_all_but_the_question(
    server: str,
) -> None:
    media = MEDIA + "-second-question"
    first = ask(server, build_messages(frames(), LocalizeRequest(media_id=media), CHUNK))
    again = build_messages(
        frames(),
        LocalizeRequest(prompt="anyone stands up", labels=("person",), media_id=media),
        CHUNK,
    )
    second = ask(server, again)
    question = len(again[1]["content"][-1]["text"])
    # Everything but the question's block(s) and the chat framing after it came from the cache.
    assert second["prompt_tokens"] - cached(second) <= question // 2 + 2 * BLOCK_TOKENS
    assert cached(second) / second["prompt_tokens"] > 0.8
    assert first["prompt_tokens"] > 4 * 100  # four 128x96 images, billed as 352x224 (77) each


def test_the_uuid_stands_for_the_image_like_vllm(server: str) -> None:
    # vLLM trusts a part's uuid as the image's identity: other bytes under the same uuids hit.
    messages = build_messages(frames(10), LocalizeRequest(media_id=MEDIA + "-trust"), CHUNK)
    ask(server, messages)
    other = build_messages(frames(150), LocalizeRequest(media_id=MEDIA + "-trust"), CHUNK)
    for mine, theirs in zip(other[1]["content"], messages[1]["content"], strict=True):
        if "uuid" in theirs:
            mine["uuid"] = theirs["uuid"]
    assert cached(ask(server, other)) > 4 * 77
    # The same bytes under new uuids are new images: no more of them hits than of frames
    # never sent (the system prompt and the first timestamp).
    renamed = build_messages(frames(10), LocalizeRequest(media_id=MEDIA + "-renamed"), CHUNK)
    unseen = build_messages(frames(90), LocalizeRequest(media_id=MEDIA + "-unseen"), CHUNK)
    assert cached(ask(server, renamed)) == cached(ask(server, unseen)) < 300


def test_without_uuids_the_image_bytes_name_it(server: str) -> None:
    messages = build_messages(frames(33), LocalizeRequest(), CHUNK)
    first = ask(server, messages)
    assert cached(ask(server, messages)) == (first["prompt_tokens"] - 1) // 16 * 16


def test_stats_sum_prompt_and_cached_tokens(server: str) -> None:
    HTTP.post(server.removesuffix("/v1") + "/_fake/reset").raise_for_status()
    messages = build_messages(frames(77), LocalizeRequest(media_id=MEDIA + "-stats"), CHUNK)
    first, second = ask(server, messages), ask(server, messages)
    stats = HTTP.get(server.removesuffix("/v1") + "/_fake/stats").json()
    assert stats["prompt_tokens"] == first["prompt_tokens"] + second["prompt_tokens"]
    assert stats["cached_tokens"] == cached(first) + cached(second)
    assert cached(second) > cached(first)
    assert stats["prefix_cache_blocks"] > 0


# --- strict content parts ---------------------------------------------------------------------


def test_a_strict_server_names_the_uuid_and_the_client_falls_back() -> None:
    base_url, stop = serve_in_thread(config=FakeConfig(strict_content_parts=True))
    try:
        messages = build_messages(frames(), LocalizeRequest(media_id=MEDIA), CHUNK)
        refused = HTTP.post(
            base_url + "/chat/completions", json={"model": "m", "messages": messages}
        )
        assert refused.status_code == 400
        assert "messages[1].content[1].uuid" in refused.json()["error"]["message"]
        model = ModelClient(base_url, "m", None, {}, HTTP, sleep=lambda s: None)
        assert model.complete(messages).usage.prompt_tokens > 0
        model.complete(messages)
        stats = HTTP.get(base_url.removesuffix("/v1") + "/_fake/stats").json()
        assert stats["by_status"] == {"400": 2, "200": 2}  # one 400 from the client, not two
    finally:
        stop()


def test_the_reject_unknown_fields_fault_refuses_the_next_requests(server: str) -> None:
    assert parse_faults({"kind": "reject_unknown_fields", "count": 2})[0].count == 2
    root = server.removesuffix("/v1")
    HTTP.post(root + "/_fake/faults", json={"kind": "reject_unknown_fields"}).raise_for_status()
    messages = build_messages(frames(), LocalizeRequest(media_id=MEDIA), CHUNK)
    body = {"model": "m", "messages": messages}
    assert HTTP.post(server + "/chat/completions", json=body).status_code == 400
    assert HTTP.post(server + "/chat/completions", json=body).status_code == 200


def test_flags() -> None:
    args = parse_args(["--prefix-cache-blocks", "8", "--strict-content-parts"])
    assert (args.prefix_cache_blocks, args.strict_content_parts) == (8, True)
    assert parse_args([]).strict_content_parts is False
