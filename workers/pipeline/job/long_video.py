"""A long video's paths (docs/delivery.md): handed off in spans, each span run by a member,
partial timelines while they run, and the merge, all without downloading the object: probes and
decoders read it by ranges (workers/frames/ranged_probe.py)."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from contracts import SPANS_PENDING, IngestEvent, JobWarning, encode
from vidloc import names
from vidloc.adapters.ranged_reader import ReadStats
from vidloc.tenancy import tenant_of_key
from workers.frames import close_source
from workers.localizers.kind import LocalizerKind
from workers.model.cost import price_usage
from workers.pipeline.decoded import CountedSource
from workers.pipeline.job.context import JobContext
from workers.pipeline.job.finish import job_timeline, merged_chunks
from workers.pipeline.job.frames import decoding
from workers.pipeline.job.outcomes import HandOff, JobOutcome, ProgressFn, SpanOutcome
from workers.pipeline.job.work import span_chunks, split, work
from workers.pipeline.planning import JobPlan, make_plan
from workers.types import RangedFrameSource, TokenTally, VideoInfo

log = logging.getLogger(__name__)


def hand_off_by_ranges(
    ctx: JobContext, event: IngestEvent, job_id: str, progress: ProgressFn, kind: LocalizerKind
) -> HandOff | None:
    """A long video handed off without its download or a scan of every packet. None: a
    video this worker runs itself, or one the full probe must tell (the caller downloads
    it)."""
    assert ctx.open_ranged is not None
    source = ctx.open_ranged(event)
    try:
        info = _probe_by_ranges(event, job_id, progress, source, "hand-off")
    finally:
        close_source(source)
    if info is None:
        return None
    handed = split(ctx, event, job_id, make_plan(info, event, ctx.plan_config, kind, None))
    if handed is None:
        return None
    stats = source.read_stats
    _log_reads("hand-off", stats, event.effective_video_id, job_id)
    return replace(handed, bytes_fetched=stats.fetched, object_bytes=stats.size)


def run_span_ranged(
    ctx: JobContext, event: IngestEvent, job_id: str, progress: ProgressFn
) -> SpanOutcome:
    """A span without the download or the probe: the plan comes from the probe facts the
    order carries, and the decoder reads only the part of the object its chunks need."""
    span = event.span
    assert span is not None and ctx.open_ranged is not None
    video_id = event.effective_video_id
    where = f"{event.source.bucket}/{event.source.key}"
    progress("downloading", 0, 0, f"reading {span.label} of s3://{where} by ranges")
    source = CountedSource(ctx.open_ranged(event), ctx.metrics)
    try:
        plan = _span_plan(ctx, event)
        localizer = ctx.make_localizer(plan.kind.name)
        feed = decoding(ctx, event, plan, source, where, None)
        outcome = span_chunks(ctx, event, job_id, plan, feed, localizer, progress)
    finally:
        close_source(source)
    stats = getattr(source, "read_stats", None)
    if stats is None:
        return outcome
    ctx.metrics.add_span_read(stats.fetched)
    _log_reads(span.label, stats, video_id, job_id)
    return replace(outcome, bytes_fetched=stats.fetched, object_bytes=stats.size)


def merge_by_ranges(
    ctx: JobContext, whole: IngestEvent, job_id: str, progress: ProgressFn, kind: LocalizerKind
) -> JobOutcome | None:
    """The whole video from its chunks' checkpoints, probed by ranges; the refinement's
    decoder reads by ranges the few stretches it looks at. None: only the full probe can tell
    this file (the caller downloads it)."""
    assert ctx.open_ranged is not None
    where = f"{whole.source.bucket}/{whole.source.key}"
    source = CountedSource(ctx.open_ranged(whole), ctx.metrics)
    try:
        probed = _probe_by_ranges(whole, job_id, progress, source, "merge")
        if probed is None:
            return None
        plan = make_plan(probed, whole, ctx.plan_config, kind, None)
        feed = decoding(ctx, whole, plan, source, where, source.read_stats.size)
        outcome = work(ctx, whole, job_id, progress, False, plan, feed, {}, [])
    finally:
        close_source(source)
    _log_reads("merge", source.read_stats, whole.effective_video_id, job_id)
    assert isinstance(outcome, JobOutcome)
    return outcome


def partial(ctx: JobContext, event: IngestEvent, job_id: str, reported: int) -> JobOutcome:
    """The timeline so far of a long video whose spans are still running: the chunks
    checkpointed by now, merged (no refinement yet), stored where the final one will be.

    Nothing is downloaded or decoded: the plan is rebuilt from the probe facts the spans
    carry, and the chunks come from their checkpoints.
    """
    span = event.span
    assert span is not None
    s = ctx.settings
    plan = _span_plan(ctx, event)
    kind = plan.kind
    tenant = tenant_of_key(event.source.key)
    found, _ = ctx.checkpoints(event, job_id, plan).resume(plan.chunks)
    results = [found[c.index] for c in plan.chunks if c.index in found]
    merged = merged_chunks(plan, results)
    if kind.after_merge is not None:
        merged = kind.after_merge(merged, plan.info.duration_s)
    usage = sum((r.usage for r in results), TokenTally())
    cost = price_usage(usage, ctx.prices)
    timeline = job_timeline(ctx, event, job_id, plan, merged, usage, cost, results)
    pending = JobWarning(
        code=SPANS_PENDING,
        message=f"partial: {reported} of {span.count} spans done "
        f"({len(results)} of {len(plan.chunks)} chunks); the final timeline replaces this one",
    )
    timeline = timeline.model_copy(update={"warnings": [*timeline.warnings, pending]})
    key = names.analysis_timeline_key(event.effective_video_id, event.analysis_id, tenant)
    ctx.store.put_bytes(s.timeline_bucket, key, encode(timeline))
    rejected = sum(r.rejected_events for r in results)
    return JobOutcome(timeline, s.timeline_bucket, key, usage, cost, len(results), rejected)


def _span_plan(ctx: JobContext, event: IngestEvent) -> JobPlan:
    """The plan every member of the group makes of the video, from the probe facts its span
    orders carry (no probe of its own)."""
    assert event.span is not None
    video = event.span.video
    info = VideoInfo(video.duration_s, video.fps, video.width, video.height, video.codec)
    return make_plan(info, event, ctx.plan_config, ctx.kind(event), None)


def _probe_by_ranges(
    event: IngestEvent,
    job_id: str,
    progress: ProgressFn,
    source: RangedFrameSource,
    purpose: str,
) -> VideoInfo | None:
    """The probe's facts from the object's header and end, read by ranges; None when only
    a download and a scan of every packet can tell (workers/frames/ranged_probe.py)."""
    progress("probing", 0, 0, f"probing s3://{event.source.bucket}/{event.source.key}")
    started = time.monotonic()
    probed = source.probe_by_ranges()
    stats = probed.stats
    log.info(
        "%s probe by ranges: %d of %d bytes (%.1f%%) in %d requests, %.2f s; %s",
        purpose,
        stats.fetched,
        stats.size,
        100.0 * stats.fetched / stats.size if stats.size else 0.0,
        stats.requests,
        time.monotonic() - started,
        probed.reason if probed.info is None else "from the " + probed.reason,
        extra={"video_id": event.effective_video_id, "job_id": job_id},
    )
    return probed.info


def _log_reads(step: str, stats: ReadStats, video_id: str, job_id: str) -> None:
    """What ``step`` (the hand-off, a span, the merge) read of the object by ranges."""
    log.info(
        "%s read %d of %d bytes (%.1f%%) in %d range requests",
        step,
        stats.fetched,
        stats.size,
        100.0 * stats.fetched / stats.size if stats.size else 0.0,
        stats.requests,
        extra={"video_id": video_id, "job_id": job_id},
    )
