"""A video's analyses as the API lists them: the first one (``default``: the video's own job and
timeline) and each later one asked with ``POST /videos/{id}/analyses``.

A later analysis is known from three places, any of which may be missing: its record (written
when it was asked: the question), the status book (what the workers reported, kept apart from
the video's own status) and its stored timeline. Their union is the list, so an analysis asked
by ``vidloc ask`` or before a restart is listed as well as one asked through this replica.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import quote

from contracts import DEFAULT_ANALYSIS_ID, Timeline
from producers.analyses import AnalysisRecord, load_record, load_records
from vidloc.api.models import VideoState
from vidloc.api.status import StatusBook, derive_state
from vidloc.api.timelines import TimelineReader
from vidloc.client.models import Analysis, AnalysisLinks
from vidloc.viewer.render import AnalysisTab

__all__ = ["analysis_links", "first_analysis", "later_analyses", "later_analysis", "tabs"]

QUEUED = "queued"  # the stage of an analysis asked but not yet reported on by a worker


def analysis_links(video_id: str, analysis_id: str) -> AnalysisLinks:
    base = f"/videos/{quote(video_id, safe='')}/analyses/{quote(analysis_id, safe='')}"
    return AnalysisLinks(self=base, timeline=f"{base}/timeline", view=f"{base}/view")


def first_analysis(state: VideoState, timeline: Timeline | None) -> Analysis:
    """The video's own job as its first analysis."""
    return Analysis(
        analysis_id=DEFAULT_ANALYSIS_ID,
        video_id=state.video_id,
        status=state.status,
        prompt=timeline.prompt if timeline is not None else None,
        labels=list(timeline.labels) if timeline is not None else [],
        job_id=state.job_id or (timeline.job_id if timeline is not None else None),
        stage=state.stage,
        has_timeline=state.has_timeline,
        events=state.events,
        error=state.error.model_dump() if state.error is not None else None,
        created_at=None,
        updated_at=state.updated_at or (timeline.created_at if timeline is not None else None),
        links=analysis_links(state.video_id, DEFAULT_ANALYSIS_ID),
    )


def _later(
    video_id: str,
    analysis_id: str,
    record: AnalysisRecord | None,
    state: VideoState | None,
    has_timeline: bool,
) -> Analysis:
    if state is None:  # asked, nothing reported yet
        state = VideoState(
            video_id=video_id, status="running", stage=QUEUED, has_timeline=has_timeline
        )
    return Analysis(
        analysis_id=analysis_id,
        video_id=video_id,
        status=state.status,
        prompt=record.prompt if record is not None else None,
        labels=list(record.labels) if record is not None else [],
        job_id=state.job_id or (record.job_id if record is not None else None),
        stage=state.stage,
        has_timeline=has_timeline,
        events=state.events,
        error=state.error.model_dump() if state.error is not None else None,
        created_at=record.created_at if record is not None else None,
        updated_at=state.updated_at,
        links=analysis_links(video_id, analysis_id),
    )


def _final_job(
    timelines: TimelineReader, video_id: str, analysis_id: str, tenant: str | None
) -> Callable[[], str | None]:
    """The job of the analysis' stored final timeline, read when asked (derive_state)."""
    return lambda: timelines.final_job(video_id, tenant, analysis_id)


def later_analyses(
    timelines: TimelineReader,
    book: StatusBook,
    video_id: str,
    tenant: str | None,
    *,
    stalled_after_s: float | None = None,
) -> list[Analysis]:
    """The video's later analyses, oldest asked first (then by id)."""
    records, answered = load_records(timelines.store, timelines.bucket, video_id, tenant)
    views = book.analyses(video_id, tenant)
    now = datetime.now(UTC)
    found = []
    for aid in set(records) | answered | set(views):
        has_timeline = aid in answered
        state = derive_state(
            video_id,
            views.get(aid),
            has_timeline=has_timeline,
            now=now,
            stalled_after_s=stalled_after_s,
            final_job=_final_job(timelines, video_id, aid, tenant),
        )
        found.append(_later(video_id, aid, records.get(aid), state, has_timeline))
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(found, key=lambda a: (a.created_at or a.updated_at or epoch, a.analysis_id))


def later_analysis(
    timelines: TimelineReader,
    book: StatusBook,
    video_id: str,
    analysis_id: str,
    tenant: str | None,
    *,
    stalled_after_s: float | None = None,
) -> Analysis | None:
    """One later analysis, None when nothing is known of it (for this tenant)."""
    record = load_record(timelines.store, timelines.bucket, video_id, analysis_id, tenant)
    view = book.analysis(video_id, analysis_id, tenant)
    has_timeline = timelines.exists(video_id, tenant, analysis_id)
    if record is None and view is None and not has_timeline:
        return None
    state = derive_state(
        video_id,
        view,
        has_timeline=has_timeline,
        now=datetime.now(UTC),
        stalled_after_s=stalled_after_s,
        final_job=_final_job(timelines, video_id, analysis_id, tenant),
    )
    return _later(video_id, analysis_id, record, state, has_timeline)


def tabs(analyses: list[Analysis]) -> list[AnalysisTab]:
    """What the viewer shows of each analysis to switch between them."""
    return [
        AnalysisTab(
            analysis_id=a.analysis_id,
            question=a.prompt or ", ".join(a.labels) or a.analysis_id,
            status=a.status,
            has_timeline=a.has_timeline,
        )
        for a in analyses
    ]
