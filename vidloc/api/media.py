"""An event's picture: ``GET /videos/{id}/events/{event_id}/thumbnail`` (the JPEG the job kept,
stored beside the timeline), and the same of a later analysis' event under
``/videos/{id}/analyses/{analysis_id}/events/{event_id}/thumbnail``. Clips: vidloc/api/clips.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from contracts import DEFAULT_ANALYSIS_ID, Timeline, TimelineEvent
from vidloc import names
from vidloc.api.ask import AnalysisId
from vidloc.api.auth import Caller, Reader
from vidloc.api.errors import ApiError
from vidloc.api.models import ErrorResponse
from vidloc.api.routes import Deps, Services, VideoId
from vidloc.errors import ObjectMissing

EventId = Annotated[str, Path(min_length=1, max_length=256, description="the event's id")]

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {
        "description": text,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
    for code, text in (
        (401, "no API key, or not a valid one"),
        (403, "the API key lacks the scope this route needs"),
        (404, "unknown video (or another tenant's), event, or no thumbnail/clip for it"),
        (422, "invalid parameters"),
        (429, "rate limited (see Retry-After)"),
        (500, "internal error"),
        (503, "S3 unreachable"),
    )
}
del ErrorResponse  # named in the spec through ERRORS' $ref

router = APIRouter()


def timeline_of(
    deps: Services, caller: Caller, video_id: str, analysis_id: str = DEFAULT_ANALYSIS_ID
) -> Timeline:
    """The caller's tenant's timeline of ``video_id`` (of its first analysis, or of
    ``analysis_id``); unknown and another tenant's ids alike are 404 ``video_not_found``."""
    timeline = deps.timelines.load(video_id, caller.tenant, analysis_id)
    if timeline is not None:
        return timeline
    first = analysis_id == DEFAULT_ANALYSIS_ID
    has_first = not first and deps.timelines.exists(video_id, caller.tenant)
    if deps.derive(caller, video_id, has_timeline=has_first) is None:
        raise ApiError(404, "video_not_found", f"no video {video_id!r}")
    if first:
        raise ApiError(404, "timeline_not_found", f"video {video_id!r} has no timeline yet")
    if deps.later_analysis(caller, video_id, analysis_id) is None:
        raise ApiError(
            404, "analysis_not_found", f"video {video_id!r} has no analysis {analysis_id!r}"
        )
    raise ApiError(
        404, "timeline_not_found", f"analysis {analysis_id!r} of {video_id!r} has no timeline yet"
    )


def event_of(timeline: Timeline, event_id: str) -> TimelineEvent:
    for event in timeline.events:
        if event.id == event_id:
            return event
    raise ApiError(404, "event_not_found", f"video {timeline.video_id!r} has no event {event_id!r}")


def beside_timeline(
    video_id: str, tenant: str | None, name: str, analysis_id: str = DEFAULT_ANALYSIS_ID
) -> str:
    """The key of ``name`` (e.g. ``thumbnails/ev3.jpg``) in the folder of the timeline (of the
    first analysis, or of ``analysis_id``)."""
    key = names.analysis_timeline_key(video_id, analysis_id, tenant)
    return key.rsplit("/", 1)[0] + "/" + name


_THUMBNAIL_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    200: {"content": {"image/jpeg": {"schema": {"type": "string"}}}, "description": "JPEG"},
}


@router.get(
    "/videos/{video_id}/events/{event_id}/thumbnail",
    response_class=Response,
    tags=["videos"],
    responses=_THUMBNAIL_RESPONSES,
)
def event_thumbnail(deps: Deps, caller: Reader, video_id: VideoId, event_id: EventId) -> Response:
    """The event's thumbnail: a frame the job decoded near the event's middle (320 px JPEG)."""
    return _thumbnail(deps, caller, video_id, event_id, DEFAULT_ANALYSIS_ID)


@router.get(
    "/videos/{video_id}/analyses/{analysis_id}/events/{event_id}/thumbnail",
    response_class=Response,
    tags=["analyses"],
    responses=_THUMBNAIL_RESPONSES,
)
def analysis_event_thumbnail(
    deps: Deps, caller: Reader, video_id: VideoId, analysis_id: AnalysisId, event_id: EventId
) -> Response:
    """The thumbnail of an event of one analysis (``default``: the same as the route above)."""
    return _thumbnail(deps, caller, video_id, event_id, analysis_id)


def _thumbnail(
    deps: Services, caller: Caller, video_id: str, event_id: str, analysis_id: str
) -> Response:
    event = event_of(timeline_of(deps, caller, video_id, analysis_id), event_id)
    if event.thumbnail is None:
        raise ApiError(404, "thumbnail_not_found", f"event {event_id!r} has no thumbnail")
    key = beside_timeline(video_id, caller.tenant, event.thumbnail, analysis_id)
    try:
        data = deps.timelines.store.get_bytes(deps.timelines.bucket, key)
    except ObjectMissing as exc:
        raise ApiError(404, "thumbnail_not_found", f"event {event_id!r} has no thumbnail") from exc
    # Named by the timeline that is current now: a re-run may name another one.
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=60"})
