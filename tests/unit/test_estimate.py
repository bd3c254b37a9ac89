"""``vidloc estimate`` counts what the requests it predicts would really hold, as billed."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import cv2
import numpy as np
import pytest

from vidloc.settings import Settings
from workers.frames.plan import frame_size_for, plan_chunks, plan_sample_times
from workers.frames.prepass import Prepass
from workers.localizers.prompt import build_messages
from workers.localizers.registry import localizer_kind
from workers.model.tokens import (
    CHAT_FRAMING_TOKENS,
    VISION_MARKER_TOKENS,
    image_tokens,
    text_tokens,
)
from workers.pipeline.estimate import EstimateConfig, estimate_plan, render
from workers.pipeline.planning import JobPlan
from workers.types import FrameSample, LocalizeRequest, VideoInfo


def billed(messages: list[dict[str, Any]]) -> int:
    """Prompt tokens of real messages: every text part, every image at its decoded size."""
    total = CHAT_FRAMING_TOKENS
    for message in messages:
        content = message["content"]
        for part in [{"type": "text", "text": content}] if isinstance(content, str) else content:
            if part["type"] == "text":
                total += text_tokens(part["text"])
            else:
                data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
                image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                total += VISION_MARKER_TOKENS + image_tokens(image.shape[1], image.shape[0])
    return total


def _plan(source: tuple[int, int], fps: float, duration_s: float) -> JobPlan:
    info = VideoInfo(duration_s, 25.0, source[0], source[1], "h264")
    size = frame_size_for(*source)
    times = plan_sample_times(duration_s, fps)
    chunks = plan_chunks(times, 30.0, 2.0, 64)
    return JobPlan(info, localizer_kind("vlm"), fps, 30.0, 2.0, size, times, chunks)


@pytest.mark.parametrize(
    ("source", "fps"), [((320, 180), 1.0), ((1920, 1080), 2.0), ((176, 144), 20.0)]
)
def test_coarse_prompt_tokens_are_those_of_the_messages_sent(
    source: tuple[int, int], fps: float
) -> None:
    plan = _plan(source, fps, 40.0 if fps < 10 else 5.0)
    estimate = estimate_plan(plan, None, EstimateConfig.from_settings(Settings()))
    w, h = plan.frame_size
    sent = 0
    for chunk in plan.chunks:
        frames = [FrameSample(t, np.zeros((h, w, 3), np.uint8)) for t in chunk.times]
        request = LocalizeRequest(video_duration_s=plan.info.duration_s)
        sent += billed(build_messages(frames, request, chunk))
    assert estimate.coarse.prompt_tokens == sent
    assert estimate.tokens_per_frame == image_tokens(w, h)


def test_refinement_estimate_keeps_every_request_within_the_image_cap() -> None:
    plan = replace(_plan((448, 256), 0.2, 60.0), refine=True)
    # Two changes 4 s wide: at 20 fps each window holds 79 frames, more than a cap of 64.
    prepass = Prepass(
        times=(10.0, 14.0, 30.0, 34.0), scores=(0.5, 0.0, 0.5), cuts=(), frames_decoded=4
    )
    settings = Settings(refine_fps=20.0, vlm_max_images_per_request=64)
    estimate = estimate_plan(plan, prepass, EstimateConfig.from_settings(settings))
    assert estimate.refine_boundaries == 2
    assert estimate.refine.requests == 4  # each window in two parts of 40 and 39
    roomy_settings = Settings(refine_fps=20.0, vlm_max_images_per_request=200)
    roomy = estimate_plan(plan, prepass, EstimateConfig.from_settings(roomy_settings))
    assert roomy.refine.requests == 1  # both boundaries of the event in one request
    assert roomy.refine.prompt_tokens < estimate.refine.prompt_tokens  # one prompt, not four


def test_a_long_video_is_priced_with_its_spans_and_the_same_bill() -> None:
    plan = _plan((1920, 1080), 1.0, 2 * 3600.0)
    split = estimate_plan(plan, None, EstimateConfig.from_settings(Settings(span_s=300.0)))
    whole = estimate_plan(plan, None, EstimateConfig.from_settings(Settings(span_s=0.0)))
    # 24 of 300 s as asked (the workers round it to their group's span slots), after the
    # one-chunk lead-in
    assert (split.spans, whole.spans) == (25, 1)
    assert split.span_chunks == 10  # 239 chunks of 30 s after the lead-in, 9-10 a span
    assert (split.tokens, split.cost) == (whole.tokens, whole.cost)
    assert "about 25 spans of up to 10 requests" in render(split)
    assert "spans" not in render(whole)
