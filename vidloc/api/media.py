"""An event's picture: ``GET /videos/{id}/events/{event_id}/thumbnail`` (the JPEG the job kept,
stored beside the timeline). Clips: vidloc/api/clips.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from contracts import Timeline, TimelineEvent
from vidloc import names
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


def timeline_of(deps: Services, caller: Caller, video_id: str) -> Timeline:
    """The caller's tenant's timeline of ``video_id``; unknown and another tenant's ids alike
    are 404 ``video_not_found``."""
    timeline = deps.timelines.load(video_id, caller.tenant)
    if timeline is not None:
        return timeline
    if deps.derive(caller, video_id, has_timeline=False) is None:
        raise ApiError(404, "video_not_found", f"no video {video_id!r}")
    raise ApiError(404, "timeline_not_found", f"video {video_id!r} has no timeline yet")


def event_of(timeline: Timeline, event_id: str) -> TimelineEvent:
    for event in timeline.events:
        if event.id == event_id:
            return event
    raise ApiError(404, "event_not_found", f"video {timeline.video_id!r} has no event {event_id!r}")


def beside_timeline(video_id: str, tenant: str | None, name: str) -> str:
    """The key of ``name`` (e.g. ``thumbnails/ev3.jpg``) in the timeline's folder."""
    return names.timeline_key(video_id, tenant).rsplit("/", 1)[0] + "/" + name


@router.get(
    "/videos/{video_id}/events/{event_id}/thumbnail",
    response_class=Response,
    tags=["videos"],
    responses={
        **ERRORS,
        200: {"content": {"image/jpeg": {"schema": {"type": "string"}}}, "description": "JPEG"},
    },
)
def event_thumbnail(deps: Deps, caller: Reader, video_id: VideoId, event_id: EventId) -> Response:
    """The event's thumbnail: a frame the job decoded near the event's middle (320 px JPEG)."""
    event = event_of(timeline_of(deps, caller, video_id), event_id)
    if event.thumbnail is None:
        raise ApiError(404, "thumbnail_not_found", f"event {event_id!r} has no thumbnail")
    key = beside_timeline(video_id, caller.tenant, event.thumbnail)
    try:
        data = deps.timelines.store.get_bytes(deps.timelines.bucket, key)
    except ObjectMissing as exc:
        raise ApiError(404, "thumbnail_not_found", f"event {event_id!r} has no thumbnail") from exc
    # Named by the timeline that is current now: a re-run may name another one.
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=60"})
