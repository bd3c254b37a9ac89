"""``POST /videos/{id}/cancel``: stop a running video's job (scope ``submit``, the key's tenant).

The job is the one ``GET /videos/{id}`` shows running (its ``job_id``, from the status feed);
the route writes its cancel marker (``producers/cancels.py``) and answers 202. The workers end
the job between chunks with a failed result ``cancelled`` (docs/delivery.md "Cancelling").
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter

from producers.cancels import cancel_refusal, request_cancel
from vidloc.api.errors import ApiError
from vidloc.api.front import Submitter
from vidloc.api.models import ErrorResponse
from vidloc.api.routes import Deps, VideoId
from vidloc.client.models import Cancel

log = logging.getLogger(__name__)

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (401, "no API key, or not a valid one"),
        (403, "the API key lacks the submit scope"),
        (404, "unknown video, or another tenant's (video_not_found)"),
        (409, "the video has no running job: it succeeded or failed (video_not_running)"),
        (429, "rate limited (see Retry-After)"),
        (503, "S3 or Kafka unreachable"),
    )
}

router = APIRouter(tags=["videos"])


@router.post("/videos/{video_id}/cancel", status_code=202, response_model=Cancel, responses=_ERRORS)
def cancel_video(deps: Deps, caller: Submitter, video_id: VideoId) -> Cancel:
    """Cancel the video's running job: its workers stop between chunks and the job ends with
    a failed result ``cancelled`` (the chunks already paid stay in its bill). Asked twice, one
    cancel."""
    timelines = deps.timelines
    state = deps.derive(caller, video_id, has_timeline=timelines.exists(video_id, caller.tenant))
    refused = cancel_refusal(
        video_id, state.status if state is not None else None, state.job_id if state else None
    )
    if refused is not None:
        raise ApiError(refused.status, refused.code, refused.message)
    assert state is not None and state.job_id is not None
    record = request_cancel(
        timelines.store,
        timelines.bucket,
        video_id=video_id,
        job_id=state.job_id,
        tenant=caller.tenant,
        key_id=caller.key_id,
        now=datetime.now(UTC),
    )
    log.info(
        "cancel asked (key id %s)",
        caller.key_id or "-",
        extra={"video_id": video_id, "job_id": record.job_id},
    )
    return Cancel(video_id=video_id, job_id=record.job_id, requested_at=record.requested_at)
