"""The job's front door: which path an ingest event takes, and the plain path itself (download,
probe, pre-pass, plan, then :func:`~workers.pipeline.job.work.work`)."""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from contracts import IngestEvent, JobWarning
from vidloc.metrics import Metrics
from vidloc.settings import Settings
from workers.frames import close_source
from workers.frames.prepass import run_prepass
from workers.model.cost import Prices
from workers.pipeline.decoded import CountedSource
from workers.pipeline.frame_store import FrameStore
from workers.pipeline.job import long_video
from workers.pipeline.job.context import JobContext
from workers.pipeline.job.frames import decoding
from workers.pipeline.job.outcomes import HandOff, JobOutcome, JobStore, ProgressFn, SpanOutcome
from workers.pipeline.job.reask import from_cache_or_note, require_first_analysis
from workers.pipeline.job.work import work
from workers.pipeline.planning import PlanConfig, make_plan, wants_adaptive
from workers.priority import PrioritySlots
from workers.types import FrameSource, Localizer, RangedFrameSource, VideoInfo


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
        span_slots: Callable[[], int] | None = None,
        span_decoders: PrioritySlots | None = None,
    ) -> None:
        self._ctx = JobContext(
            settings=settings,
            store=store,
            open_source=open_source,
            make_localizer=make_localizer,
            metrics=metrics or Metrics(),
            plan_config=PlanConfig.from_settings(settings),
            prices=Prices(
                settings.price_input_per_1k, settings.price_output_per_1k, settings.currency
            ),
            frame_cache=(
                FrameStore(store, settings.timeline_bucket, settings.frame_cache_ttl_days)
                if settings.frame_cache_ttl_days > 0
                else None
            ),
            open_ranged=open_ranged,
            frame_budget=frame_budget,
            decode_slots=decode_slots,
            span_slots=span_slots,
            span_decoders=span_decoders,
        )

    @property
    def settings(self) -> Settings:
        """The worker's settings the jobs run with."""
        return self._ctx.settings

    @property
    def store(self) -> JobStore:
        """The object store the jobs use (the span ledger of a long video lives there too)."""
        return self._ctx.store

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
        ctx = self._ctx
        whole = event.model_copy(update={"span": None})
        kind = ctx.kind(whole)
        if (
            ctx.open_ranged is None
            or whole.analysis is not None
            or (wants_adaptive(whole, ctx.plan_config) and kind.samples_adaptively)
        ):
            return self.run(whole, job_id, progress)
        merged = long_video.merge_by_ranges(ctx, whole, job_id, progress, kind)
        return self.run(whole, job_id, progress) if merged is None else merged

    def run_span(self, event: IngestEvent, job_id: str, progress: ProgressFn) -> SpanOutcome:
        """The chunks of ``event.span`` only (an order): decoded from the span's start, each
        checkpointed, so whoever merges (or redoes this span) pays none of them again."""
        ctx = self._ctx
        assert event.span is not None
        if event.analysis is not None:
            kind = ctx.kind(event)
            cached = from_cache_or_note(ctx, event, job_id, progress, False, kind, [])
            if cached is not None:
                assert isinstance(cached, SpanOutcome)
                return cached
        if ctx.open_ranged is not None:
            return long_video.run_span_ranged(ctx, event, job_id, progress)
        outcome = self._run(event, job_id, progress, False)
        assert isinstance(outcome, SpanOutcome)
        return outcome

    def partial(self, event: IngestEvent, job_id: str, reported: int) -> JobOutcome:
        """The timeline so far of a long video whose spans are still running (nothing is
        downloaded or decoded): :func:`~workers.pipeline.job.long_video.partial`."""
        return long_video.partial(self._ctx, event, job_id, reported)

    def _run(
        self, event: IngestEvent, job_id: str, progress: ProgressFn, may_split: bool
    ) -> JobOutcome | HandOff | SpanOutcome:
        ctx = self._ctx
        s = ctx.settings
        timings: dict[str, float] = {}
        kind = ctx.kind(event)
        notes: list[JobWarning] = []  # for the timeline: why this job decoded after all
        if event.analysis is not None:
            if event.span is None:
                require_first_analysis(ctx, event)
            cached = from_cache_or_note(ctx, event, job_id, progress, may_split, kind, notes)
            if cached is not None:
                return cached
        adaptive = wants_adaptive(event, ctx.plan_config) and kind.samples_adaptively
        if may_split and s.span_s > 0 and ctx.open_ranged is not None and not adaptive:
            # A long video's member only plans it: its header and end say enough.
            handed = long_video.hand_off_by_ranges(ctx, event, job_id, progress, kind)
            if handed is not None:
                return handed
        with (
            tempfile.TemporaryDirectory(prefix="vidloc-job-", dir=s.work_dir) as tmp,
            contextlib.ExitStack() as job_scoped,
        ):
            path = Path(tmp) / "video"
            progress("downloading", 0, 0, f"fetching s3://{event.source.bucket}/{event.source.key}")
            started = time.monotonic()
            ctx.store.download(
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
            opened, info = ctx.open_source(path)
            source = CountedSource(opened, ctx.metrics)
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
            plan = make_plan(info, event, ctx.plan_config, kind, prepass)
            feed = decoding(ctx, event, plan, source, path, object_size)
            return work(ctx, event, job_id, progress, may_split, plan, feed, timings, notes)
