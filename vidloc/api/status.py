"""The status of each video, folded from ``video.results`` / ``video.progress`` events.

Why an in-memory view fed by the bus rather than a status index in S3: the workers already
publish every transition, so the API needs no extra writes on the job path and no second
source of truth; a restarted API rebuilds the view by replaying the result topic (and the
recent tail of progress). The stored timeline stays the truth for *what* was found; the bus
says whether a newer job is running or failed. Folding is pure and order-tolerant: the newest
event by its own timestamp wins, so replays and cross-partition interleaving do not matter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from contracts import DEFAULT_ANALYSIS_ID, ProgressEvent, ResultEvent, Timeline
from vidloc import names
from vidloc.api.models import ErrorDetail, VideoState
from vidloc.tenancy import event_tenant

__all__ = [
    "BusView",
    "StatusBook",
    "derive_state",
    "event_tenant",
    "final_job_id",
    "fold_progress",
    "fold_result",
    "later_analysis",
]

_TERMINAL_STAGES = frozenset({"done", "failed"})


@dataclass(frozen=True)
class BusView:
    """The newest result and the newest progress event seen for one video."""

    result: ResultEvent | None = None
    progress: ProgressEvent | None = None


def fold_result(view: BusView | None, result: ResultEvent) -> BusView:
    view = view or BusView()
    if view.result is not None and view.result.created_at > result.created_at:
        return view
    return BusView(result=result, progress=view.progress)


def fold_progress(view: BusView | None, progress: ProgressEvent) -> BusView:
    view = view or BusView()
    if view.progress is not None and view.progress.at > progress.at:
        return view
    return BusView(result=view.result, progress=progress)


def final_job_id(timeline: Timeline | None) -> str | None:
    """The job that wrote ``timeline`` when nothing of that job comes after it, else None."""
    return timeline.job_id if timeline is not None and timeline.final else None


def is_unattributable(result: ResultEvent) -> bool:
    """A refused message that named no video (no id, no source, no Kafka key): not a video
    to list. Its failed result and DLQ record stay on the bus for whoever investigates."""
    return result.source is None and (
        result.video_id == names.UNKNOWN_VIDEO_ID
        or result.video_id.startswith(names.REFUSED_VIDEO_PREFIX)
    )


def derive_state(
    video_id: str,
    view: BusView | None,
    *,
    has_timeline: bool,
    now: datetime | None = None,
    stalled_after_s: float | None = None,
    final_job: Callable[[], str | None] | None = None,
) -> VideoState | None:
    """The video's state, or None when neither S3 nor the bus has heard of it.

    A progress event newer than the latest result, in a non-terminal stage, means a job is
    running (possibly a re-run of a video that already has a timeline); when that progress is
    older than ``stalled_after_s`` at ``now``, the job's worker has stopped reporting (died,
    hung) and the video is ``stalled`` until a redelivered job reports again.

    ``final_job`` says which job wrote the stored final timeline (None: none, or a partial
    one); it is asked only when the bus says a job runs and a timeline is stored. That job is
    done: its timeline is stored before its result's transaction commits, and a reader that
    has its progress but not yet its result (a replica replaying, a slow commit) would
    otherwise say "running" after a reader of S3 alone said "succeeded".
    """
    view = view or BusView()
    result, progress = view.result, view.progress
    # A long video's partial result (its spans still run) says the job is running, not done.
    growing = result is not None and bool(result.partial) and result.stream is None
    running = (
        progress is not None
        and progress.stage not in _TERMINAL_STAGES
        and (result is None or growing or progress.at > result.created_at)
    )
    if running and progress is not None:
        # Asked last: it reads the stored timeline.
        if has_timeline and final_job is not None and final_job() == progress.job_id:
            return VideoState(
                video_id=video_id, status="succeeded", job_id=progress.job_id, has_timeline=True
            )
        stalled = (
            now is not None
            and stalled_after_s is not None
            and (now - progress.at).total_seconds() > stalled_after_s
        )
        return VideoState(
            video_id=video_id,
            status="stalled" if stalled else "running",
            job_id=progress.job_id,
            stage=progress.stage,
            chunks_done=progress.chunks_done,
            chunks_total=progress.chunks_total or None,
            has_timeline=has_timeline,
            updated_at=progress.at,
        )
    if result is not None:
        error = (
            ErrorDetail(code=result.error.code, message=result.error.message)
            if result.error is not None
            else None
        )
        return VideoState(
            video_id=video_id,
            status=result.status,
            job_id=result.job_id,
            has_timeline=has_timeline,
            events=result.summary.events if result.status == "succeeded" else None,
            duration_s=result.summary.duration_s if result.status == "succeeded" else None,
            error=error,
            updated_at=result.created_at,
        )
    if has_timeline:
        return VideoState(video_id=video_id, status="succeeded", has_timeline=True)
    if progress is not None:
        # Terminal progress but its result is gone (retention): say what progress said.
        status = "failed" if progress.stage == "failed" else "succeeded"
        return VideoState(
            video_id=video_id,
            status=status,
            job_id=progress.job_id,
            stage=progress.stage,
            has_timeline=False,
            updated_at=progress.at,
        )
    return None


Slot = tuple[str | None, str]  # (tenant, video_id): two tenants may reuse one video id
AnalysisSlot = tuple[str | None, str, str]  # (tenant, video_id, analysis_id)


def later_analysis(event: ResultEvent | ProgressEvent) -> str | None:
    """The analysis id of an event about one of a video's later analyses (vidloc.ingest.v2);
    None for its first analysis, which is the video's own status."""
    aid = event.analysis_id
    return None if aid is None or aid == DEFAULT_ANALYSIS_ID else aid


class StatusBook:
    """Thread-safe maps (tenant, video_id) -> BusView, and (tenant, video_id, analysis_id) ->
    BusView for a video's later analyses, kept apart so that a question asked again never
    changes what the video's own status says. The feed thread writes, request handlers read one
    tenant at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._views: dict[Slot, BusView] = {}
        self._analyses: dict[AnalysisSlot, BusView] = {}

    def apply_result(self, result: ResultEvent) -> None:
        if is_unattributable(result):
            return
        aid = later_analysis(result)
        with self._lock:
            if aid is not None:
                at = (event_tenant(result), result.video_id, aid)
                self._analyses[at] = fold_result(self._analyses.get(at), result)
                return
            slot = (event_tenant(result), result.video_id)
            self._views[slot] = fold_result(self._views.get(slot), result)

    def apply_progress(self, progress: ProgressEvent) -> None:
        aid = later_analysis(progress)
        with self._lock:
            if aid is not None:
                at = (event_tenant(progress), progress.video_id, aid)
                self._analyses[at] = fold_progress(self._analyses.get(at), progress)
                return
            slot = (event_tenant(progress), progress.video_id)
            self._views[slot] = fold_progress(self._views.get(slot), progress)

    def analysis(
        self, video_id: str, analysis_id: str, tenant: str | None = None
    ) -> BusView | None:
        """What the bus said about one later analysis of ``tenant``'s video."""
        with self._lock:
            return self._analyses.get((tenant, video_id, analysis_id))

    def analyses(self, video_id: str, tenant: str | None = None) -> dict[str, BusView]:
        """``tenant``'s video's later analyses the bus has reported on, by analysis id."""
        with self._lock:
            return {
                aid: view
                for (owner, vid, aid), view in self._analyses.items()
                if owner == tenant and vid == video_id
            }

    def get(self, video_id: str, tenant: str | None = None) -> BusView | None:
        with self._lock:
            return self._views.get((tenant, video_id))

    def snapshot(self, tenant: str | None = None) -> dict[str, BusView]:
        """``tenant``'s videos only."""
        with self._lock:
            return {vid: view for (owner, vid), view in self._views.items() if owner == tenant}

    def snapshot_all(self) -> dict[Slot, BusView]:
        with self._lock:
            return dict(self._views)
