"""The API's routes. Handlers are plain ``def``: FastAPI runs them in its thread pool, which
suits the blocking S3 and Kafka adapters."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from contracts import DEFAULT_ANALYSIS_ID, Timeline
from contracts.common import SAFE_ID_PATTERN
from vidloc import names
from vidloc.api.analyses import first_analysis, later_analyses, later_analysis, tabs
from vidloc.api.auth import Caller, Reader
from vidloc.api.errors import ApiError, error_body
from vidloc.api.models import (
    ErrorResponse,
    EventQuery,
    EventsResponse,
    Health,
    VideoList,
    VideoState,
    VideoStatus,
)
from vidloc.api.probes import Readiness
from vidloc.api.query import check_window, select_events
from vidloc.api.status import BusView, StatusBook, derive_state, final_job_id
from vidloc.api.timelines import TimelineReader
from vidloc.client.models import Analysis
from vidloc.errors import VidlocError
from vidloc.viewer.render import render_viewer
from vidloc.viewer.shell import render_shell

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What the routes need, built once by create_app and kept on ``app.state``."""

    timelines: TimelineReader
    book: StatusBook
    readiness: Readiness
    presign: Callable[[str, str], str]
    stalled_after_s: float | None = None

    def derive(
        self,
        caller: Caller,
        video_id: str,
        *,
        has_timeline: bool,
        view: BusView | None = None,
        stored: Timeline | None = None,
    ) -> VideoState | None:
        """``video_id`` as ``caller``'s tenant sees it (None: not one of its videos);
        ``stored``: its timeline when the caller has read it already (not read again)."""
        return derive_state(
            video_id,
            view if view is not None else self.book.get(video_id, caller.tenant),
            has_timeline=has_timeline,
            now=datetime.now(UTC),
            stalled_after_s=self.stalled_after_s,
            final_job=(
                (lambda: final_job_id(stored))
                if stored is not None
                else (lambda: self.timelines.final_job(video_id, caller.tenant))
            ),
        )

    def later_analyses(self, caller: Caller, video_id: str) -> list[Analysis]:
        """The video's later analyses as ``caller``'s tenant sees them, oldest asked first."""
        return later_analyses(
            self.timelines,
            self.book,
            video_id,
            caller.tenant,
            stalled_after_s=self.stalled_after_s,
        )

    def later_analysis(self, caller: Caller, video_id: str, analysis_id: str) -> Analysis | None:
        """One later analysis as ``caller``'s tenant sees it (None: nothing known of it)."""
        return later_analysis(
            self.timelines,
            self.book,
            video_id,
            analysis_id,
            caller.tenant,
            stalled_after_s=self.stalled_after_s,
        )


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


Deps = Annotated[Services, Depends(services)]
VideoId = Annotated[
    str,
    Path(pattern=f"^{SAFE_ID_PATTERN}$", description="the video id from the result event"),
]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (401, "no API key, or not a valid one"),
        (403, "the API key lacks the scope this route needs"),
        (404, "unknown video (or another tenant's) or route"),
        (414, "URL longer than VIDLOC_API_MAX_URL_BYTES"),
        (422, "invalid parameters"),
        (429, "rate limited (see Retry-After)"),
        (500, "internal error"),
        (503, "S3 or Kafka unreachable"),
    )
}

# The viewer answers HTML, but its errors are JSON like every other route's; FastAPI would
# label extra responses with the route's own media type, so spell the content out.
_HTML_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {
        "description": spec["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
    for code, spec in _ERRORS.items()
}

router = APIRouter()


@router.get("/healthz", response_model=Health, tags=["ops"], responses=_ERRORS)
def healthz() -> Health:
    """The process is up and serving (no dependency is checked)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, tags=["ops"], responses=_ERRORS)
def readyz(deps: Deps, caller: Reader) -> Health | JSONResponse:
    """Kafka and the S3 store answer; 503 naming the failed checks otherwise. Needs ``read``;
    the details (servers, buckets, errors) are for ``admin`` keys, and in the API's log."""
    report = deps.readiness.check()
    if caller.grants("admin"):
        if not report.ready:
            failed = "; ".join(f"{name}: {note}" for name, note in report.notes.items())
            return JSONResponse(error_body("not_ready", failed), status_code=503)
        return Health(status="ready", checks=dict(report.notes))
    if not report.ready:
        failed = ", ".join(report.failing)
        message = f"not ready: {failed} (details for admin keys and in the API's log)"
        return JSONResponse(error_body("not_ready", message), status_code=503)
    return Health(status="ready", checks=dict.fromkeys(report.notes, "ok"))


def _not_found(video_id: str) -> ApiError:
    # The same answer whether the id is unknown or another tenant's: a 403 would confirm it.
    return ApiError(404, "video_not_found", f"no video {video_id!r}")


def _state(deps: Services, caller: Caller, video_id: str) -> VideoState:
    has_timeline = deps.timelines.exists(video_id, caller.tenant)
    state = deps.derive(caller, video_id, has_timeline=has_timeline)
    if state is None:
        raise _not_found(video_id)
    if state.has_timeline and state.events is None:
        timeline = deps.timelines.load(video_id, caller.tenant)
        if timeline is not None:
            state = state.model_copy(
                update={
                    "events": len(timeline.events),
                    "duration_s": timeline.video.duration_s,
                    "job_id": state.job_id or timeline.job_id,
                    "updated_at": state.updated_at or timeline.created_at,
                }
            )
    return state


def _timeline(deps: Services, caller: Caller, video_id: str) -> Timeline:
    timeline = deps.timelines.load(video_id, caller.tenant)
    if timeline is not None:
        return timeline
    if deps.derive(caller, video_id, has_timeline=False) is None:
        raise _not_found(video_id)
    raise ApiError(404, "timeline_not_found", f"video {video_id!r} has no timeline yet")


@router.get("/videos", response_model=VideoList, tags=["videos"], responses=_ERRORS)
def list_videos(
    deps: Deps,
    caller: Reader,
    status: Annotated[VideoStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> VideoList:
    """The caller's tenant's videos with a stored timeline or a result/progress event, by id."""
    stored = deps.timelines.video_ids(caller.tenant)
    views = deps.book.snapshot(caller.tenant)
    states = []
    for vid in sorted(stored | set(views)):
        state = deps.derive(caller, vid, has_timeline=vid in stored, view=views.get(vid))
        if state is not None and (status is None or state.status == status):
            states.append(state)
    return VideoList(videos=states[offset : offset + limit], total=len(states))


@router.get("/videos/{video_id}", response_model=VideoState, tags=["videos"], responses=_ERRORS)
def get_video(deps: Deps, caller: Reader, video_id: VideoId) -> VideoState:
    """One video's status: succeeded, failed (with the error), running (with progress) or
    stalled (running, but no progress for longer than VIDLOC_API_STALLED_AFTER_S)."""
    return _state(deps, caller, video_id)


@router.get(
    "/videos/{video_id}/timeline", response_model=Timeline, tags=["videos"], responses=_ERRORS
)
def get_timeline(deps: Deps, caller: Reader, video_id: VideoId, response: Response) -> Timeline:
    """The latest stored timeline (contract ``vidloc.timeline.v1``); a live stream's grows
    while it runs (``stream.ended`` false), so it is never cached."""
    timeline = _timeline(deps, caller, video_id)
    if timeline.stream is not None and not timeline.stream.ended:
        response.headers["Cache-Control"] = "no-store"
    return timeline


@router.get(
    "/videos/{video_id}/events", response_model=EventsResponse, tags=["videos"], responses=_ERRORS
)
def query_events(
    deps: Deps,
    caller: Reader,
    video_id: VideoId,
    label: Annotated[list[str] | None, Query(max_length=256, description="repeatable")] = None,
    start_s: Annotated[float | None, Query(ge=0, le=1e9, allow_inf_nan=False)] = None,
    end_s: Annotated[
        float | None,
        Query(ge=0, le=1e9, allow_inf_nan=False, description="must not be before start_s (422)"),
    ] = None,
) -> EventsResponse:
    """Events with any of the labels (case-insensitive) overlapping [start_s, end_s]."""
    try:
        check_window(start_s, end_s)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from exc
    timeline = _timeline(deps, caller, video_id)
    labels = label or []
    events = select_events(timeline.events, labels=labels, start_s=start_s, end_s=end_s)
    return EventsResponse(
        video_id=video_id,
        job_id=timeline.job_id,
        duration_s=timeline.video.duration_s,
        query=EventQuery(labels=labels, start_s=start_s, end_s=end_s),
        count=len(events),
        events=events,
    )


@router.get(
    "/videos/{video_id}/view",
    response_class=HTMLResponse,
    tags=["viewer"],
    responses={
        **_HTML_ERRORS,
        200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "page"},
    },
)
def view_video(deps: Deps, caller: Reader, video_id: VideoId) -> HTMLResponse:
    """The timeline viewer: the video in a player, one track of event bars per label. The
    player's URL is presigned for this one object and VIDLOC_API_PRESIGN_TTL_S seconds.
    With API keys, a browser opens ``/viewer/{video_id}``, which fetches this page with the
    key in the Authorization header."""
    timeline = _timeline(deps, caller, video_id)
    return _page(deps, caller, timeline)


def _page(
    deps: Services,
    caller: Caller,
    timeline: Timeline,
    analysis_id: str = DEFAULT_ANALYSIS_ID,
    base: str = "",
) -> HTMLResponse:
    """The viewer page of one analysis' timeline, with links to the video's other analyses
    (``base``: the video's route relative to the page's own)."""
    video_id = timeline.video_id
    try:
        url: str | None = deps.presign(timeline.source.bucket, timeline.source.key)
    except VidlocError as exc:
        # The page is still useful without the player; say why it is missing.
        log.warning("no presigned URL for %s: %s", video_id, exc)
        url = None
    thumbnails = _thumbnail_urls(deps, caller, timeline, analysis_id) if url is not None else {}
    first = deps.derive(caller, video_id, has_timeline=True)
    later = deps.later_analyses(caller, video_id)
    analyses = []
    if first is not None and later:
        own = (
            timeline
            if analysis_id == DEFAULT_ANALYSIS_ID
            else deps.timelines.load(video_id, caller.tenant)
        )
        analyses = tabs([first_analysis(first, own), *later])
    page = render_viewer(
        timeline, url, thumbnails=thumbnails, analyses=analyses, analysis_id=analysis_id, base=base
    )
    return HTMLResponse(page, headers=_NO_STORE)


def _thumbnail_urls(
    deps: Services, caller: Caller, timeline: Timeline, analysis_id: str = DEFAULT_ANALYSIS_ID
) -> dict[str, str]:
    """Presigned GETs of the events' thumbnails (stored beside the timeline), for the page."""
    key = names.analysis_timeline_key(timeline.video_id, analysis_id, caller.tenant)
    folder = key.rsplit("/", 1)[0]
    return {
        e.id: deps.presign(deps.timelines.bucket, f"{folder}/{e.thumbnail}")
        for e in timeline.events
        if e.thumbnail is not None
    }


@router.get("/viewer/{video_id}", response_class=HTMLResponse, include_in_schema=False)
def viewer_shell(video_id: VideoId) -> HTMLResponse:
    """A page with no data of its own: it asks for the key (kept in sessionStorage, never in a
    URL) and fetches ``/videos/{video_id}/view`` with it. Open, like /healthz."""
    return HTMLResponse(render_shell(video_id), headers=_NO_STORE)


# Pages carry a presigned URL: no cache should keep them past the URL's life.
_NO_STORE = {"Cache-Control": "no-store"}
