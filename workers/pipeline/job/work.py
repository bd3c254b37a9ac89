"""The planned job, whatever its frames come from: handed off in spans, one span's chunks, or
the whole video localized chunk by chunk (checkpointed), finished and stored as a timeline."""

from __future__ import annotations

import logging
import time

from contracts import IngestEvent, JobWarning, encode
from contracts.span import VideoSpan
from vidloc import names
from vidloc.errors import InputError, ModelAnswersUnusable, VidlocError
from vidloc.tenancy import tenant_of_key
from workers.frames import source_warnings
from workers.model.cost import price_usage
from workers.pipeline.assemble import assemble, wanted_times
from workers.pipeline.cached_thumbnails import store_cached_thumbnails
from workers.pipeline.fanout import localize_chunks
from workers.pipeline.job.context import JobContext
from workers.pipeline.job.finish import finish_events, job_timeline, localize_request
from workers.pipeline.job.frames import Feed, cache_prefix, chunk_frames, keep_frames
from workers.pipeline.job.outcomes import HandOff, JobOutcome, ProgressFn, SpanOutcome
from workers.pipeline.job_warnings import all_answers_unusable, unusable_message
from workers.pipeline.planning import JobPlan
from workers.pipeline.spans import plan_spans, should_split
from workers.pipeline.thumbnails import FrameKeeper, store_thumbnails
from workers.types import ChunkResult, Localizer, TokenTally

log = logging.getLogger(__name__)


def work(
    ctx: JobContext,
    event: IngestEvent,
    job_id: str,
    progress: ProgressFn,
    may_split: bool,
    plan: JobPlan,
    feed: Feed,
    timings: dict[str, float],
    notes: list[JobWarning],
) -> JobOutcome | HandOff | SpanOutcome:
    """The planned job, whatever its frames come from: handed off in spans, one span's
    chunks, or the whole video to a stored timeline."""
    s = ctx.settings
    video_id = event.effective_video_id
    handed = split(ctx, event, job_id, plan) if may_split else None
    if handed is not None:
        return handed
    localizer = ctx.make_localizer(plan.kind.name)
    log.info(
        "job planned: %d frames in %d chunks at %.2f fps, %dx%d, localizer %s, frames %s",
        len(plan.times),
        len(plan.chunks),
        plan.sample_fps,
        plan.frame_size[0],
        plan.frame_size[1],
        plan.kind.name,
        "decoded" if feed.source is not None else "from the frame cache",
        extra={"video_id": video_id, "job_id": job_id},
    )
    started = time.monotonic()
    if event.span is not None:
        return span_chunks(ctx, event, job_id, plan, feed, localizer, progress)
    # Thumbnails come from the frames this job has anyway (pipeline/thumbnails.py).
    keeper = FrameKeeper()
    results, from_checkpoint = localize(
        ctx, event, job_id, plan, feed, localizer, progress, keep=keeper
    )
    timings["localize_s"] = time.monotonic() - started
    if plan.kind.asks_model and all_answers_unusable(results):
        # Never an empty timeline that looks like "nothing happened".
        raise ModelAnswersUnusable(unusable_message(results))
    started = time.monotonic()
    merged, refined = finish_events(ctx, event, plan, results, feed, localizer, notes)
    timings["refine_s"] = time.monotonic() - started
    sealed = keep_frames(ctx, event, plan, feed)

    progress("merging", len(plan.chunks), len(plan.chunks), "merging chunk events")
    usage = sum((r.usage for r in results), TokenTally())
    if refined is not None:
        usage += refined.usage
        # The refinement's model calls are paid like the chunks' (vidloc_tokens_total).
        ctx.metrics.add_tokens(refined.usage.prompt_tokens, refined.usage.completion_tokens)
    cost = price_usage(usage, ctx.prices)
    rejected = sum(r.rejected_events for r in results)
    if plan.kind.after_merge is not None:
        merged = plan.kind.after_merge(merged, plan.info.duration_s)
    timeline = job_timeline(
        ctx, event, job_id, plan, merged, usage, cost, results, refined, feed.object_size
    )
    # What the probe and the decoders could not do (a decoder abandoned, a partial file).
    decoded = source_warnings(feed.source, plan.info)
    timeline = timeline.model_copy(update={"warnings": [*timeline.warnings, *decoded, *notes]})
    # A tenant's timeline goes under its prefix, like its video (vidloc/tenancy.py); a
    # later analysis beside the first one's.
    key = names.analysis_timeline_key(video_id, event.analysis_id, tenant_of_key(event.source.key))
    folder = key.rsplit("/", 1)[0]

    def put_thumbnail(name: str, jpeg: bytes) -> None:
        ctx.store.put_bytes(s.timeline_bucket, f"{folder}/{name}", jpeg, "image/jpeg")

    timeline = store_thumbnails(timeline, keeper, put_thumbnail)
    if from_checkpoint:
        # Chunks answered from checkpoints (a long video's spans, a resumed job) passed no
        # frame by the keeper: their events' frames come from the frame cache, if kept.
        timeline = store_cached_thumbnails(
            timeline, ctx.frame_cache, cache_prefix(event), sealed, put_thumbnail
        )
    progress("storing", len(plan.chunks), len(plan.chunks), f"storing {key}")
    started = time.monotonic()
    ctx.store.put_bytes(s.timeline_bucket, key, encode(timeline))
    timings["store_s"] = time.monotonic() - started
    # Where each job's own time goes (bench/bench_throughput.py averages these lines).
    log.info(
        "job timings: %s",
        " ".join(f"{name}={value:.3f}" for name, value in timings.items()),
        extra={"video_id": video_id, "job_id": job_id},
    )
    return JobOutcome(
        timeline, s.timeline_bucket, key, usage, cost, from_checkpoint, rejected, timings
    )


def split(ctx: JobContext, event: IngestEvent, job_id: str, plan: JobPlan) -> HandOff | None:
    """The plan's spans for the group, when the video is long enough to split."""
    s = ctx.settings
    if plan.mode != "uniform" or not should_split(plan.info.duration_s, s.span_s, len(plan.chunks)):
        return None
    slots = ctx.span_slots() if ctx.span_slots is not None else 1
    spans = plan_spans(plan.chunks, plan.info.duration_s, s.span_s, slots)
    log.info(
        "long video: %d chunks handed to the group in %d spans (%d span slots in the group)",
        len(plan.chunks),
        len(spans),
        slots,
        extra={"video_id": event.effective_video_id, "job_id": job_id},
    )
    return HandOff(spans, plan.info, len(plan.chunks))


def span_chunks(
    ctx: JobContext,
    event: IngestEvent,
    job_id: str,
    plan: JobPlan,
    feed: Feed,
    localizer: Localizer,
    progress: ProgressFn,
) -> SpanOutcome:
    span = event.span
    assert span is not None
    if len(plan.chunks) != span.chunks_total:
        # Chunk i must mean the same frames on every member, or the merge would mix plans.
        raise InputError(
            f"{span.label}: this worker plans {len(plan.chunks)} chunks where the order "
            f"says {span.chunks_total}; the group's workers must share sampling settings",
            code="span_plan_mismatch",
        )
    results, from_checkpoint = localize(
        ctx, event, job_id, plan, feed, localizer, progress, only=span
    )
    return SpanOutcome(
        tokens=sum((r.usage for r in results), TokenTally()),
        chunks=len(results),
        chunks_from_checkpoint=from_checkpoint,
    )


def localize(
    ctx: JobContext,
    event: IngestEvent,
    job_id: str,
    plan: JobPlan,
    feed: Feed,
    localizer: Localizer,
    progress: ProgressFn,
    only: VideoSpan | None = None,
    keep: FrameKeeper | None = None,
) -> tuple[list[ChunkResult], int]:
    """Every chunk's result in plan order (of ``only``'s chunks, when given), and how many
    came from checkpoints."""
    chunks = [c for c in plan.chunks if only is None or only.owns(c.index)]
    # Checkpoints live under the tenant's prefix, and an answer is reused only for the same
    # object version (the key names the tenant): ids are the sender's to choose, so two
    # tenants' (or two uploads') jobs may share a video id and a job id.
    checkpoints = ctx.checkpoints(event, job_id, plan)
    results, elsewhere = checkpoints.resume(chunks)
    from_checkpoint = len(results)
    # Progress counts the whole video's chunks: those other spans finished count as done.
    total = len(plan.chunks)
    progress(
        "localizing",
        elsewhere + len(results),
        total,
        f"{from_checkpoint} chunks from checkpoints",
    )
    pending = [c for c in chunks if c.index not in results]
    if pending:
        request = localize_request(event, plan)
        timed = ctx.metrics.timed_chunk(plan.localizer, localizer.localize)
        # A progress report that stops the job (a shutdown, the user's cancel) is raised once
        # the chunks already asked have come back and been checkpointed: they are paid for.
        stopped: list[Exception] = []

        def record(result: ChunkResult) -> None:
            results[result.chunk_index] = result
            ctx.metrics.add_tokens(result.usage.prompt_tokens, result.usage.completion_tokens)
            checkpoints.save(result)
            if stopped:
                return
            done = elsewhere + len(results)
            try:
                progress("localizing", done, total, f"chunk {result.chunk_index} done")
            except Exception as exc:
                stopped.append(exc)

        wanted = wanted_times(pending)
        frames, decoding = chunk_frames(ctx, plan, feed, wanted, keep, spanned=only is not None)
        assembled = assemble(pending, wanted, frames)
        localize_chunks(
            assembled if feed.writer is None else feed.writer.tap(assembled),
            lambda chunk, frames: timed(chunk, frames, request),
            workers=ctx.settings.vlm_concurrency if plan.kind.asks_model else 1,
            on_result=record,
            budget=ctx.frame_budget,
            decoding=decoding,
            stop=lambda: bool(stopped),
        )
        if stopped:
            raise stopped[0]
    missing = [c.index for c in chunks if c.index not in results]
    if missing:
        raise VidlocError(f"chunks {missing} produced no result", code="internal")
    return [results[c.index] for c in chunks], from_checkpoint
