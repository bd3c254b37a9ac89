"""The timeline document a job stores, built from its plan and its events (pure).

One function per section of the contract (``contracts.timeline``), so a new field has one
obvious home; the job passes in what it measured (usage, cost, stats, warnings).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from contracts import IngestEvent, Timeline
from workers.pipeline.merge import assign_event_ids
from workers.pipeline.planning import JobPlan
from workers.refinement.refine import RefineOutcome
from workers.types import DetectedEvent, TokenTally, VideoInfo


def build_timeline(
    event: IngestEvent,
    job_id: str,
    plan: JobPlan,
    events: Sequence[DetectedEvent],
    *,
    model: dict[str, Any] | None,
    usage: TokenTally,
    cost: float,
    currency: str,
    refined: RefineOutcome | None = None,
    refine_cost: float = 0.0,
    stats: dict[str, Any] | None = None,
    warnings: Sequence[Any] = (),
    object_size: int | None = None,
) -> Timeline:
    """``model`` is the endpoint's name, base URL and params (never its key) for the vlm
    localizer, else None; ``refine_cost`` prices ``refined.usage``, already part of ``usage``."""
    video_id = event.effective_video_id
    doc: dict[str, Any] = {
        "schema": Timeline.SCHEMA,
        "video_id": video_id,
        "job_id": job_id,
        # A later analysis names itself; the first one stays as timelines have always been.
        "analysis_id": None if event.analysis is None else event.analysis.id,
        "source": {
            "bucket": event.source.bucket,
            "key": event.source.key,
            "etag": event.source.etag,
            # The bytes the worker downloaded: a notification for a multipart upload may say 0.
            "size": event.source.size if object_size is None else object_size,
        },
        "video": video_section(plan.info),
        "localizer": plan.localizer,
        "model": model,
        "prompt": event.options.prompt,
        "labels": list(event.options.labels),
        "sampling": sampling_section(plan, refined),
        "events": events_section(events, video_id, plan.localizer),
        "usage": usage_section(usage, cost, currency, refined, refine_cost),
        "stats": stats,
        "warnings": list(warnings),
        "created_at": datetime.now(UTC).isoformat(),
    }
    return Timeline.model_validate(doc)


def video_section(info: VideoInfo) -> dict[str, Any]:
    return {
        "duration_s": info.duration_s,
        "fps": info.fps,
        "width": info.width,
        "height": info.height,
        "codec": info.codec,
    }


def sampling_section(plan: JobPlan, refined: RefineOutcome | None) -> dict[str, Any]:
    return {
        "sample_fps": plan.sample_fps,
        "chunk_s": plan.chunk_s,
        "chunk_overlap_s": plan.overlap_s,
        "frames": len(plan.times),
        "chunks": len(plan.chunks),
        "frame_size": list(plan.frame_size),
        "mode": plan.mode,
        "token_budget_per_min": plan.token_budget_per_min,
        "refine": plan.refine,
        "refined_boundaries": refined.boundaries if refined else None,
        "refine_frames": refined.frames if refined else None,
    }


def events_section(
    events: Sequence[DetectedEvent], video_id: str, localizer: str
) -> list[dict[str, Any]]:
    """Events with their stable ids, times rounded to the millisecond."""
    return [
        {
            "id": event_id,
            "label": e.label,
            "start_s": round(e.start_s, 3),
            "end_s": round(e.end_s, 3),
            "description": e.description,
            "confidence": e.confidence,
            "source": e.source or localizer,
        }
        for event_id, e in assign_event_ids(events, video_id)
    ]


def usage_section(
    usage: TokenTally,
    cost: float,
    currency: str,
    refined: RefineOutcome | None,
    refine_cost: float,
) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "requests": usage.requests,
        "cost": cost,
        "currency": currency,
        **({"cached_tokens": usage.cached_tokens} if usage.cached_tokens else {}),
        "refine": None
        if refined is None
        else {
            "prompt_tokens": refined.usage.prompt_tokens,
            "completion_tokens": refined.usage.completion_tokens,
            "requests": refined.usage.requests,
            "cost": refine_cost,
        },
    }
