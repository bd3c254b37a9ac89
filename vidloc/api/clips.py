"""``GET /videos/{id}/events/{event_id}/clip?pad_s=``: an MP4 of the event, cut once and cached
beside the timeline (``clips/``), answered with a redirect to a presigned URL of it; a later
analysis' event under ``/videos/{id}/analyses/{analysis_id}/events/{event_id}/clip``.

``X-Vidloc-Clip-Mode`` says how it was cut (``copy``: stream copy from a keyframe within one
frame of the start; ``reencode``: H.264 from the frame at the start), ``X-Vidloc-Clip-Start-S``
the source time of its first frame, ``X-Vidloc-Clip-Cache`` ``hit`` or ``miss``. A caller that
sends ``Accept: application/json`` gets the same as a ``ClipLink`` document (200) instead of the
redirect: a page whose ``<video>`` cannot send the API key asks this way (the viewer's search).

A live stream's clip is cut from the segments its timeline places on the stream clock
(``stream.segments_index``), each fetched at the version the timeline names; its cache entry is
named after those segments' etags.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from contracts import DEFAULT_ANALYSIS_ID, Timeline, TimelineEvent
from contracts.stream import SegmentPlace
from vidloc.adapters.object_store import ObjectStore, normalize_etag
from vidloc.api.ask import AnalysisId
from vidloc.api.auth import Caller, Reader
from vidloc.api.clipcut import (
    ClipCut,
    ClipMode,
    ClipWindow,
    SegmentFile,
    cache_name,
    clip_window,
    cut_clip,
    cut_segments,
    segments_for,
)
from vidloc.api.errors import ApiError
from vidloc.api.media import ERRORS, EventId, beside_timeline, event_of, timeline_of
from vidloc.api.routes import Deps, Services, VideoId
from vidloc.errors import InputError, ObjectMissing
from vidloc.settings import Settings

MAX_PAD_S = 60.0
# A window may start this much before the first indexed segment: segments are placed by their
# nominal start, which is a frame or two off the first frame in them.
SEGMENT_EDGE_SLACK_S = 0.25


@dataclass(frozen=True)
class StoredClip:
    bucket: str
    key: str
    mode: ClipMode
    first_frame_s: float
    cached: bool


def find_or_cut_clip(
    store: ObjectStore,
    settings: Settings,
    timeline: Timeline,
    event: TimelineEvent,
    *,
    tenant: str | None,
    pad_s: float = 0.0,
    analysis_id: str = DEFAULT_ANALYSIS_ID,
) -> StoredClip:
    """The cached clip of ``event`` (padded), cut and stored first when there is none.

    ApiError for what the caller must hear: a window over VIDLOC_CLIP_MAX_S (400), a source
    that was deleted (404 ``source_not_found``) or replaced since the timeline (409); for a
    stream, a timeline without a segment index or a window before it (409
    ``segments_not_indexed``), a segment missing (404 ``segment_not_found``) or replaced (409
    ``segment_changed``)."""
    try:
        window = clip_window(event, pad_s, timeline.video.duration_s, settings.clip_max_s)
    except ValueError as exc:
        raise ApiError(400, "clip_too_long", str(exc)) from exc
    picked: list[SegmentPlace] = []
    if timeline.stream is not None:
        picked = stream_segments(timeline, window)
        version = segments_tag(picked)
    else:
        version = normalize_etag(timeline.source.etag)
    stem = hashlib.sha256(event.id.encode()).hexdigest()[:16]
    key = beside_timeline(timeline.video_id, tenant, cache_name(stem, window, version), analysis_id)
    bucket = settings.timeline_bucket
    try:
        info = store.stat(bucket, key)
        mode: ClipMode = "copy" if info.metadata.get("clip-mode") == "copy" else "reencode"
        first = float(info.metadata.get("clip-first-frame-s", window.start_s))
        return StoredClip(bucket, key, mode, first, cached=True)
    except ObjectMissing:
        pass
    if settings.work_dir is not None:
        settings.work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vidloc-clip-", dir=settings.work_dir) as tmp:
        clip = Path(tmp) / "clip.mp4"
        try:
            if timeline.stream is not None:
                cut = _cut_stream(store, settings, timeline, picked, window, Path(tmp))
            else:
                cut = _cut_file(store, settings, timeline, window, Path(tmp))
        except InputError as exc:
            raise ApiError(422, "clip_failed", str(exc)) from exc
        store.upload_file(
            bucket,
            key,
            clip,
            content_type="video/mp4",
            metadata={"clip-mode": cut.mode, "clip-first-frame-s": f"{cut.first_frame_s:.6f}"},
        )
    return StoredClip(bucket, key, cut.mode, cut.first_frame_s, cached=False)


def stream_segments(timeline: Timeline, window: ClipWindow) -> list[SegmentPlace]:
    """The segments of a stream timeline that hold ``window``; ApiError when its index cannot
    say (a timeline written before segments were indexed, or a window older than the index
    keeps) or no segment covers the window."""
    state = timeline.stream
    assert state is not None
    if state.segments_index is None:
        raise ApiError(
            409,
            "segments_not_indexed",
            f"the timeline of stream {timeline.video_id!r} does not place its segments "
            "(written before segments were indexed); no clip can be cut from it",
        )
    index = state.segments_index
    if not index or window.start_s < index[0].start_s - SEGMENT_EDGE_SLACK_S:
        raise ApiError(
            409,
            "segments_not_indexed",
            f"stream {timeline.video_id!r}: the segments before "
            f"{index[0].start_s if index else state.covered_s:g} s are not in its index",
        )
    picked = segments_for(index, window)
    if not picked:
        raise ApiError(
            404,
            "segment_not_found",
            f"stream {timeline.video_id!r} has no segment between {window.start_s:g} s "
            f"and {window.end_s:g} s",
        )
    return picked


def segments_tag(picked: list[SegmentPlace]) -> str:
    """One version tag for the clip's cache name from every segment it is cut from."""
    joined = "\n".join(f"{p.key}:{normalize_etag(p.etag)}" for p in picked)
    return hashlib.sha256(joined.encode()).hexdigest()


def _cut_file(
    store: ObjectStore, settings: Settings, timeline: Timeline, window: ClipWindow, tmp: Path
) -> ClipCut:
    source = timeline.source
    etag = normalize_etag(source.etag)
    try:
        found = store.stat(source.bucket, source.key)
    except ObjectMissing as exc:
        raise ApiError(
            404, "source_not_found", f"the video of {timeline.video_id!r} is no longer stored"
        ) from exc
    if etag and found.etag != etag:
        raise ApiError(
            409, "source_changed", f"the video of {timeline.video_id!r} was replaced since"
        )
    video = tmp / "video"
    store.download(
        source.bucket,
        source.key,
        video,
        max_bytes=settings.max_object_bytes,
        expected_etag=found.etag,
    )
    return cut_clip(video, tmp / "clip.mp4", window)


def _cut_stream(
    store: ObjectStore,
    settings: Settings,
    timeline: Timeline,
    picked: list[SegmentPlace],
    window: ClipWindow,
    tmp: Path,
) -> ClipCut:
    """Fetch each segment at the version the timeline names, then cut across them."""
    bucket = timeline.source.bucket
    parts = []
    for place in picked:
        try:
            found = store.stat(bucket, place.key)
        except ObjectMissing as exc:
            raise ApiError(
                404,
                "segment_not_found",
                f"stream {timeline.video_id!r}: segment {place.seq} is no longer stored",
            ) from exc
        if found.etag != normalize_etag(place.etag):
            raise ApiError(
                409,
                "segment_changed",
                f"stream {timeline.video_id!r}: segment {place.seq} was replaced since",
            )
        path = tmp / f"segment-{place.seq}"
        store.download(
            bucket, place.key, path, max_bytes=settings.max_object_bytes, expected_etag=found.etag
        )
        parts.append(SegmentFile(path, place.start_s))
    return cut_segments(parts, tmp / "clip.mp4", window)


class ClipLink(BaseModel):
    """The clip route's answer to ``Accept: application/json``."""

    url: str = Field(description="presigned GET of the MP4, valid VIDLOC_API_PRESIGN_TTL_S")
    mode: ClipMode
    first_frame_s: float = Field(description="source time of the clip's first frame")
    cached: bool


@dataclass
class ClipService:
    store: ObjectStore
    settings: Settings


def _service(request: Request) -> ClipService:
    found: ClipService = request.app.state.clips
    return found


router = APIRouter()


_CLIP_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    302: {"description": "redirect to a presigned URL of the MP4 (X-Vidloc-Clip-* headers)"},
    200: {
        "model": ClipLink,
        "description": "with Accept: application/json, the presigned URL and how it was cut",
    },
    400: ERRORS[422] | {"description": "the clip would be longer than VIDLOC_CLIP_MAX_S"},
    409: ERRORS[422]
    | {
        "description": "the video or a stream segment was replaced since its timeline, "
        "or a stream timeline does not place the clip's segments"
    },
}
PadS = Annotated[float, Query(ge=0, le=MAX_PAD_S, allow_inf_nan=False)]


@router.get(
    "/videos/{video_id}/events/{event_id}/clip",
    response_class=RedirectResponse,
    status_code=302,
    tags=["videos"],
    responses=_CLIP_RESPONSES,
)
def event_clip(
    request: Request,
    deps: Deps,
    clips: Annotated[ClipService, Depends(_service)],
    caller: Reader,
    video_id: VideoId,
    event_id: EventId,
    pad_s: PadS = 0.0,
) -> Response:
    """An MP4 of the event (padded by ``pad_s`` on both sides), cut on the first request and
    cached in the timeline bucket; the answer redirects to a presigned URL of it (or, with
    ``Accept: application/json``, names it in a ClipLink)."""
    return _clip(request, deps, clips, caller, video_id, event_id, pad_s, DEFAULT_ANALYSIS_ID)


@router.get(
    "/videos/{video_id}/analyses/{analysis_id}/events/{event_id}/clip",
    response_class=RedirectResponse,
    status_code=302,
    tags=["analyses"],
    responses=_CLIP_RESPONSES,
)
def analysis_event_clip(
    request: Request,
    deps: Deps,
    clips: Annotated[ClipService, Depends(_service)],
    caller: Reader,
    video_id: VideoId,
    analysis_id: AnalysisId,
    event_id: EventId,
    pad_s: PadS = 0.0,
) -> Response:
    """The clip of an event of one analysis (``default``: the same as the route above); it is
    cached beside that analysis' timeline."""
    return _clip(request, deps, clips, caller, video_id, event_id, pad_s, analysis_id)


def _clip(
    request: Request,
    deps: Services,
    clips: ClipService,
    caller: Caller,
    video_id: str,
    event_id: str,
    pad_s: float,
    analysis_id: str,
) -> Response:
    timeline = timeline_of(deps, caller, video_id, analysis_id)
    event = event_of(timeline, event_id)
    clip = find_or_cut_clip(
        clips.store,
        clips.settings,
        timeline,
        event,
        tenant=caller.tenant,
        pad_s=pad_s,
        analysis_id=analysis_id,
    )
    url = deps.presign(clip.bucket, clip.key)
    headers = {
        "X-Vidloc-Clip-Mode": clip.mode,
        "X-Vidloc-Clip-Start-S": f"{clip.first_frame_s:.3f}",
        "X-Vidloc-Clip-Cache": "hit" if clip.cached else "miss",
        "Cache-Control": "no-store",
        "Vary": "Accept",
    }
    if "application/json" in request.headers.get("accept", ""):
        link = ClipLink(
            url=url, mode=clip.mode, first_frame_s=clip.first_frame_s, cached=clip.cached
        )
        return JSONResponse(link.model_dump(mode="json"), headers=headers)
    return RedirectResponse(url, status_code=302, headers=headers)
