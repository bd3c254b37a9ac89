"""A later analysis on kept frames (pure): the plan it asks for, rebuilt from the cache's probe
facts, and what its timeline says when it could not reuse them."""

from __future__ import annotations

from dataclasses import replace

from contracts import IngestEvent, JobWarning
from workers.localizers.kind import LocalizerKind
from workers.pipeline.frame_cache import Manifest, Miss, Sampling
from workers.pipeline.planning import JobPlan, PlanConfig, make_plan, wants_adaptive


def frame_sampling(plan: JobPlan, jpeg_quality: int) -> Sampling:
    """What chose ``plan``'s frames and made them as the model is sent them."""
    return Sampling(
        mode=plan.mode,
        sample_fps=plan.sample_fps,
        chunk_s=plan.chunk_s,
        overlap_s=plan.overlap_s,
        frame_size=plan.frame_size,
        jpeg_quality=jpeg_quality,
        token_budget_per_min=plan.token_budget_per_min,
        chunks=plan.chunks,
    )


def cached_plan(
    manifest: Manifest, event: IngestEvent, config: PlanConfig, kind: LocalizerKind
) -> JobPlan:
    """The plan ``event`` asks for, made from the kept probe facts instead of a probe.

    Uniform sampling is planned again (the same facts and options give the same chunks). An
    adaptive plan needs the pre-pass, which decodes: it takes the kept plan's instants and cuts
    when the kept plan was adaptive too (the fingerprint then compares the rest: rate, chunking,
    frame size, budget).
    """
    plan = make_plan(manifest.info, event, config, kind, None)
    kept = manifest.sampling
    if wants_adaptive(event, config) and kind.samples_adaptively and kept.mode == "adaptive":
        budget = event.options.token_budget_per_min or config.token_budget_per_min
        plan = replace(
            plan,
            times=tuple(sorted({t for c in kept.chunks for t in c.times})),
            chunks=kept.chunks,
            mode="adaptive",
            token_budget_per_min=budget,
            cuts=manifest.cuts,
        )
    return plan


def miss_warning(miss: Miss) -> JobWarning:
    return JobWarning(code="frame_cache_miss", message=miss.message)


def refine_skipped() -> JobWarning:
    return JobWarning(
        code="refine_skipped",
        message="boundaries kept at the sampled frames: refining them would decode the frames "
        "between the kept ones, and this analysis decodes nothing",
    )
