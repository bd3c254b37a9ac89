"""Uploads announced over HTTP (``POST /videos``): where they go and what they start.

The API names the video before its bytes exist, so it writes a small *submission record*
(the options, the submitting key, the object key) to the timeline bucket and hands the client a
presigned upload to ``<tenant root>uploads/api/<video_id>/<file name>``. When the store
notifies the upload, the bridge finds the record from the key alone and publishes the ingest
event with the record's video id and options (:func:`adopt`), so the job starts when the upload
completes, through the same path as any other upload.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, ValidationError

from contracts import ContractError, IngestEvent, IngestOptions, SourceObject
from contracts.common import SAFE_ID_PATTERN
from vidloc import names
from vidloc.adapters.object_store import ObjectStore
from vidloc.errors import ObjectMissing

__all__ = [
    "Submission",
    "adopt",
    "ingest_for_object",
    "load_submission",
    "save_submission",
    "submission_key",
    "upload_key",
    "video_of_upload",
]

log = logging.getLogger(__name__)

UPLOAD_DIR = "uploads/api"
SUBMISSION_DIR = "submissions"
_UPLOAD_KEY = re.compile(
    rf"^(?:{names.TENANT_PREFIX}/(?P<tenant>{SAFE_ID_PATTERN})/)?{UPLOAD_DIR}/"
    rf"(?P<video>{SAFE_ID_PATTERN})/[^/]+$"
)


class Submission(BaseModel):
    """What ``POST /videos`` promised: the job that the upload of ``key`` starts."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    video_id: str
    tenant: str | None = None
    key_id: str | None = None  # the API key that submitted it (None: no keys configured)
    bucket: str
    key: str
    size: int | None = None
    options: IngestOptions = IngestOptions()
    created_at: datetime
    upload_id: str | None = None  # a multipart upload's id, until the API completes it


def upload_key(tenant: str | None, video_id: str, file_name: str) -> str:
    return f"{names.tenant_root(tenant)}{UPLOAD_DIR}/{video_id}/{file_name}"


def video_of_upload(key: str) -> tuple[str | None, str] | None:
    """(tenant, video id) of a key :func:`upload_key` made, None for any other key."""
    match = _UPLOAD_KEY.match(key)
    if match is None:
        return None
    return match.group("tenant"), match.group("video")


def submission_key(tenant: str | None, video_id: str) -> str:
    """The record's key in the timeline bucket (under the tenant, like its checkpoints)."""
    return f"{names.tenant_root(tenant)}{SUBMISSION_DIR}/{video_id}.json"


def save_submission(store: ObjectStore, bucket: str, submission: Submission) -> None:
    key = submission_key(submission.tenant, submission.video_id)
    store.put_bytes(bucket, key, submission.model_dump_json().encode("utf-8"))


def load_submission(
    store: ObjectStore, bucket: str, tenant: str | None, video_id: str
) -> Submission | None:
    """The record, None when there is none or it is unreadable (logged)."""
    try:
        data = store.get_bytes(bucket, submission_key(tenant, video_id))
    except ObjectMissing:
        return None
    try:
        return Submission.model_validate_json(data)
    except ValidationError as exc:
        log.warning("unreadable submission record for %s: %s", video_id, exc)
        return None


def adopt(event: IngestEvent, store: ObjectStore, timeline_bucket: str) -> IngestEvent:
    """``event`` (from a notification) as the submission of its object asked for: its video
    id and options. Any other object's event is returned unchanged, and so is one whose record
    names another key (a record is never applied to an object it did not announce)."""
    place = video_of_upload(event.source.key)
    if place is None:
        return event
    tenant, video_id = place
    submission = load_submission(store, timeline_bucket, tenant, video_id)
    if submission is None or submission.key != event.source.key:
        return event
    try:
        return event.model_copy(
            update={
                "video_id": video_id,
                "tenant": tenant,
                "options": submission.options,
                "event_id": f"api-{video_id}-{event.source.etag or 'noetag'}",
            }
        )
    except (ContractError, ValidationError) as exc:  # pragma: no cover - record was validated
        log.warning("submission %s not applied: %s", video_id, exc)
        return event


def ingest_for_object(
    source: SourceObject, submission: Submission, *, now: datetime
) -> IngestEvent:
    """The ingest event of an object already in the bucket, submitted by name: each
    submission is its own request (and job), as with ``vidloc submit``."""
    return IngestEvent(
        event_id=f"api-{uuid.uuid4()}",
        video_id=submission.video_id,
        source=source,
        tenant=submission.tenant,
        options=submission.options,
        submitted_at=now,
    )
