"""``GET /videos/{id}/events-stream``: a video's progress and results as server-sent events,
for a browser's ``EventSource`` or ``curl -N``.

It follows the API's status feed (the same read_committed reader of ``video.progress`` and
``video.results`` that /videos uses), so it adds no Kafka consumer per client: each stream
looks at its video's slot of the status book a few times a second and sends what changed.
``event: progress`` and ``event: result`` carry the events' own JSON (contracts); the stream
ends after a final (not partial) result, with ``event: end``. A comment line every 15 s keeps
proxies from closing a quiet stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from contracts import encode
from producers.uploads import load_submission
from vidloc import names
from vidloc.api.auth import Reader
from vidloc.api.errors import ApiError
from vidloc.api.front import Front, FrontDoor
from vidloc.api.routes import _ERRORS, VideoId

router = APIRouter(tags=["videos"])

POLL_S = 0.25
# One server-sent event as OpenAPI 3.1 tools read a stream: its fields, data a JSON document.
_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["progress", "result", "end"]},
        "id": {"type": "string"},
        "data": {"type": "string", "description": "the progress or result event's JSON"},
    },
}
KEEPALIVE_S = 15.0


def _known(door: FrontDoor, tenant: str | None, video_id: str) -> bool | None:
    """True: the bus knows it, or its upload was announced (events are to come); False: only
    a stored timeline knows it (nothing runs: the stream ends at once); None: unknown."""
    if door.book.get(video_id, tenant) is not None:
        return True
    settings = door.settings
    if load_submission(door.store, settings.timeline_bucket, tenant, video_id) is not None:
        return True
    if door.store.exists(settings.timeline_bucket, names.timeline_key(video_id, tenant)):
        return False
    return None


def _frame(kind: str, ident: str, data: bytes) -> bytes:
    return b"event: " + kind.encode() + b"\nid: " + ident.encode() + b"\ndata: " + data + b"\n\n"


async def _ended() -> AsyncIterator[bytes]:
    yield b"event: end\ndata: {}\n\n"


async def _follow(
    door: FrontDoor, request: Request, tenant: str | None, video_id: str
) -> AsyncIterator[bytes]:
    sent: set[str] = set()
    quiet_since = time.monotonic()
    yield b"retry: 2000\n\n"
    while not await request.is_disconnected():
        view = door.book.get(video_id, tenant)
        out = []
        if view is not None:
            if view.progress is not None and view.progress.event_id not in sent:
                sent.add(view.progress.event_id)
                out.append(_frame("progress", view.progress.event_id, encode(view.progress)))
            if view.result is not None and view.result.event_id not in sent:
                sent.add(view.result.event_id)
                out.append(_frame("result", view.result.event_id, encode(view.result)))
        for frame in out:
            yield frame
        if out:
            quiet_since = time.monotonic()
        if view is not None and view.result is not None and not view.result.partial:
            progress = view.progress
            if view.result.event_id in sent and (
                progress is None
                or progress.stage in ("done", "failed")
                or progress.at <= view.result.created_at
            ):
                yield b"event: end\ndata: {}\n\n"
                return
        if time.monotonic() - quiet_since >= KEEPALIVE_S:
            quiet_since = time.monotonic()
            yield b": keep-alive\n\n"
        await asyncio.sleep(POLL_S)


@router.get(
    "/videos/{video_id}/events-stream",
    response_class=StreamingResponse,
    responses={
        **_ERRORS,
        200: {"description": "events", "content": {"text/event-stream": {"schema": _EVENT}}},
    },
)
def events_stream(
    door: Front, caller: Reader, request: Request, video_id: VideoId
) -> StreamingResponse:
    """Progress and results of one video as they arrive (text/event-stream)."""
    known = _known(door, caller.tenant, video_id)
    if known is None:
        raise ApiError(404, "video_not_found", f"no video {video_id!r}")
    return StreamingResponse(
        _follow(door, request, caller.tenant, video_id) if known else _ended(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
