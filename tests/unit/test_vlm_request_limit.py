"""Requests over the endpoint's limits are split instead of sent: body bytes, images per request."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest

from vidloc.errors import ModelImageLimit
from workers.localizers.capped import ImageCapLocalizer, stitch
from workers.localizers.vlm import VlmLocalizer
from workers.model.client import ModelReply
from workers.types import Chunk, DetectedEvent, FrameSample, LocalizeRequest, TokenTally


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
        return ModelReply(json.dumps(answer), "stop", TokenTally(100, 10, 1), "fake")


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
    # Each part saw the circle from its first frame to its last: one event across the seams.
    assert [(e.start_s, e.end_s) for e in result.events] == [(0.0, 7.0)]
    assert result.chunk_index == 0


def test_no_limit_means_one_request() -> None:
    frames = _frames(4)
    client = RecordingClient()
    VlmLocalizer(client, answer_retries=0).localize(  # type: ignore[arg-type]
        Chunk(0, 0.0, 4.0, tuple(f.t_s for f in frames)), frames, LocalizeRequest()
    )
    assert client.frames == [4]


# ------------------------------------------------------------ the image cap per request


class LimitedClient(RecordingClient):
    """Refuses like vLLM above ``limit`` images; records each accepted request's stated span."""

    def __init__(self, limit: int, *, name_limit: bool = True) -> None:
        super().__init__()
        self.limit = limit
        self.name_limit = name_limit
        self.refused = 0
        self.spans: list[tuple[float, float]] = []

    def complete(
        self, messages: list[dict[str, Any]], response_format: dict[str, Any] | None = None
    ) -> ModelReply:
        parts = messages[1]["content"]
        images = sum(1 for p in parts if p["type"] == "image_url")
        if images > self.limit:
            self.refused += 1
            text = f"At most {self.limit} image(s) may be provided in one prompt."
            raise ModelImageLimit(
                "HTTP 400 from model endpoint: " + (text if self.name_limit else "Bad Request"),
                status_code=400,
                limit=self.limit if self.name_limit else None,
            )
        span = re.search(r"cover ([\d.]+) to ([\d.]+) seconds", parts[-1]["text"])
        assert span is not None
        self.spans.append((float(span.group(1)), float(span.group(2))))
        return super().complete(messages, response_format)


def _capped(client: RecordingClient, cap: int) -> ImageCapLocalizer:
    return ImageCapLocalizer(VlmLocalizer(client, answer_retries=0), cap)  # type: ignore[arg-type]


def test_a_chunk_over_the_cap_goes_out_in_even_parts_each_stating_its_span() -> None:
    frames = _frames(150)
    chunk = Chunk(3, 0.0, 152.0, tuple(f.t_s for f in frames))
    client = LimitedClient(limit=64)
    result = _capped(client, 64).localize(chunk, frames, LocalizeRequest())
    assert client.frames == [50, 50, 50] and client.refused == 0
    # The parts cover the chunk end to end; each starts at its first frame (the first at the
    # chunk's start) and ends where the next begins (the last at the chunk's end).
    assert client.spans == [(0.0, 50.0), (50.0, 100.0), (100.0, 152.0)]
    assert [(e.start_s, e.end_s) for e in result.events] == [(0.0, 149.0)]
    assert result.chunk_index == 3 and result.usage.requests == 3


@pytest.mark.parametrize("name_limit", [True, False], ids=["limit-named", "limit-unnamed"])
def test_a_refused_request_is_halved_until_it_fits_and_a_named_limit_is_kept(
    name_limit: bool,
) -> None:
    frames = _frames(40)
    chunk = Chunk(0, 0.0, 40.0, tuple(f.t_s for f in frames))
    client = LimitedClient(limit=12, name_limit=name_limit)
    localizer = _capped(client, 64)
    result = localizer.localize(chunk, frames, LocalizeRequest())
    assert sum(client.frames) == 40 and max(client.frames) <= 12
    assert [(e.start_s, e.end_s) for e in result.events] == [(0.0, 39.0)]
    refused_first = client.refused
    assert refused_first >= 1

    client.frames.clear()
    localizer.localize(chunk, frames, LocalizeRequest())
    if name_limit:  # learnt: later chunks are split before sending, no more refusals
        assert localizer.max_images == 12 and client.refused == refused_first
        assert client.frames == [10, 10, 10, 10]
    else:
        assert localizer.max_images == 64 and client.refused > refused_first


def test_one_frame_over_the_limit_cannot_be_split() -> None:
    frames = _frames(1)
    with pytest.raises(ModelImageLimit):
        _capped(LimitedClient(limit=0), 64).localize(
            Chunk(0, 0.0, 1.0, (0.0,)), frames, LocalizeRequest()
        )


# ------------------------------------------------------------ stitching the parts' answers


def _ev(start: float, end: float, label: str = "red circle") -> DetectedEvent:
    return DetectedEvent(label, start, end, confidence=0.5)


def test_stitch_joins_an_event_only_across_a_seam_it_reaches() -> None:
    answers = [
        ((_ev(1.0, 4.0), _ev(0.0, 1.0, "blue square")), (0.0, 1.0, 2.0, 3.0, 4.0)),
        ((_ev(5.0, 6.0), _ev(5.0, 5.0, "blue square")), (5.0, 6.0, 7.0)),
        ((_ev(8.0, 9.0),), (8.0, 9.0)),
    ]
    out = stitch(answers)
    circle = sorted((e.start_s, e.end_s) for e in out if e.label == "red circle")
    square = sorted((e.start_s, e.end_s) for e in out if e.label == "blue square")
    # The circle ran to the first part's last frame and from the second's first: one event;
    # it ended at 6.0 before the seam at 7.0/8.0, so the third part's sighting is another.
    assert circle == [(1.0, 6.0), (8.0, 9.0)]
    # The square had ended at 1.0, well before the seam: two events.
    assert square == [(0.0, 1.0), (5.0, 5.0)]
