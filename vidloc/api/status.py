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
from dataclasses import dataclass

from contracts import ProgressEvent, ResultEvent
from vidloc.api.models import ErrorDetail, VideoState

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


def derive_state(video_id: str, view: BusView | None, *, has_timeline: bool) -> VideoState | None:
    """The video's state, or None when neither S3 nor the bus has heard of it.

    A progress event newer than the latest result, in a non-terminal stage, means a job is
    running (possibly a re-run of a video that already has a timeline).
    """
    view = view or BusView()
    result, progress = view.result, view.progress
    running = (
        progress is not None
        and progress.stage not in _TERMINAL_STAGES
        and (result is None or progress.at > result.created_at)
    )
    if running and progress is not None:
        return VideoState(
            video_id=video_id,
            status="running",
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


class StatusBook:
    """Thread-safe map video_id -> BusView; the feed thread writes, request handlers read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._views: dict[str, BusView] = {}

    def apply_result(self, result: ResultEvent) -> None:
        with self._lock:
            self._views[result.video_id] = fold_result(self._views.get(result.video_id), result)

    def apply_progress(self, progress: ProgressEvent) -> None:
        with self._lock:
            vid = progress.video_id
            self._views[vid] = fold_progress(self._views.get(vid), progress)

    def get(self, video_id: str) -> BusView | None:
        with self._lock:
            return self._views.get(video_id)

    def snapshot(self) -> dict[str, BusView]:
        with self._lock:
            return dict(self._views)
