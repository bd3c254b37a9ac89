"""Requests laid out for a prefix cache: what two questions about one chunk share, byte for byte."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from workers.localizers.prompt import SYSTEM_PROMPT, build_messages, image_uuid
from workers.types import Chunk, FrameSample, LocalizeRequest

CHUNK = Chunk(index=3, start_s=90.0, end_s=92.0, times=(90.0, 91.0, 92.0))
MEDIA = "v-abc@0123456789ab"


def frames(size: tuple[int, int] = (96, 64)) -> list[FrameSample]:
    width, height = size
    out = []
    for i, t in enumerate(CHUNK.times):
        image = np.full((height, width, 3), 40 * i, dtype=np.uint8)
        out.append(FrameSample(t_s=t, image=image))
    return out


def wire(value: Any) -> bytes:
    """As the client sends it (httpx's json=)."""
    return json.dumps(value).encode()


REQUESTS = [
    pytest.param(LocalizeRequest(media_id=MEDIA), id="default-question"),
    pytest.param(LocalizeRequest(prompt="when does anyone stand up", media_id=MEDIA), id="prompt"),
    pytest.param(LocalizeRequest(labels=("red circle", "a, b"), media_id=MEDIA), id="labels"),
    pytest.param(
        LocalizeRequest(prompt="slides?", labels=("slide",), video_duration_s=600, media_id=MEDIA),
        id="prompt+labels+length",
    ),
]


@pytest.mark.parametrize("request_", REQUESTS)
def test_the_system_prompt_never_varies(request_: LocalizeRequest) -> None:
    messages = build_messages(frames(), request_, CHUNK)
    assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT}


@pytest.mark.parametrize("request_", REQUESTS[1:])
def test_two_questions_about_one_chunk_share_everything_before_the_question(
    request_: LocalizeRequest,
) -> None:
    first = build_messages(frames(), LocalizeRequest(media_id=MEDIA), CHUNK)
    second = build_messages(frames(), request_, CHUNK)
    # Everything up to the question part is the same bytes: system message, then each
    # timestamp and image (uuid included) in time order.
    assert wire(first[0]) == wire(second[0])
    assert wire(first[1]["content"][:-1]) == wire(second[1]["content"][:-1])
    assert first[1]["content"][-1] != second[1]["content"][-1]
    # ... and the question is the one part after the frames: nothing of it comes earlier.
    texts = [second[0]["content"], *(p["text"] for p in second[1]["content"][:-1] if "text" in p)]
    for word in (request_.prompt, *request_.labels):
        assert word is None or not any(word in text for text in texts)


def test_image_parts_carry_a_stable_uuid_naming_video_version_and_time() -> None:
    parts = build_messages(frames(), LocalizeRequest(media_id=MEDIA), CHUNK)[1]["content"]
    images = [p for p in parts if p["type"] == "image_url"]
    uuids = [p["uuid"] for p in images]
    assert [u.rsplit(":", 2)[0] for u in uuids] == [MEDIA] * 3
    assert [u.rsplit(":", 2)[1] for u in uuids] == ["90.000000", "91.000000", "92.000000"]
    assert len(set(uuids)) == 3
    again = build_messages(frames(), LocalizeRequest(media_id=MEDIA, prompt="x"), CHUNK)
    assert [p["uuid"] for p in again[1]["content"] if p["type"] == "image_url"] == uuids


def test_one_instant_sent_smaller_is_another_image_to_the_server() -> None:
    # Refinement sends the same instant at its small look size: one uuid for both would make
    # vLLM reuse the big frame's embedding (it trusts uuids).
    big = build_messages(frames((96, 64)), LocalizeRequest(media_id=MEDIA), CHUNK)[1]["content"]
    small = build_messages(frames((48, 32)), LocalizeRequest(media_id=MEDIA), CHUNK)[1]["content"]
    assert big[1]["uuid"] != small[1]["uuid"]
    assert big[1]["uuid"] == image_uuid(MEDIA, 90.0, big[1])


def test_no_media_id_no_uuid() -> None:
    parts = build_messages(frames(), LocalizeRequest(), CHUNK)[1]["content"]
    assert not any("uuid" in p for p in parts)
