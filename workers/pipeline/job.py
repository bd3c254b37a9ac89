"""One job: an ingest event in, a stored timeline out.

fetch object -> probe -> plan -> sample (streamed) -> localize chunk by chunk (concurrently, with
checkpoints) -> merge -> store timeline. The consumer loop around it owns Kafka; this module owns
the order of the work and nothing about transport.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from contracts import IngestEvent, JobWarning, Timeline, encode
from contracts.span import VideoSpan
from vidloc import names
from vidloc.errors import (
    FrameCacheUnreadable,
    InputError,
    ModelAnswersUnusable,
    ObjectMissing,
    VidlocError,
)
from vidloc.metrics import Metrics
from vidloc.settings import Settings
from vidloc.tenancy import tenant_of_key
from workers.frames import close_source, source_warnings
from workers.frames.adaptive import (
    frames_for_budget,
    snap_to_cut,
)
from workers.frames.prepass import run_prepass
from workers.localizers.kind import LocalizerKind
from workers.localizers.registry import localizer_kind
from workers.model.cost import Prices, price_usage
from workers.pipeline.assemble import assemble, wanted_times
from workers.pipeline.cached_thumbnails import store_cached_thumbnails
from workers.pipeline.decoded import CountedSource
from workers.pipeline.fanout import localize_chunks
from workers.pipeline.frame_cache import (
    CACHE_OFF,
    PIXELS_NEEDED,
    UNREADABLE,
    Manifest,
    Miss,
    judge,
)
from workers.pipeline.frame_store import FrameStore, PartWriter, as_sent
from workers.pipeline.job_checkpoints import JobCheckpoints, job_fingerprint
from workers.pipeline.job_warnings import (
    all_answers_unusable,
    answer_stats,
    job_warnings,
    unusable_message,
)
from workers.pipeline.join import join_unseparated
from workers.pipeline.merge import merge_events
from workers.pipeline.planning import (
    JobPlan,
    PlanConfig,
    frame_budget_tokens,
    make_plan,
    wants_adaptive,
)
from workers.pipeline.reuse import cached_plan, frame_sampling, miss_warning, refine_skipped
from workers.pipeline.spans import Span, plan_spans, should_split
from workers.pipeline.thumbnails import FrameKeeper, store_thumbnails
from workers.pipeline.timeline import build_timeline
from workers.refinement.refine import RefineOutcome, refine_events
from workers.types import (
    ChunkResult,
    DetectedEvent,
    FrameSample,
    FrameSource,
    Localizer,
    LocalizeRequest,
    RangedFrameSource,
    TokenTally,
    VideoInfo,
)

log = logging.getLogger(__name__)


class JobStore(Protocol):
    """The part of the object store a job uses."""

    def download(
        self, bucket: str, key: str, dest: Path, *, max_bytes: int, expected_etag: str | None = None
    ) -> Any: ...

    def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str = "application/json"
    ) -> Any: ...

    def get_bytes(self, bucket: str, key: str) -> bytes: ...

    def list_keys(self, bucket: str, prefix: str = "") -> Iterator[str]: ...

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[Any]: ...


ProgressFn = Callable[[str, int, int, str], None]  # stage, chunks_done, chunks_total, message


@dataclass
class JobOutcome:
    timeline: Timeline
    timeline_bucket: str
    timeline_key: str
    usage: TokenTally
    cost: float
    chunks_from_checkpoint: int = 0
    rejected_events: int = 0
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class HandOff:
    """A long video's plan: its spans go to the group instead of this worker running them."""

    spans: tuple[Span, ...]
    info: VideoInfo
    chunks_total: int
    # What planning it read from the store by ranges, of the object's size (0: downloaded).
    bytes_fetched: int = 0
    object_bytes: int = 0


@dataclass(frozen=True)
class _Feed:
    """Where a job's frames come from: its decoder (``source`` reading ``path``), or the frame
    cache (no source: nothing can be decoded, so refinement keeps the coarse boundaries)."""

    frames: Callable[[Sequence[float]], Iterable[FrameSample]]
    source: FrameSource | None = None
    path: Path | None = None
    writer: PartWriter | None = None  # keeps the decoded frames for later analyses
    object_size: int | None = None


@dataclass(frozen=True)
class SpanOutcome:
    """One span's chunks, done and checkpointed."""

    tokens: TokenTally
    chunks: int
    chunks_from_checkpoint: int
    # What its decoder fetched from the store by ranges, of the object's size (0: downloaded).
    bytes_fetched: int = 0
    object_bytes: int = 0


class JobRunner:
    """Runs one ingest event to a stored timeline; keeps no per-job state, so the jobs of one
    worker share it across threads."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        open_source: Callable[[Path], tuple[FrameSource, VideoInfo]],
        make_localizer: Callable[[str], Localizer],
        metrics: Metrics | None = None,
        frame_budget: threading.Semaphore | None = None,
        decode_slots: threading.Semaphore | None = None,
        open_ranged: Callable[[IngestEvent], RangedFrameSource] | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        # A span's video read by ranges from the store (None: spans download the whole object).
        self._open_ranged = open_ranged
        # Chunks of decoded frames held at once across every job sharing it (a worker's memory
        # bound when it runs several jobs); None: each job's own bound only.
        self._frame_budget = frame_budget
        # Chunks decoded at once across the jobs (None: no cap); see fanout.localize_chunks.
        self._decode_slots = decode_slots
        self._settings = settings
        self._plan_config = PlanConfig.from_settings(settings)
        self._store = store
        self._open_source = open_source
        self._make_localizer = make_localizer
        self._prices = Prices(
            settings.price_input_per_1k, settings.price_output_per_1k, settings.currency
        )
        # Kept frames (docs/analyses.md); None: VIDLOC_FRAME_CACHE_TTL_DAYS=0.
        self._frame_cache = (
            FrameStore(store, settings.timeline_bucket, settings.frame_cache_ttl_days)
            if settings.frame_cache_ttl_days > 0
            else None
        )

    @property
    def store(self) -> JobStore:
        """The object store the jobs use (the span ledger of a long video lives there too)."""
        return self._store

    def run(self, event: IngestEvent, job_id: str, progress: ProgressFn) -> JobOutcome:
        """The whole video on this worker: every chunk not checkpointed yet, then the merge."""
        outcome = self._run(event.model_copy(update={"span": None}), job_id, progress, False)
        assert isinstance(outcome, JobOutcome)
        return outcome

    def run_or_hand_off(
        self, event: IngestEvent, job_id: str, progress: ProgressFn
    ) -> JobOutcome | HandOff:
        """:meth:`run`, unless the video is long enough to split: then its spans, for the group."""
        outcome = self._run(event.model_copy(update={"span": None}), job_id, progress, True)
        assert not isinstance(outcome, SpanOutcome)
        return outcome

    def merge(self, event: IngestEvent, job_id: str, progress: ProgressFn) -> JobOutcome:
        """:meth:`run` for the report that completes a long video: every chunk comes from its
        checkpoint, so the video is not downloaded: it is probed by ranges, and the
        refinement's decoder reads by ranges the few stretches it looks at. A file only the
        full probe can tell is downloaded as before."""
        whole = event.model_copy(update={"span": None})
        kind = localizer_kind(whole.options.localizer or self._settings.effective_localizer)
        if (
            self._open_ranged is None
            or whole.analysis is not None
            or (wants_adaptive(whole, self._plan_config) and kind.samples_adaptively)
        ):
            return self.run(whole, job_id, progress)
        where = f"{whole.source.bucket}/{whole.source.key}"
        source = CountedSource(self._open_ranged(whole), self._metrics)
        try:
            probed = self._probe_by_ranges(whole, job_id, progress, source, "merge")
            if probed is None:
                close_source(source)
                return self.run(whole, job_id, progress)
            plan = make_plan(probed, whole, self._plan_config, kind, None)
            feed = self._decoding(whole, plan, source, where, source.read_stats.size)
            outcome = self._work(whole, job_id, progress, False, plan, feed, {}, [])
        finally:
            close_source(source)
        stats = source.read_stats
        log.info(
            "merge read %d of %d bytes (%.1f%%) in %d range requests",
            stats.fetched,
            stats.size,
            100.0 * stats.fetched / stats.size if stats.size else 0.0,
            stats.requests,
            extra={"video_id": whole.effective_video_id, "job_id": job_id},
        )
        assert isinstance(outcome, JobOutcome)
        return outcome

    def _probe_by_ranges(
        self,
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

    def _hand_off_by_ranges(
        self, event: IngestEvent, job_id: str, progress: ProgressFn, kind: LocalizerKind
    ) -> HandOff | None:
        """A long video handed off without its download or a scan of every packet. None: a
        video this worker runs itself, or one the full probe must tell (the caller downloads
        it)."""
        assert self._open_ranged is not None
        source = self._open_ranged(event)
        try:
            info = self._probe_by_ranges(event, job_id, progress, source, "hand-off")
        finally:
            close_source(source)
        if info is None:
            return None
        handed = self._split(event, job_id, make_plan(info, event, self._plan_config, kind, None))
        if handed is None:
            return None
        stats = source.read_stats
        log.info(
            "hand-off read %d of %d bytes (%.1f%%) in %d range requests",
            stats.fetched,
            stats.size,
            100.0 * stats.fetched / stats.size if stats.size else 0.0,
            stats.requests,
            extra={"video_id": event.effective_video_id, "job_id": job_id},
        )
        return replace(handed, bytes_fetched=stats.fetched, object_bytes=stats.size)

    def _split(self, event: IngestEvent, job_id: str, plan: JobPlan) -> HandOff | None:
        """The plan's spans for the group, when the video is long enough to split."""
        s = self._settings
        if plan.mode != "uniform" or not should_split(
            plan.info.duration_s, s.span_s, len(plan.chunks)
        ):
            return None
        spans = plan_spans(plan.chunks, plan.info.duration_s, s.span_s)
        log.info(
            "long video: %d chunks handed to the group in %d spans",
            len(plan.chunks),
            len(spans),
            extra={"video_id": event.effective_video_id, "job_id": job_id},
        )
        return HandOff(spans, plan.info, len(plan.chunks))

    def run_span(self, event: IngestEvent, job_id: str, progress: ProgressFn) -> SpanOutcome:
        """The chunks of ``event.span`` only (an order): decoded from the span's start, each
        checkpointed, so whoever merges (or redoes this span) pays none of them again."""
        assert event.span is not None
        if event.analysis is not None:
            kind = localizer_kind(event.options.localizer or self._settings.effective_localizer)
            cached = self._from_cache_or_note(event, job_id, progress, False, kind, [])
            if cached is not None:
                assert isinstance(cached, SpanOutcome)
                return cached
        if self._open_ranged is not None:
            return self._run_span_ranged(event, job_id, progress)
        outcome = self._run(event, job_id, progress, False)
        assert isinstance(outcome, SpanOutcome)
        return outcome

    def _run_span_ranged(
        self, event: IngestEvent, job_id: str, progress: ProgressFn
    ) -> SpanOutcome:
        """A span without the download or the probe: the plan comes from the probe facts the
        order carries, and the decoder reads only the part of the object its chunks need."""
        span = event.span
        assert span is not None and self._open_ranged is not None
        s = self._settings
        video_id = event.effective_video_id
        where = f"{event.source.bucket}/{event.source.key}"
        progress("downloading", 0, 0, f"reading {span.label} of s3://{where} by ranges")
        source = CountedSource(self._open_ranged(event), self._metrics)
        try:
            kind = localizer_kind(event.options.localizer or s.effective_localizer)
            video = span.video
            info = VideoInfo(video.duration_s, video.fps, video.width, video.height, video.codec)
            plan = make_plan(info, event, self._plan_config, kind, None)
            localizer = self._make_localizer(kind.name)
            feed = self._decoding(event, plan, source, where, None)
            outcome = self._span_chunks(event, job_id, plan, feed, localizer, progress)
        finally:
            close_source(source)
        stats = getattr(source, "read_stats", None)
        if stats is None:
            return outcome
        self._metrics.add_span_read(stats.fetched)
        log.info(
            "%s read %d of %d bytes (%.1f%%) in %d range requests",
            span.label,
            stats.fetched,
            stats.size,
            100.0 * stats.fetched / stats.size if stats.size else 0.0,
            stats.requests,
            extra={"video_id": video_id, "job_id": job_id},
        )
        return replace(outcome, bytes_fetched=stats.fetched, object_bytes=stats.size)

    def _run(
        self, event: IngestEvent, job_id: str, progress: ProgressFn, may_split: bool
    ) -> JobOutcome | HandOff | SpanOutcome:
        s = self._settings
        timings: dict[str, float] = {}
        kind = localizer_kind(event.options.localizer or s.effective_localizer)
        notes: list[JobWarning] = []  # for the timeline: why this job decoded after all
        if event.analysis is not None:
            if event.span is None:
                self._require_first_analysis(event)
            cached = self._from_cache_or_note(event, job_id, progress, may_split, kind, notes)
            if cached is not None:
                return cached
        adaptive = wants_adaptive(event, self._plan_config) and kind.samples_adaptively
        if may_split and s.span_s > 0 and self._open_ranged is not None and not adaptive:
            # A long video's member only plans it: its header and end say enough.
            handed = self._hand_off_by_ranges(event, job_id, progress, kind)
            if handed is not None:
                return handed
        with (
            tempfile.TemporaryDirectory(prefix="vidloc-job-", dir=s.work_dir) as tmp,
            contextlib.ExitStack() as job_scoped,
        ):
            path = Path(tmp) / "video"
            progress("downloading", 0, 0, f"fetching s3://{event.source.bucket}/{event.source.key}")
            started = time.monotonic()
            self._store.download(
                event.source.bucket,
                event.source.key,
                path,
                max_bytes=s.max_object_bytes,
                expected_etag=event.source.etag,
            )
            timings["download_s"] = time.monotonic() - started
            object_size = path.stat().st_size

            progress("probing", 0, 0, "probing")
            started = time.monotonic()
            opened, info = self._open_source(path)
            source = CountedSource(opened, self._metrics)
            # The job's one decoder child serves the probe, the frames and the refinement.
            job_scoped.callback(close_source, source)
            timings["probe_s"] = time.monotonic() - started
            prepass = None
            if adaptive:
                progress("probing", 0, 0, "pre-pass: where does the picture change")
                started = time.monotonic()
                prepass = run_prepass(
                    source, str(path), info, fps=s.prepass_fps, long_side=s.prepass_long_side
                )
                timings["prepass_s"] = time.monotonic() - started
            plan = make_plan(info, event, self._plan_config, kind, prepass)
            feed = self._decoding(event, plan, source, path, object_size)
            return self._work(event, job_id, progress, may_split, plan, feed, timings, notes)

    def _work(
        self,
        event: IngestEvent,
        job_id: str,
        progress: ProgressFn,
        may_split: bool,
        plan: JobPlan,
        feed: _Feed,
        timings: dict[str, float],
        notes: list[JobWarning],
    ) -> JobOutcome | HandOff | SpanOutcome:
        """The planned job, whatever its frames come from: handed off in spans, one span's
        chunks, or the whole video to a stored timeline."""
        s = self._settings
        video_id = event.effective_video_id
        handed = self._split(event, job_id, plan) if may_split else None
        if handed is not None:
            return handed
        localizer = self._make_localizer(plan.kind.name)
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
            return self._span_chunks(event, job_id, plan, feed, localizer, progress)
        # Thumbnails come from the frames this job has anyway (pipeline/thumbnails.py).
        keeper = FrameKeeper()
        results, from_checkpoint = self._localize(
            event, job_id, plan, feed, localizer, progress, keep=keeper
        )
        timings["localize_s"] = time.monotonic() - started
        if plan.kind.asks_model and all_answers_unusable(results):
            # Never an empty timeline that looks like "nothing happened".
            raise ModelAnswersUnusable(unusable_message(results))
        started = time.monotonic()
        merged, refined = self._finish_events(event, plan, results, feed, localizer, notes)
        timings["refine_s"] = time.monotonic() - started
        sealed = self._keep_frames(event, plan, feed)

        progress("merging", len(plan.chunks), len(plan.chunks), "merging chunk events")
        usage = sum((r.usage for r in results), TokenTally())
        if refined is not None:
            usage += refined.usage
            # The refinement's model calls are paid like the chunks' (vidloc_tokens_total).
            self._metrics.add_tokens(refined.usage.prompt_tokens, refined.usage.completion_tokens)
        cost = price_usage(usage, self._prices)
        rejected = sum(r.rejected_events for r in results)
        if plan.kind.after_merge is not None:
            merged = plan.kind.after_merge(merged, plan.info.duration_s)
        timeline = self._timeline(
            event, job_id, plan, merged, usage, cost, results, refined, feed.object_size
        )
        # What the probe and the decoders could not do (a decoder abandoned, a partial file).
        decoded = source_warnings(feed.source, plan.info)
        timeline = timeline.model_copy(update={"warnings": [*timeline.warnings, *decoded, *notes]})
        # A tenant's timeline goes under its prefix, like its video (vidloc/tenancy.py); a
        # later analysis beside the first one's.
        key = names.analysis_timeline_key(
            video_id, event.analysis_id, tenant_of_key(event.source.key)
        )
        folder = key.rsplit("/", 1)[0]

        def put_thumbnail(name: str, jpeg: bytes) -> None:
            self._store.put_bytes(s.timeline_bucket, f"{folder}/{name}", jpeg, "image/jpeg")

        timeline = store_thumbnails(timeline, keeper, put_thumbnail)
        if from_checkpoint:
            # Chunks answered from checkpoints (a long video's spans, a resumed job) passed no
            # frame by the keeper: their events' frames come from the frame cache, if kept.
            timeline = store_cached_thumbnails(
                timeline, self._frame_cache, self._cache_prefix(event), sealed, put_thumbnail
            )
        progress("storing", len(plan.chunks), len(plan.chunks), f"storing {key}")
        started = time.monotonic()
        self._store.put_bytes(s.timeline_bucket, key, encode(timeline))
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

    def _localize(
        self,
        event: IngestEvent,
        job_id: str,
        plan: JobPlan,
        feed: _Feed,
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
        checkpoints = self._checkpoints(event, job_id, plan)
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
            request = _request(event, plan)
            timed = self._metrics.timed_chunk(plan.localizer, localizer.localize)

            def record(result: ChunkResult) -> None:
                results[result.chunk_index] = result
                self._metrics.add_tokens(result.usage.prompt_tokens, result.usage.completion_tokens)
                checkpoints.save(result)
                done = elsewhere + len(results)
                progress("localizing", done, total, f"chunk {result.chunk_index} done")

            wanted = wanted_times(pending)
            assembled = assemble(pending, wanted, _kept(feed.frames(wanted), keep))
            localize_chunks(
                assembled if feed.writer is None else feed.writer.tap(assembled),
                lambda chunk, frames: timed(chunk, frames, request),
                workers=self._settings.vlm_concurrency if plan.kind.asks_model else 1,
                on_result=record,
                budget=self._frame_budget,
                decoding=self._decode_slots,
            )
        missing = [c.index for c in chunks if c.index not in results]
        if missing:
            raise VidlocError(f"chunks {missing} produced no result", code="internal")
        return [results[c.index] for c in chunks], from_checkpoint

    # -- frames: decoded, or kept by an earlier analysis (docs/analyses.md) -------------------

    def _decoding(
        self,
        event: IngestEvent,
        plan: JobPlan,
        source: FrameSource,
        path: Path | str,
        object_size: int | None,
    ) -> _Feed:
        """Frames from the job's decoder; with the cache on, each encoded once as the model
        is sent it and kept, chunk by chunk, for later analyses."""
        quality = self._settings.vlm_jpeg_quality
        writer = None
        if self._frame_cache is not None and plan.kind.asks_model:
            fingerprint = frame_sampling(plan, quality).fingerprint()
            writer = self._frame_cache.writer(self._cache_prefix(event), fingerprint, plan.chunks)

        def frames(wanted: Sequence[float]) -> Iterable[FrameSample]:
            decoded = source.frames(str(path), wanted, plan.frame_size)
            return decoded if writer is None else as_sent(decoded, quality)

        return _Feed(frames, source, Path(path), writer, object_size)

    def _from_cache_or_note(
        self,
        event: IngestEvent,
        job_id: str,
        progress: ProgressFn,
        may_split: bool,
        kind: LocalizerKind,
        notes: list[JobWarning],
    ) -> JobOutcome | HandOff | SpanOutcome | None:
        """A later analysis run on the frames its video's cache keeps; None (and why, in
        ``notes``) when it holds none for this plan: the caller decodes."""
        found = self._from_cache(event, kind)
        if not isinstance(found, Miss):
            plan, feed = found
            try:
                return self._work(event, job_id, progress, may_split, plan, feed, {}, [])
            except FrameCacheUnreadable as exc:
                # The chunks localized so far are checkpointed: decoding pays for the rest.
                log.warning("frame cache failed mid-job (%s); decoding instead", exc)
                found = Miss(UNREADABLE, str(exc))
        self._metrics.frame_cache_lookup(found.reason)
        notes.append(miss_warning(found))
        return None

    def _from_cache(self, event: IngestEvent, kind: LocalizerKind) -> tuple[JobPlan, _Feed] | Miss:
        cache = self._frame_cache
        if cache is None:
            return Miss(CACHE_OFF)
        if not kind.asks_model:
            return Miss(PIXELS_NEEDED)
        prefix = self._cache_prefix(event)
        manifest = cache.manifest(prefix)
        if isinstance(manifest, Miss):
            return manifest
        plan = cached_plan(manifest, event, self._plan_config, kind)
        fingerprint = frame_sampling(plan, self._settings.vlm_jpeg_quality).fingerprint()
        span = event.span
        chunks = [c for c in plan.chunks if span is None or span.owns(c.index)]
        miss = judge(manifest, fingerprint, cache.clock(), cache.ttl_days) or cache.present(
            prefix, manifest, chunks
        )
        if miss is not None:
            return miss
        self._metrics.frame_cache_lookup(None)
        log.info(
            "frames from the frame cache: %d frames, %d bytes (%.0f bytes per video-minute)",
            manifest.frames,
            manifest.bytes,
            manifest.bytes_per_minute(),
        )

        def frames(wanted: Sequence[float]) -> Iterable[FrameSample]:
            return cache.frames(prefix, manifest, wanted)

        return plan, _Feed(frames, object_size=manifest.object_size or None)

    def _keep_frames(self, event: IngestEvent, plan: JobPlan, feed: _Feed) -> Manifest | None:
        """Seal the cache this whole-video job (or its spans) filled: the manifest goes last,
        once every part is stored. The manifest written, or None."""
        cache, writer = self._frame_cache, feed.writer
        if cache is None or writer is None or writer.failed:
            return None
        sampling = frame_sampling(plan, self._settings.vlm_jpeg_quality)
        source = {
            "bucket": event.source.bucket,
            "key": event.source.key,
            "etag": event.source.etag,
            "version_tag": event.version_tag,
        }
        sealed = cache.seal(
            self._cache_prefix(event),
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

    def _cache_prefix(self, event: IngestEvent) -> str:
        # Tenant and object version in the key: another tenant's video of the same id, or a
        # re-upload of the same key, never reads these frames.
        return names.frame_cache_prefix(
            event.effective_video_id, event.version_tag, tenant_of_key(event.source.key)
        )

    def _require_first_analysis(self, event: IngestEvent) -> None:
        """A later analysis is asked of an analysed video (its first timeline stored)."""
        key = names.timeline_key(event.effective_video_id, tenant_of_key(event.source.key))
        try:
            self._store.get_bytes(self._settings.timeline_bucket, key)
        except ObjectMissing:
            raise InputError(
                f"video {event.effective_video_id} has no first analysis yet; submit it first",
                code="video_not_analysed",
            ) from None

    def _checkpoints(self, event: IngestEvent, job_id: str, plan: JobPlan) -> JobCheckpoints:
        return JobCheckpoints(
            self._store,
            self._settings.timeline_bucket,
            event.effective_video_id,
            job_id,
            tenant_of_key(event.source.key),
            job_fingerprint(event, plan),
        )

    def _span_chunks(
        self,
        event: IngestEvent,
        job_id: str,
        plan: JobPlan,
        feed: _Feed,
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
        results, from_checkpoint = self._localize(
            event, job_id, plan, feed, localizer, progress, only=span
        )
        return SpanOutcome(
            tokens=sum((r.usage for r in results), TokenTally()),
            chunks=len(results),
            chunks_from_checkpoint=from_checkpoint,
        )

    def partial(self, event: IngestEvent, job_id: str, reported: int) -> JobOutcome:
        """The timeline so far of a long video whose spans are still running: the chunks
        checkpointed by now, merged (no refinement yet), stored where the final one will be.

        Nothing is downloaded or decoded: the plan is rebuilt from the probe facts the spans
        carry, and the chunks come from their checkpoints.
        """
        span = event.span
        assert span is not None
        s = self._settings
        video = span.video
        info = VideoInfo(video.duration_s, video.fps, video.width, video.height, video.codec)
        kind = localizer_kind(event.options.localizer or s.effective_localizer)
        plan = make_plan(info, event, self._plan_config, kind, None)
        tenant = tenant_of_key(event.source.key)
        found, _ = self._checkpoints(event, job_id, plan).resume(plan.chunks)
        results = [found[c.index] for c in plan.chunks if c.index in found]
        merged = _merged_chunks(plan, results)
        if kind.after_merge is not None:
            merged = kind.after_merge(merged, info.duration_s)
        usage = sum((r.usage for r in results), TokenTally())
        cost = price_usage(usage, self._prices)
        timeline = self._timeline(event, job_id, plan, merged, usage, cost, results)
        pending = JobWarning(
            code="spans_pending",
            message=f"partial: {reported} of {span.count} spans done "
            f"({len(results)} of {len(plan.chunks)} chunks); the final timeline replaces this one",
        )
        timeline = timeline.model_copy(update={"warnings": [*timeline.warnings, pending]})
        key = names.analysis_timeline_key(event.effective_video_id, event.analysis_id, tenant)
        self._store.put_bytes(s.timeline_bucket, key, encode(timeline))
        rejected = sum(r.rejected_events for r in results)
        return JobOutcome(timeline, s.timeline_bucket, key, usage, cost, len(results), rejected)

    def _finish_events(
        self,
        event: IngestEvent,
        plan: JobPlan,
        results: Sequence[ChunkResult],
        feed: _Feed,
        localizer: Localizer,
        notes: list[JobWarning],
    ) -> tuple[tuple[DetectedEvent, ...], RefineOutcome | None]:
        """Merge the chunks' events, refine their boundaries if asked, snap them to cuts."""
        s = self._settings
        merged = _merged_chunks(plan, results)
        refined: RefineOutcome | None = None
        if plan.refine and merged and (feed.source is None or feed.path is None):
            # The frames between the kept samples were never decoded: decoding them now is
            # what a later analysis must not do.
            notes.append(refine_skipped())
        elif plan.refine and merged and feed.source is not None:
            max_frames = None
            if plan.token_budget_per_min is not None:
                per_frame = frame_budget_tokens(plan.frame_size, plan.info.duration_s)
                budget = frames_for_budget(
                    plan.info.duration_s, plan.token_budget_per_min, per_frame
                )
                max_frames = max(0, (budget or 0) - len(plan.times))
            refined = refine_events(
                merged,
                plan.times,
                source=feed.source,
                path=str(feed.path),
                size=plan.frame_size,
                localizer=localizer,
                request=_request(event, plan),
                fps=s.refine_fps,
                window_s=s.refine_window_s,
                concurrency=s.vlm_concurrency,
                max_frames=max_frames,
                max_images=s.vlm_max_images_per_request,
                held=self._frame_budget,
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

    def _timeline(
        self,
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
        s = self._settings
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
            refine_cost=price_usage(refined.usage, self._prices) if refined else 0.0,
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


def _merged_chunks(plan: JobPlan, results: Sequence[ChunkResult]) -> tuple[DetectedEvent, ...]:
    """The chunks' events joined across chunk edges (so across span edges too) and merged."""
    pieces = [e for r in results for e in r.events]
    frame_period = 1.0 / plan.info.fps if plan.info.fps > 0 else 1e-3
    joined = join_unseparated(
        pieces, plan.times, frame_period, join_instants=plan.kind.joins_instants
    )
    return tuple(merge_events(joined))


def _request(event: IngestEvent, plan: JobPlan) -> LocalizeRequest:
    return LocalizeRequest(
        prompt=event.options.prompt,
        labels=tuple(event.options.labels),
        video_duration_s=plan.info.duration_s,
        # The object version, not just the video id: a re-upload under one id is new frames.
        media_id=f"{event.effective_video_id}@{event.version_tag}",
    )


def _kept(frames: Iterable[FrameSample], keep: FrameKeeper | None) -> Iterable[FrameSample]:
    return frames if keep is None else keep.tap(frames)
