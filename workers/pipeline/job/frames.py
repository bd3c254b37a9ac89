"""Where a job's frames come from (its decoder, or the frame cache an earlier analysis filled),
and keeping the decoded ones for later analyses (docs/analyses.md)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from contracts import IngestEvent
from vidloc import names
from vidloc.tenancy import tenant_of_key
from workers.frames import close_source
from workers.pipeline.ahead import decoded_ahead
from workers.pipeline.frame_cache import Manifest
from workers.pipeline.frame_store import PartWriter, as_sent, jpeg_only
from workers.pipeline.job.context import JobContext
from workers.pipeline.planning import JobPlan
from workers.pipeline.reuse import frame_sampling
from workers.pipeline.thumbnails import FrameKeeper
from workers.types import FrameSample, FrameSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Feed:
    """Where a job's frames come from: its decoder (``source`` reading ``path``), or the frame
    cache (no source: nothing can be decoded, so refinement keeps the coarse boundaries)."""

    frames: Callable[[Sequence[float]], Iterable[FrameSample]]
    source: FrameSource | None = None
    path: Path | None = None
    writer: PartWriter | None = None  # keeps the decoded frames for later analyses
    object_size: int | None = None


def decoding(
    ctx: JobContext,
    event: IngestEvent,
    plan: JobPlan,
    source: FrameSource,
    path: Path | str,
    object_size: int | None,
) -> Feed:
    """Frames from the job's decoder; with the cache on, each encoded once as the model
    is sent it and kept, chunk by chunk, for later analyses."""
    quality = ctx.settings.vlm_jpeg_quality
    writer = None
    if ctx.frame_cache is not None and plan.kind.asks_model:
        fingerprint = frame_sampling(plan, quality).fingerprint()
        writer = ctx.frame_cache.writer(cache_prefix(event), fingerprint, plan.chunks)

    def frames(wanted: Sequence[float]) -> Iterable[FrameSample]:
        decoded = source.frames(str(path), wanted, plan.frame_size)
        return decoded if writer is None else as_sent(decoded, quality)

    return Feed(frames, source, Path(path), writer, object_size)


def chunk_frames(
    ctx: JobContext,
    plan: JobPlan,
    feed: Feed,
    wanted: Sequence[float],
    keep: FrameKeeper | None,
    *,
    spanned: bool,
) -> tuple[Iterable[FrameSample], threading.Semaphore | None]:
    """The frames ``wanted``, as the chunk pipeline takes them, and the decoding slots it should
    take around each chunk (None: the frames' own thread takes them)."""
    quality = ctx.settings.vlm_jpeg_quality

    def decoded(times: Sequence[float]) -> Iterable[FrameSample]:
        frames = feed.frames(times) if keep is None else keep.tap(feed.frames(times))
        # The pixels go once the keeper has seen them: chunks wait for the model as JPEGs.
        return jpeg_only(frames, quality) if plan.kind.sees_jpeg else frames

    source = feed.source
    if not (spanned and source is not None and plan.kind.sees_jpeg):
        return decoded(wanted), ctx.decode_slots
    # A span is decoded ahead and its decoder ended; that thread takes the decoding slots
    # itself (a chunk waiting on it must not hold one).
    ahead = decoded_ahead(
        decoded,
        wanted,
        gate=ctx.span_decoders,
        decoding=ctx.decode_slots,
        ended=lambda: close_source(source),
    )
    return ahead, None


def keep_frames(ctx: JobContext, event: IngestEvent, plan: JobPlan, feed: Feed) -> Manifest | None:
    """Seal the cache this whole-video job (or its spans) filled: the manifest goes last,
    once every part is stored. The manifest written, or None."""
    cache, writer = ctx.frame_cache, feed.writer
    if cache is None or writer is None or writer.failed:
        return None
    sampling = frame_sampling(plan, ctx.settings.vlm_jpeg_quality)
    source = {
        "bucket": event.source.bucket,
        "key": event.source.key,
        "etag": event.source.etag,
        "version_tag": event.version_tag,
    }
    sealed = cache.seal(
        cache_prefix(event),
        Manifest(
            sampling.fingerprint(),
            0.0,
            plan.info,
            sampling,
            (),
            0,
            0,
            feed.object_size or 0,
            source,
            plan.cuts,
        ),
    )
    if sealed is not None:
        # The size accounting of docs/analyses.md, per job.
        log.info(
            "frame cache: %d frames kept, %d bytes, %.0f bytes per video-minute",
            sealed.frames,
            sealed.bytes,
            sealed.bytes_per_minute(),
        )
    return sealed


def cache_prefix(event: IngestEvent) -> str:
    # Tenant and object version in the key: another tenant's video of the same id, or a
    # re-upload of the same key, never reads these frames.
    return names.frame_cache_prefix(
        event.effective_video_id, event.version_tag, tenant_of_key(event.source.key)
    )
