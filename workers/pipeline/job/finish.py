"""From the chunks' answers to a timeline: merged across chunk (and span) edges, refined,
snapped to cuts, priced and described."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from contracts import IngestEvent, JobWarning, Timeline
from workers.frames.adaptive import frames_for_budget, snap_to_cut
from workers.model.cost import price_usage
from workers.pipeline.job.context import JobContext
from workers.pipeline.job.frames import Feed
from workers.pipeline.job_warnings import answer_stats, job_warnings
from workers.pipeline.join import join_unseparated
from workers.pipeline.merge import merge_events
from workers.pipeline.planning import JobPlan, frame_budget_tokens
from workers.pipeline.reuse import refine_skipped
from workers.pipeline.timeline import build_timeline
from workers.refinement.refine import RefineOutcome, refine_events
from workers.types import (
    ChunkResult,
    DetectedEvent,
    Localizer,
    LocalizeRequest,
    TokenTally,
)


def finish_events(
    ctx: JobContext,
    event: IngestEvent,
    plan: JobPlan,
    results: Sequence[ChunkResult],
    feed: Feed,
    localizer: Localizer,
    notes: list[JobWarning],
) -> tuple[tuple[DetectedEvent, ...], RefineOutcome | None]:
    """Merge the chunks' events, refine their boundaries if asked, snap them to cuts."""
    s = ctx.settings
    merged = merged_chunks(plan, results)
    refined: RefineOutcome | None = None
    if plan.refine and merged and (feed.source is None or feed.path is None):
        # The frames between the kept samples were never decoded: decoding them now is
        # what a later analysis must not do.
        notes.append(refine_skipped())
    elif plan.refine and merged and feed.source is not None:
        max_frames = None
        if plan.token_budget_per_min is not None:
            per_frame = frame_budget_tokens(plan.frame_size, plan.info.duration_s)
            budget = frames_for_budget(plan.info.duration_s, plan.token_budget_per_min, per_frame)
            max_frames = max(0, (budget or 0) - len(plan.times))
        refined = refine_events(
            merged,
            plan.times,
            source=feed.source,
            path=str(feed.path),
            size=plan.frame_size,
            localizer=localizer,
            request=localize_request(event, plan),
            fps=s.refine_fps,
            window_s=s.refine_window_s,
            concurrency=s.vlm_concurrency,
            max_frames=max_frames,
            max_images=s.vlm_max_images_per_request,
            held=ctx.frame_budget,
        )
        merged = refined.events
    if plan.cuts and s.snap_to_cut_s > 0:
        merged = tuple(
            replace(
                e,
                start_s=snap_to_cut(e.start_s, plan.cuts, s.snap_to_cut_s),
                end_s=snap_to_cut(e.end_s, plan.cuts, s.snap_to_cut_s),
            )
            if e.end_s > e.start_s
            else e
            for e in merged
        )
        merged = tuple(e for e in merged if e.end_s >= e.start_s)
    return merged, refined


def job_timeline(
    ctx: JobContext,
    event: IngestEvent,
    job_id: str,
    plan: JobPlan,
    merged: Sequence[Any],
    usage: TokenTally,
    cost: float,
    results: Sequence[ChunkResult],
    refined: RefineOutcome | None = None,
    object_size: int | None = None,
) -> Timeline:
    s = ctx.settings
    model: dict[str, Any] | None = None
    if plan.kind.asks_model:
        model = {
            "name": s.vlm_model,
            "base_url": s.effective_vlm_base_url,
            "params": dict(s.vlm_params),
        }
    return build_timeline(
        event,
        job_id,
        plan,
        merged,
        model=model,
        usage=usage,
        cost=cost,
        currency=s.currency,
        refined=refined,
        refine_cost=price_usage(refined.usage, ctx.prices) if refined else 0.0,
        stats=answer_stats(results),
        warnings=job_warnings(
            results,
            localizer=plan.localizer,
            chosen_by_job=event.options.localizer is not None,
            prompt=event.options.prompt,
            labels=event.options.labels,
        ),
        object_size=object_size,
    )


def merged_chunks(plan: JobPlan, results: Sequence[ChunkResult]) -> tuple[DetectedEvent, ...]:
    """The chunks' events joined across chunk edges (so across span edges too) and merged."""
    pieces = [e for r in results for e in r.events]
    frame_period = 1.0 / plan.info.fps if plan.info.fps > 0 else 1e-3
    joined = join_unseparated(
        pieces, plan.times, frame_period, join_instants=plan.kind.joins_instants
    )
    return tuple(merge_events(joined))


def localize_request(event: IngestEvent, plan: JobPlan) -> LocalizeRequest:
    return LocalizeRequest(
        prompt=event.options.prompt,
        labels=tuple(event.options.labels),
        video_duration_s=plan.info.duration_s,
        # The object version, not just the video id: a re-upload under one id is new frames.
        media_id=f"{event.effective_video_id}@{event.version_tag}",
    )
