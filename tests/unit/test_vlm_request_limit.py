"""An oversized chat request is split into halves instead of being sent (request-bytes limit)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from workers.localizers.vlm import VlmLocalizer
from workers.model_client import ModelReply
from workers.types import Chunk, FrameSample, LocalizeRequest, Usage


class RecordingClient:
    """Stands in for ModelClient: records body sizes, answers one event per request."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.frames: list[int] = []

    def complete(
        self, messages: list[dict[str, Any]], response_format: dict[str, Any] | None = None
    ) -> ModelReply:
        self.sizes.append(len(json.dumps(messages)))
        parts = messages[1]["content"]
        stamps = [p["text"] for p in parts if p["type"] == "text" and p["text"].startswith("<")]
        times = [float(text[1:].split()[0]) for text in stamps]
        self.frames.append(len(times))
        answer = {
            "events": [
                {
                    "label": "red circle",
                    "start_s": times[0],
                    "end_s": times[-1],
                    "description": "",
                    "confidence": 0.9,
                }
            ]
        }
        return ModelReply(json.dumps(answer), "stop", Usage(100, 10, 1), "fake")


def _frames(n: int) -> list[FrameSample]:
    rng = np.random.default_rng(0)  # noise: JPEG cannot shrink it, so sizes are predictable
    return [
        FrameSample(float(i), rng.integers(0, 255, (96, 160, 3), dtype=np.uint8)) for i in range(n)
    ]


def test_requests_over_the_limit_are_split_until_they_fit() -> None:
    frames = _frames(8)
    chunk = Chunk(0, 0.0, 8.0, tuple(f.t_s for f in frames))
    client = RecordingClient()
    whole = VlmLocalizer(client, answer_retries=0)  # type: ignore[arg-type]
    whole.localize(chunk, frames, LocalizeRequest())
    full_size = client.sizes[0]

    client = RecordingClient()
    limit = full_size // 3
    limited = VlmLocalizer(client, answer_retries=0, max_request_bytes=limit)  # type: ignore[arg-type]
    result = limited.localize(chunk, frames, LocalizeRequest())
    assert max(client.sizes) <= limit
    assert sum(client.frames) == 8 and len(client.frames) == 4
    assert result.usage.requests == 4 and result.usage.prompt_tokens == 400
    assert len(result.events) == 4 and result.chunk_index == 0


def test_no_limit_means_one_request() -> None:
    frames = _frames(4)
    client = RecordingClient()
    VlmLocalizer(client, answer_retries=0).localize(  # type: ignore[arg-type]
        Chunk(0, 0.0, 4.0, tuple(f.t_s for f in frames)), frames, LocalizeRequest()
    )
    assert client.frames == [4]
