"""``vidloc estimate FILE``: frames, tokens and cost of a configuration, without the model.

The coarse pass is exact up to the model's answers (same probe, pre-pass and plan as a job).
Refinement depends on what the model finds; with adaptive sampling every change the pre-pass
saw is counted as a boundary to refine, which is an upper bound for the frames it will send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts import IngestEvent
from vidloc.settings import Settings
from workers.frames.adaptive import changes_over
from workers.frames.plan import parts_for
from workers.frames.prepass import Prepass
from workers.localizers import vlm
from workers.localizers.prompt import (
    SYSTEM_PROMPT,
    question_text,
    timestamp_decimals,
    timestamp_text,
)
from workers.model.cost import Prices, price_usage
from workers.model.tokens import CHAT_FRAMING_TOKENS, frames_tokens, image_tokens, text_tokens
from workers.pipeline.frame_cache import bytes_per_minute, estimated_bytes
from workers.pipeline.planning import JobPlan, PlanConfig, make_plan, wants_adaptive
from workers.pipeline.spans import Span, plan_spans, should_split
from workers.refinement.boundaries import grid_inside
from workers.types import Chunk, LocalizeRequest, TokenTally

# A typical answer, in tokens.
ANSWER_TOKENS = 80


@dataclass(frozen=True)
class EstimateConfig:
    """What pricing a plan needs of the worker's settings (fields named as in Settings)."""

    adaptive_change_threshold: float
    refine_fps: float
    vlm_max_images_per_request: int
    price_input_per_1k: float
    price_output_per_1k: float
    currency: str
    span_s: float = 0.0

    @classmethod
    def from_settings(cls, settings: object) -> EstimateConfig:
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Estimate:
    duration_s: float
    mode: str
    frames: int
    chunks: int
    frame_size: tuple[int, int]
    tokens_per_frame: int  # image tokens, as the server bills the frame size
    coarse: TokenTally
    refine: TokenTally
    refine_boundaries: int
    cost: float
    refine_cost: float
    currency: str
    spans: int = 1  # how many members can work on it at once (docs/delivery.md)
    span_chunks: int = 0  # chunks of the longest span
    cache_bytes: int = 0  # the frame cache it fills, estimated from frame count and size

    @property
    def cache_bytes_per_minute(self) -> float:
        return bytes_per_minute(self.cache_bytes, self.duration_s)

    @property
    def tokens(self) -> int:
        u = self.coarse + self.refine
        return u.prompt_tokens + u.completion_tokens

    @property
    def tokens_per_minute(self) -> float:
        return self.tokens / (self.duration_s / 60.0) if self.duration_s > 0 else 0.0


def estimate_plan(plan: JobPlan, prepass: Prepass | None, config: EstimateConfig) -> Estimate:
    """Pure: what ``plan`` will cost (refinement bounded as the module docstring says)."""
    per_frame = image_tokens(*plan.frame_size)
    frames = len({t for c in plan.chunks for t in c.times})
    requests = len(plan.chunks)  # overlap frames go out twice, and are counted twice
    coarse = TokenTally(
        prompt_tokens=sum(request_tokens(plan, c.times, c.start_s, c.end_s) for c in plan.chunks),
        completion_tokens=requests * ANSWER_TOKENS,
        requests=requests,
    )
    spans: tuple[Span, ...] = ()
    if plan.mode == "uniform" and should_split(plan.info.duration_s, config.span_s, requests):
        # As asked: the workers round the count to whole rounds of their group's span slots.
        spans = plan_spans(plan.chunks, plan.info.duration_s, config.span_s)
    refine = TokenTally()
    boundaries = 0
    if plan.refine and prepass is not None:
        changes = changes_over(prepass.times, prepass.scores, config.adaptive_change_threshold)
        windows = [
            (grid_inside(c.before_s, c.after_s, config.refine_fps), c.before_s, c.after_s)
            for c in changes
        ]
        windows = [w for w in windows if w[0]]
        boundaries = len(windows)
        cap = config.vlm_max_images_per_request
        prompt_tokens = ref_requests = 0
        # Both boundaries of an event share a request while they fit the image cap
        # (workers.refinement.boundaries.plan_requests); consecutive changes stand in for the two.
        for k in range(0, len(windows), 2):
            pair = windows[k : k + 2]
            shown = sorted({t for w in pair for t in w[0]})
            if len(shown) <= cap:
                lo, hi = min(w[1] for w in pair), max(w[2] for w in pair)
                prompt_tokens += request_tokens(plan, shown, lo, hi)
                ref_requests += 1
                continue
            for times, _, _ in pair:
                for first, stop in parts_for(len(times), cap):
                    part = times[first:stop]
                    prompt_tokens += request_tokens(plan, part, part[0], part[-1])
                    ref_requests += 1
        refine = TokenTally(
            prompt_tokens=prompt_tokens,
            completion_tokens=ref_requests * ANSWER_TOKENS,
            requests=ref_requests,
        )
    prices = Prices(config.price_input_per_1k, config.price_output_per_1k, config.currency)
    return Estimate(
        duration_s=plan.info.duration_s,
        mode=plan.mode,
        frames=frames,
        chunks=requests,
        frame_size=plan.frame_size,
        tokens_per_frame=per_frame,
        coarse=coarse,
        refine=refine,
        refine_boundaries=boundaries,
        cost=price_usage(coarse + refine, prices),
        refine_cost=price_usage(refine, prices),
        currency=config.currency,
        spans=len(spans) if spans else 1,
        span_chunks=max((s.end_chunk - s.first_chunk for s in spans), default=len(plan.chunks)),
        cache_bytes=estimated_bytes(frames, plan.frame_size),
    )


def request_tokens(plan: JobPlan, times: Sequence[float], start_s: float, end_s: float) -> int:
    """Prompt tokens of one request showing ``times``, as ``build_messages`` writes it (with
    the default question) and the server bills it."""
    decimals = timestamp_decimals(times)
    labels = [timestamp_text(t, decimals) for t in times]
    chunk = Chunk(0, start_s, end_s, tuple(times))
    question = question_text(
        LocalizeRequest(video_duration_s=plan.info.duration_s), chunk, decimals
    )
    return (
        frames_tokens(*plan.frame_size, labels)
        + text_tokens(SYSTEM_PROMPT)
        + text_tokens(question)
        + CHAT_FRAMING_TOKENS
    )


def estimate_file(path: Path, options: dict[str, Any], settings: Settings) -> Estimate:
    from workers.frames.prepass import run_prepass
    from workers.frames.select import close_source, forced_source, open_frame_source

    event = IngestEvent.model_validate(
        {
            "event_id": "estimate",
            "source": {"bucket": "estimate", "key": path.name, "etag": "0", "size": 0},
            "options": {k: v for k, v in options.items() if v is not None},
            "submitted_at": datetime.now(UTC).isoformat(),
        }
    )
    source, info = open_frame_source(
        str(path),
        force=forced_source(settings.frame_source),
        decode_timeout_s=settings.decode_timeout_s,
        threads=settings.decode_threads,
    )
    prepass = None
    try:
        if wants_adaptive(event, PlanConfig.from_settings(settings)):
            prepass = run_prepass(
                source,
                str(path),
                info,
                fps=settings.prepass_fps,
                long_side=settings.prepass_long_side,
            )
    finally:
        close_source(source)
    plan = make_plan(info, event, PlanConfig.from_settings(settings), vlm.KIND, prepass)
    return estimate_plan(plan, prepass, EstimateConfig.from_settings(settings))


def render(e: Estimate) -> str:
    minutes = e.duration_s / 60.0
    lines = [
        f"video: {e.duration_s:.1f} s; sampling {e.mode}: {e.frames} frames "
        f"({e.frames / minutes if minutes else 0:.1f}/min) in {e.chunks} requests, "
        f"{e.frame_size[0]}x{e.frame_size[1]} = {e.tokens_per_frame} tokens per frame",
        f"coarse pass: {e.coarse.prompt_tokens} prompt + {e.coarse.completion_tokens} "
        f"completion tokens",
    ]
    if e.spans > 1:
        lines.append(
            f"long video: about {e.spans} spans of up to {e.span_chunks} requests each "
            f"(VIDLOC_SPAN_S; the group rounds the count to the spans its members run at once), "
            f"worked on by the whole group; the bill is the same"
        )
    if e.refine.requests:
        lines.append(
            f"refinement (at most): {e.refine_boundaries} boundaries, "
            f"{e.refine.prompt_tokens} prompt + {e.refine.completion_tokens} completion tokens, "
            f"{e.refine_cost:.5f} {e.currency}"
        )
    lines.append(
        f"total: {e.tokens} tokens, {e.cost:.5f} {e.currency}; "
        f"{e.tokens_per_minute:.0f} tokens/video-minute"
    )
    lines.append(
        f"frame cache (estimate, from {e.frames} frames of {e.frame_size[0]}x{e.frame_size[1]}): "
        f"about {e.cache_bytes / 1e6:.1f} MB, {e.cache_bytes_per_minute / 1e6:.2f} MB per "
        "video-minute (VIDLOC_FRAME_CACHE_TTL_DAYS)"
    )
    return "\n".join(lines)
