from __future__ import annotations

import base64
import json

import cv2
import numpy as np
import pytest

from workers.localizers.prompt import (
    DEFAULT_PROMPT,
    build_messages,
    response_format_for_answer,
    timestamp_decimals,
    timestamp_text,
)
from workers.types import Chunk, FrameSample, LocalizeRequest

CHUNK = Chunk(index=0, start_s=3.0, end_s=5.5, times=(3.0, 4.25, 5.5))


def frames() -> list[FrameSample]:
    out = []
    for t in CHUNK.times:
        image = np.zeros((64, 96, 3), dtype=np.uint8)
        image[:, :] = (230, 30, 30)  # pure red in RGB
        out.append(FrameSample(t_s=t, image=image))
    return out


def decode(url: str) -> np.ndarray:
    prefix = "data:image/jpeg;base64,"
    assert url.startswith(prefix)
    data = np.frombuffer(base64.b64decode(url[len(prefix) :]), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_each_image_is_preceded_by_its_timestamp() -> None:
    messages = build_messages(frames(), LocalizeRequest(), CHUNK)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert '{"events"' in messages[0]["content"]
    parts = messages[1]["content"]
    assert len(parts) == 2 * len(CHUNK.times) + 1
    texts = [p["text"] for p in parts[0:-1:2]]
    assert texts == ["<3.0 seconds>", "<4.2 seconds>", "<5.5 seconds>"]
    assert all(p["type"] == "image_url" for p in parts[1:-1:2])
    assert parts[-1]["type"] == "text"


def test_images_decode_to_the_right_size_and_colour_order() -> None:
    parts = build_messages(frames(), LocalizeRequest(), CHUNK, jpeg_quality=90)[1]["content"]
    image = decode(parts[1]["image_url"]["url"])
    assert image.shape == (64, 96, 3)
    b, g, r = (int(v) for v in image[32, 48])
    assert r > 200 and g < 60 and b < 60  # RGB frame came out red, not blue


def test_default_prompt_and_no_label_line() -> None:
    question = build_messages(frames(), LocalizeRequest(), CHUNK)[1]["content"][-1]["text"]
    assert DEFAULT_PROMPT in question
    assert "Only report" not in question
    assert "3.0 to 5.5 seconds" in question


def test_user_prompt_and_labels() -> None:
    request = LocalizeRequest(
        prompt="When does the dog jump?", labels=("dog, brown", "cat"), video_duration_s=60.0
    )
    question = build_messages(frames(), request, CHUNK)[1]["content"][-1]["text"]
    assert "When does the dog jump? Only report" in question
    assert DEFAULT_PROMPT not in question
    assert "total length 60.0 seconds" in question
    listed = question.split("Only report these labels: ")[1].split("].")[0] + "]"
    assert json.loads(listed) == ["dog, brown", "cat"]


@pytest.mark.parametrize("labels", [(), ("red circle", "blue triangle")])
def test_response_format_is_strict_json_schema(labels: tuple[str, ...]) -> None:
    fmt = response_format_for_answer(labels)
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "vidloc_events"
    assert fmt["json_schema"]["strict"] is True
    item = fmt["json_schema"]["schema"]["properties"]["events"]["items"]
    assert set(item["required"]) == {"label", "start_s", "end_s", "description", "confidence"}
    assert item["additionalProperties"] is False
    if labels:
        assert item["properties"]["label"]["enum"] == list(labels)
    else:
        assert "enum" not in item["properties"]["label"]
    assert item["properties"]["label"]["type"] == "string"


def test_schema_copies_are_independent() -> None:
    fmt = response_format_for_answer()
    fmt["json_schema"]["schema"]["required"].append("junk")
    assert response_format_for_answer()["json_schema"]["schema"]["required"] == ["events"]


def test_schema_is_the_contracts_answer_schema() -> None:
    from contracts import answer_response_format, answer_schema

    assert response_format_for_answer()["json_schema"]["schema"] == answer_schema()
    assert response_format_for_answer(["dog"]) == answer_response_format(["dog"])


# ------------------------------------------------------------ timestamp labels


@pytest.mark.parametrize(
    ("fps", "decimals"),
    [(0.2, 1), (1.0, 1), (2.0, 1), (10.0, 1), (20.0, 2), (30.0, 2), (100.0, 2), (1000.0, 3)],
)
def test_label_precision_follows_the_sampling_interval(fps: float, decimals: int) -> None:
    # Refinement grids start anywhere: lo + k / fps, with float noise from the decoder.
    times = [12.3456 + k / fps for k in range(80)]
    assert timestamp_decimals(times) == decimals
    labels = [timestamp_text(t, timestamp_decimals(times)) for t in times]
    assert len(set(labels)) == len(labels)


def test_frames_at_20_fps_never_share_a_label_in_the_request() -> None:
    times = [10.5 + k * 0.05 for k in range(40)]
    frames = [FrameSample(t, np.zeros((32, 32, 3), dtype=np.uint8)) for t in times]
    chunk = Chunk(0, 10.5, 12.5, tuple(times))
    content = build_messages(frames, LocalizeRequest(), chunk)[1]["content"]
    stamps = [p["text"] for p in content if p["type"] == "text" and p["text"].startswith("<")]
    assert len(set(stamps)) == 40
    assert stamps[:3] == ["<10.50 seconds>", "<10.55 seconds>", "<10.60 seconds>"]
    assert "cover 10.50 to 12.50 seconds" in content[-1]["text"]
