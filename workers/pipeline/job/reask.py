"""A later analysis of an analysed video (docs/analyses.md): run on the frames its video's
frame cache keeps when they fit the new plan, else told why the job decodes after all."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from contracts import IngestEvent, JobWarning
from vidloc import names
from vidloc.errors import FrameCacheUnreadable, InputError, ObjectMissing
from vidloc.tenancy import tenant_of_key
from workers.localizers.kind import LocalizerKind
from workers.pipeline.frame_cache import CACHE_OFF, PIXELS_NEEDED, UNREADABLE, Miss, judge
from workers.pipeline.job.context import JobContext
from workers.pipeline.job.frames import Feed, cache_prefix
from workers.pipeline.job.outcomes import HandOff, JobOutcome, ProgressFn, SpanOutcome
from workers.pipeline.job.work import work
from workers.pipeline.planning import JobPlan
from workers.pipeline.reuse import cached_plan, frame_sampling, miss_warning
from workers.types import FrameSample

log = logging.getLogger(__name__)


def require_first_analysis(ctx: JobContext, event: IngestEvent) -> None:
    """A later analysis is asked of an analysed video (its first timeline stored)."""
    key = names.timeline_key(event.effective_video_id, tenant_of_key(event.source.key))
    try:
        ctx.store.get_bytes(ctx.settings.timeline_bucket, key)
    except ObjectMissing:
        raise InputError(
            f"video {event.effective_video_id} has no first analysis yet; submit it first",
            code="video_not_analysed",
        ) from None


def from_cache_or_note(
    ctx: JobContext,
    event: IngestEvent,
    job_id: str,
    progress: ProgressFn,
    may_split: bool,
    kind: LocalizerKind,
    notes: list[JobWarning],
) -> JobOutcome | HandOff | SpanOutcome | None:
    """A later analysis run on the frames its video's cache keeps; None (and why, in
    ``notes``) when it holds none for this plan: the caller decodes."""
    found = from_cache(ctx, event, kind)
    if not isinstance(found, Miss):
        plan, feed = found
        try:
            return work(ctx, event, job_id, progress, may_split, plan, feed, {}, [])
        except FrameCacheUnreadable as exc:
            # The chunks localized so far are checkpointed: decoding pays for the rest.
            log.warning("frame cache failed mid-job (%s); decoding instead", exc)
            found = Miss(UNREADABLE, str(exc))
    ctx.metrics.frame_cache_lookup(found.reason)
    notes.append(miss_warning(found))
    return None


def from_cache(
    ctx: JobContext, event: IngestEvent, kind: LocalizerKind
) -> tuple[JobPlan, Feed] | Miss:
    cache = ctx.frame_cache
    if cache is None:
        return Miss(CACHE_OFF)
    if not kind.asks_model:
        return Miss(PIXELS_NEEDED)
    prefix = cache_prefix(event)
    manifest = cache.manifest(prefix)
    if isinstance(manifest, Miss):
        return manifest
    plan = cached_plan(manifest, event, ctx.plan_config, kind)
    fingerprint = frame_sampling(plan, ctx.settings.vlm_jpeg_quality).fingerprint()
    span = event.span
    chunks = [c for c in plan.chunks if span is None or span.owns(c.index)]
    miss = judge(manifest, fingerprint, cache.clock(), cache.ttl_days) or cache.present(
        prefix, manifest, chunks
    )
    if miss is not None:
        return miss
    ctx.metrics.frame_cache_lookup(None)
    log.info(
        "frames from the frame cache: %d frames, %d bytes (%.0f bytes per video-minute)",
        manifest.frames,
        manifest.bytes,
        manifest.bytes_per_minute(),
    )

    def frames(wanted: Sequence[float]) -> Iterable[FrameSample]:
        return cache.frames(prefix, manifest, wanted)

    return plan, Feed(frames, object_size=manifest.object_size or None)
