"""``vidloc estimate FILE``: frames, tokens and cost of a configuration, without the model.

The coarse pass is exact up to the model's answers (same probe, pre-pass and plan as a job).
Refinement depends on what the model finds; with adaptive sampling every change the pre-pass
saw is counted as a boundary to refine, which is an upper bound for the frames it will send.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts import IngestEvent
from vidloc.settings import Settings
from workers.cost import Prices, price_usage
from workers.frames.adaptive import changes_over
from workers.frames.plan import tokens_per_frame
from workers.frames.prepass import Prepass
from workers.localizers.prompt import SYSTEM_PROMPT
from workers.planning import FRAME_TEXT_TOKENS, JobPlan, make_plan, wants_adaptive
from workers.refine_plan import grid_inside
from workers.types import Usage

# Question text and message framing per request, and a typical answer, in tokens.
REQUEST_TEXT_TOKENS = len(SYSTEM_PROMPT) // 4 + 60
ANSWER_TOKENS = 80


@dataclass(frozen=True)
class Estimate:
    duration_s: float
    mode: str
    frames: int
    chunks: int
    frame_size: tuple[int, int]
    tokens_per_frame: int
    coarse: Usage
    refine: Usage
    refine_boundaries: int
    cost: float
    refine_cost: float
    currency: str

    @property
    def tokens(self) -> int:
        u = self.coarse + self.refine
        return u.prompt_tokens + u.completion_tokens

    @property
    def tokens_per_minute(self) -> float:
        return self.tokens / (self.duration_s / 60.0) if self.duration_s > 0 else 0.0


def estimate_plan(plan: JobPlan, prepass: Prepass | None, settings: Settings) -> Estimate:
    """Pure: what ``plan`` will cost (refinement bounded as the module docstring says)."""
    per_frame = tokens_per_frame(*plan.frame_size)
    frames = len({t for c in plan.chunks for t in c.times})
    sent = sum(len(c.times) for c in plan.chunks)  # overlap frames go out twice
    requests = len(plan.chunks)
    coarse = Usage(
        prompt_tokens=sent * (per_frame + FRAME_TEXT_TOKENS) + requests * REQUEST_TEXT_TOKENS,
        completion_tokens=requests * ANSWER_TOKENS,
        requests=requests,
    )
    refine = Usage()
    boundaries = 0
    if plan.refine and prepass is not None:
        changes = changes_over(prepass.times, prepass.scores, settings.adaptive_change_threshold)
        refine_frames = sum(
            len(grid_inside(c.before_s, c.after_s, settings.refine_fps)) for c in changes
        )
        boundaries = len(changes)
        ref_requests = (boundaries + 1) // 2  # both boundaries of an event share a request
        refine = Usage(
            prompt_tokens=refine_frames * (per_frame + FRAME_TEXT_TOKENS)
            + ref_requests * REQUEST_TEXT_TOKENS,
            completion_tokens=ref_requests * ANSWER_TOKENS,
            requests=ref_requests,
        )
    prices = Prices(settings.price_input_per_1k, settings.price_output_per_1k, settings.currency)
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
        currency=settings.currency,
    )


def estimate_file(path: Path, options: dict[str, Any], settings: Settings) -> Estimate:
    from workers.frames.prepass import run_prepass
    from workers.frames.select import open_frame_source

    event = IngestEvent.model_validate(
        {
            "event_id": "estimate",
            "source": {"bucket": "estimate", "key": path.name, "etag": "0", "size": 0},
            "options": {k: v for k, v in options.items() if v is not None},
            "submitted_at": datetime.now(UTC).isoformat(),
        }
    )
    source, info = open_frame_source(str(path), decode_timeout_s=settings.decode_timeout_s)
    prepass = None
    if wants_adaptive(event, settings):
        prepass = run_prepass(
            source, str(path), info, fps=settings.prepass_fps, long_side=settings.prepass_long_side
        )
    plan = make_plan(info, event, settings, "vlm", prepass)
    return estimate_plan(plan, prepass, settings)


def render(e: Estimate) -> str:
    minutes = e.duration_s / 60.0
    lines = [
        f"video: {e.duration_s:.1f} s; sampling {e.mode}: {e.frames} frames "
        f"({e.frames / minutes if minutes else 0:.1f}/min) in {e.chunks} requests, "
        f"{e.frame_size[0]}x{e.frame_size[1]} = {e.tokens_per_frame} tokens per frame",
        f"coarse pass: {e.coarse.prompt_tokens} prompt + {e.coarse.completion_tokens} "
        f"completion tokens",
    ]
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
    return "\n".join(lines)


def add_estimate_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "estimate", help="frames, tokens and cost of a configuration, without calling the model"
    )
    parser.add_argument("file", type=Path, metavar="FILE")
    parser.add_argument("--sample-fps", type=float, help="uniform sampling rate")
    parser.add_argument("--chunk-s", type=float, help="seconds of video per model call")
    parser.add_argument("--sampling", choices=["uniform", "adaptive"])
    parser.add_argument("--token-budget", type=float, help="tokens per video-minute (adaptive)")
    parser.add_argument("--refine", action=argparse.BooleanOptionalAction, default=None)
    parser.set_defaults(func=run_estimate)


def run_estimate(args: argparse.Namespace, settings: Settings) -> int:
    options = {
        "sample_fps": args.sample_fps,
        "chunk_s": args.chunk_s,
        "sampling": args.sampling,
        "token_budget_per_min": args.token_budget,
        "refine": args.refine,
    }
    print(render(estimate_file(args.file, options, settings)))
    return 0
