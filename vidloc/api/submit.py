"""``POST /videos``: start a job over HTTP (scope ``submit``, within the key's tenant).

Two ways in. Name an object already under the tenant's prefix (``key``): the API stats it and
publishes its ingest event at once, as ``vidloc submit`` does. Or announce an upload
(``file_name``, ``size``): the API names the video, writes its submission record and answers a
presigned single PUT, or for a file over ``VIDLOC_API_UPLOAD_PART_BYTES`` a multipart upload
(one presigned URL per part, then ``POST /videos/{id}/upload/complete`` with the parts' etags).
The job starts when the store notifies the finished upload: the bridge finds the record by the
object's key (producers/uploads.py).
"""

from __future__ import annotations

import logging
import math
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from fastapi import APIRouter
from pydantic import ValidationError

from contracts import ContractError, IngestOptions, ObjectRef, SourceObject, check_key, encode
from contracts import derive_video_id as video_id_of
from producers.uploads import (
    Submission,
    ingest_for_object,
    load_submission,
    save_submission,
    upload_key,
)
from vidloc import names
from vidloc.api.errors import ApiError
from vidloc.api.front import Front, FrontDoor, Submitter
from vidloc.api.models import ErrorResponse
from vidloc.api.routes import VideoId
from vidloc.client.models import (
    MAX_PARTS,
    CompleteUpload,
    PartUpload,
    SubmitRequest,
    SubmitResponse,
    UploadPlan,
)
from vidloc.errors import ObjectMissing
from vidloc.tenancy import tenant_key, tenant_of_key

log = logging.getLogger(__name__)

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "the body is not JSON (bad_request)"),
        (401, "no API key, or not a valid one"),
        (403, "the API key lacks the submit scope"),
        (404, "no such object under the tenant's prefix (object_not_found), or no such upload"),
        (409, "the upload does not match what was announced (upload_mismatch)"),
        (413, "over VIDLOC_API_SUBMIT_MAX_BYTES (video_too_large)"),
        (422, "invalid request (invalid_request, key_not_allowed, not_a_video_name)"),
        (429, "rate limited, or over VIDLOC_API_SUBMIT_PER_DAY (submit_quota_exceeded)"),
        (503, "S3 or Kafka unreachable"),
    )
}

router = APIRouter(tags=["submit"])


def _options(body: SubmitRequest) -> IngestOptions:
    given = body.options.model_dump(exclude_unset=True)
    if body.prompt is not None:
        given["prompt"] = body.prompt
    if body.labels:
        given["labels"] = body.labels
    try:
        return IngestOptions(**given)
    except ValidationError as exc:
        raise ApiError(422, "invalid_request", str(ContractError.from_validation(exc))) from exc


def _too_large(size: int, limit: int) -> ApiError:
    return ApiError(413, "video_too_large", f"{size} bytes is over the {limit} byte limit")


@router.post("/videos", status_code=201, response_model=SubmitResponse, responses=_ERRORS)
def submit_video(door: Front, caller: Submitter, body: SubmitRequest) -> SubmitResponse:
    """Start a job: for an object already in the bucket (``key``), or for an upload to come
    (``file_name`` + ``size``: answered with presigned upload URLs; the job starts when the
    upload completes)."""
    if (body.key is None) == (body.file_name is None):
        raise ApiError(
            422, "invalid_request", "give key (an object in the bucket) or file_name and size"
        )
    options = _options(body)
    if body.key is not None:
        return _submit_object(door, caller.tenant, caller.key_id, body.key, options)
    assert body.file_name is not None
    return _announce_upload(door, caller.tenant, caller.key_id, body, options)


def _submit_object(
    door: FrontDoor, tenant: str | None, key_id: str | None, given: str, options: IngestOptions
) -> SubmitResponse:
    settings = door.settings
    owner = tenant_of_key(given)
    if tenant is not None and owner not in (None, tenant):
        # Another tenant's object answers like a missing one.
        raise ApiError(404, "object_not_found", f"no object {given!r}")
    try:
        key = check_key(tenant_key(tenant, given))
    except ValueError as exc:
        raise ApiError(422, "key_not_allowed", f"{given!r}: {exc}") from exc
    try:
        info = door.store.stat(settings.video_bucket, key)
    except ObjectMissing:
        raise ApiError(404, "object_not_found", f"no object {given!r}") from None
    if info.size > settings.api_submit_max_bytes:
        raise _too_large(info.size, settings.api_submit_max_bytes)
    door.count_submission(key_id)
    now = datetime.now(UTC)
    submission = Submission(
        video_id=video_id_of(info.bucket, info.key, info.etag),
        tenant=tenant,
        key_id=key_id,
        bucket=info.bucket,
        key=info.key,
        size=info.size,
        options=options,
        created_at=now,
    )
    save_submission(door.store, settings.timeline_bucket, submission)
    source = SourceObject(bucket=info.bucket, key=info.key, etag=info.etag, size=info.size)
    event = ingest_for_object(source, submission, now=now)
    door.publisher().publish(names.TOPIC_INGEST, submission.video_id, encode(event))
    log.info(
        "submitted %s/%s over HTTP (key id %s)", info.bucket, info.key, key_id or "-",
        extra={"video_id": submission.video_id, "job_id": event.job_id},
    )  # fmt: skip
    return SubmitResponse(
        video_id=submission.video_id,
        status="queued",
        job_id=event.job_id,
        source=ObjectRef(bucket=info.bucket, key=info.key),
    )


def _file_name(given: str) -> str:
    name = PurePosixPath(given.replace("\\", "/")).name
    if PurePosixPath(name).suffix.lower() not in names.VIDEO_EXTENSIONS:
        raise ApiError(
            422,
            "not_a_video_name",
            f"{given!r}: the file name must end in one of "
            + ", ".join(sorted(names.VIDEO_EXTENSIONS)),
        )
    return name


def _announce_upload(
    door: FrontDoor,
    tenant: str | None,
    key_id: str | None,
    body: SubmitRequest,
    options: IngestOptions,
) -> SubmitResponse:
    settings = door.settings
    if body.size is None:
        raise ApiError(422, "invalid_request", "an upload needs its size in bytes")
    if body.size > settings.api_submit_max_bytes:
        raise _too_large(body.size, settings.api_submit_max_bytes)
    assert body.file_name is not None
    name = _file_name(body.file_name)
    video_id = f"api-{uuid.uuid4().hex[:24]}"
    try:
        key = check_key(upload_key(tenant, video_id, name))
    except ValueError as exc:
        raise ApiError(422, "key_not_allowed", f"{body.file_name!r}: {exc}") from exc
    part_bytes = settings.api_upload_part_bytes
    parts = math.ceil(body.size / part_bytes)
    if parts > MAX_PARTS:
        raise _too_large(body.size, part_bytes * MAX_PARTS)
    door.count_submission(key_id)
    bucket, ttl = settings.video_bucket, settings.api_upload_ttl_s
    expires_at = datetime.now(UTC) + timedelta(seconds=ttl)
    if parts <= 1:
        upload_id = None
        plan = UploadPlan(url=door.store.presigned_put_url(bucket, key, ttl), expires_at=expires_at)
    else:
        upload_id = door.store.start_multipart(bucket, key, body.content_type)
        plan = UploadPlan(
            upload_id=upload_id,
            part_size=part_bytes,
            parts=[
                PartUpload(
                    part_number=n,
                    url=door.store.presigned_part_url(bucket, key, upload_id, n, ttl),
                    size=min(part_bytes, body.size - (n - 1) * part_bytes),
                )
                for n in range(1, parts + 1)
            ],
            complete_url=f"/videos/{video_id}/upload/complete",
            expires_at=expires_at,
        )
    save_submission(
        door.store,
        settings.timeline_bucket,
        Submission(
            video_id=video_id,
            tenant=tenant,
            key_id=key_id,
            bucket=bucket,
            key=key,
            size=body.size,
            options=options,
            created_at=datetime.now(UTC),
            upload_id=upload_id,
        ),
    )
    log.info(
        "announced an upload to %s/%s (%d bytes, %d parts, key id %s)",
        bucket, key, body.size, parts, key_id or "-", extra={"video_id": video_id},
    )  # fmt: skip
    return SubmitResponse(
        video_id=video_id,
        status="awaiting_upload",
        source=ObjectRef(bucket=bucket, key=key),
        upload=plan,
    )


@router.post(
    "/videos/{video_id}/upload/complete",
    response_model=SubmitResponse,
    responses=_ERRORS,
)
def complete_upload(
    door: Front, caller: Submitter, video_id: VideoId, body: CompleteUpload
) -> SubmitResponse:
    """Join the uploaded parts of a multipart upload; the job starts once the store has the
    object (its notification reaches the bridge)."""
    settings = door.settings
    submission = load_submission(door.store, settings.timeline_bucket, caller.tenant, video_id)
    if submission is None or submission.upload_id is None:
        raise ApiError(404, "upload_not_found", f"no multipart upload pending for {video_id!r}")
    if submission.upload_id != body.upload_id:
        raise ApiError(409, "upload_mismatch", "that is not this video's upload id")
    uploaded = door.store.uploaded_parts(submission.bucket, submission.key, body.upload_id)
    total = 0
    for part in body.parts:
        have = uploaded.get(part.part_number)
        if have is None or have[0] != part.etag.strip('"'):
            raise ApiError(409, "upload_mismatch", f"part {part.part_number} was not uploaded")
        total += have[1]
    limit = min(settings.api_submit_max_bytes, submission.size or settings.api_submit_max_bytes)
    if total > limit:
        door.store.abort_multipart(submission.bucket, submission.key, body.upload_id)
        raise _too_large(total, limit)
    door.store.complete_multipart(
        submission.bucket,
        submission.key,
        body.upload_id,
        sorted((p.part_number, p.etag) for p in body.parts),
    )
    save_submission(
        door.store, settings.timeline_bucket, submission.model_copy(update={"upload_id": None})
    )
    return SubmitResponse(
        video_id=video_id,
        status="queued",
        source=ObjectRef(bucket=submission.bucket, key=submission.key),
    )
