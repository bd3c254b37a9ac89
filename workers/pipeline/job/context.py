"""What every path of a job shares: the worker's settings and the clients it was built with."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from contracts import IngestEvent
from vidloc.metrics import Metrics
from vidloc.settings import Settings
from vidloc.tenancy import tenant_of_key
from workers.localizers.kind import LocalizerKind
from workers.localizers.registry import localizer_kind
from workers.model.cost import Prices
from workers.pipeline.frame_store import FrameStore
from workers.pipeline.job.outcomes import JobStore
from workers.pipeline.job_checkpoints import JobCheckpoints, job_fingerprint
from workers.pipeline.planning import JobPlan, PlanConfig
from workers.priority import PrioritySlots
from workers.types import FrameSource, Localizer, RangedFrameSource, VideoInfo


@dataclass(frozen=True)
class JobContext:
    """Built once per worker by :class:`~workers.pipeline.job.JobRunner`; holds no per-job
    state, so the jobs of one worker share it across threads."""

    settings: Settings
    store: JobStore
    open_source: Callable[[Path], tuple[FrameSource, VideoInfo]]
    make_localizer: Callable[[str], Localizer]
    metrics: Metrics
    plan_config: PlanConfig
    prices: Prices
    # Kept frames (docs/analyses.md); None: VIDLOC_FRAME_CACHE_TTL_DAYS=0.
    frame_cache: FrameStore | None
    # A span's video read by ranges from the store (None: spans download the whole object).
    open_ranged: Callable[[IngestEvent], RangedFrameSource] | None
    # Chunks of decoded frames held at once across every job sharing it (a worker's memory
    # bound when it runs several jobs); None: each job's own bound only.
    frame_budget: threading.Semaphore | None
    # Chunks decoded at once across the jobs (None: no cap); see fanout.localize_chunks.
    decode_slots: threading.Semaphore | None
    # The span orders the worker's group runs at once, as this member judges it now (the
    # span count is rounded to whole rounds of them); None: spans as long as asked.
    span_slots: Callable[[], int] | None = None
    # Spans decoded at once across the jobs (workers/pipeline/ahead.py); None: no cap.
    span_decoders: PrioritySlots | None = None

    def kind(self, event: IngestEvent) -> LocalizerKind:
        """The localizer the job asked for, else the worker's."""
        return localizer_kind(event.options.localizer or self.settings.effective_localizer)

    def checkpoints(self, event: IngestEvent, job_id: str, plan: JobPlan) -> JobCheckpoints:
        return JobCheckpoints(
            self.store,
            self.settings.timeline_bucket,
            event.effective_video_id,
            job_id,
            tenant_of_key(event.source.key),
            job_fingerprint(event, plan),
        )
