"""A user's cancel of a running video: what the API (``POST /videos/{id}/cancel``) and
``vidloc cancel`` both check and write.

The caller tells where the video stands (from ``video.progress``/``video.results``, as
``GET /videos/{id}`` does): only a running (or stalled) job can be cancelled, and only by its
job id. The cancel is a small record at ``names.cancel_key`` in the timeline bucket; every
worker on the job looks for it between chunks, and the job ends with a failed result
``cancelled`` (docs/delivery.md "Cancelling"). Nothing is published: the workers' own
transactions announce the end, exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, ValidationError

from vidloc import names
from vidloc.adapters.object_store import ObjectStore
from vidloc.errors import ObjectMissing

__all__ = ["CANCELLABLE", "CancelRecord", "Refusal", "cancel_refusal", "request_cancel"]

# The statuses (the API's VideoState.status) whose job a cancel can still stop.
CANCELLABLE = frozenset({"running", "stalled"})


@dataclass(frozen=True)
class Refusal:
    """Why a cancel is refused: an HTTP status, the API's error code, and a message."""

    status: int
    code: str
    message: str


class CancelRecord(BaseModel):
    """What the cancel marker holds (workers only look for it; people read it)."""

    model_config = ConfigDict(extra="ignore")

    video_id: str
    job_id: str
    tenant: str | None = None
    key_id: str | None = None  # the API key that asked (None: the CLI, or no keys)
    requested_at: datetime


def cancel_refusal(video_id: str, status: str | None, job_id: str | None) -> Refusal | None:
    """None when the video's job can be cancelled; ``status`` None: the tenant has no such
    video (another tenant's answers the same)."""
    if status is None:
        return Refusal(404, "video_not_found", f"no video {video_id!r}")
    if status not in CANCELLABLE or job_id is None:
        return Refusal(
            409,
            "video_not_running",
            f"video {video_id!r} is {status}: no job of it is running to cancel",
        )
    return None


def request_cancel(
    store: ObjectStore,
    bucket: str,
    *,
    video_id: str,
    job_id: str,
    tenant: str | None,
    key_id: str | None,
    now: datetime,
) -> CancelRecord:
    """Write the job's cancel marker, or answer the one already there (a cancel asked twice
    is one cancel, as first asked)."""
    key = names.cancel_key(video_id, job_id, tenant)
    try:
        return CancelRecord.model_validate_json(store.get_bytes(bucket, key))
    except (ObjectMissing, ValidationError):
        pass
    record = CancelRecord(
        video_id=video_id, job_id=job_id, tenant=tenant, key_id=key_id, requested_at=now
    )
    store.put_bytes(bucket, key, record.model_dump_json().encode())
    return record
