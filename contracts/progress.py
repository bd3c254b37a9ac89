"""``video.progress`` v1: how far a job has come; best effort, newest wins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal, get_args

from pydantic import Field

from contracts.codec import decode_document
from contracts.common import Count, Document, SafeId, Text, Timestamp
from contracts.versions import PROGRESS_V1

Stage = Literal[
    "queued",
    "downloading",
    "probing",
    "sampling",
    "localizing",
    "merging",
    "storing",
    "done",
    "failed",
]
STAGES: tuple[Stage, ...] = get_args(Stage)


class ProgressEvent(Document):
    """``chunks_total`` is 0 until the job knows it; ``chunks_done`` is not checked against it,
    as a progress report is advisory and JSON Schema could not say so either."""

    SCHEMA: ClassVar[str] = PROGRESS_V1

    schema_id: Literal["vidloc.progress.v1"] = Field(default=PROGRESS_V1, alias="schema")
    event_id: Text
    video_id: Text
    job_id: Text
    tenant: SafeId | None = Field(
        default=None,
        description="The tenant whose prefix (tenants/<tenant>/) the source key is under; "
        "absent for none. Readers trust the key prefix over this field",
    )
    analysis_id: SafeId | None = Field(
        default=None,
        description="The analysis of the video this is about (vidloc.ingest.v2); absent for "
        "its first analysis",
    )
    stage: Stage
    chunks_done: Count
    chunks_total: Count
    frames_done: Count | None = None
    message: str | None = Field(default=None, max_length=2000)
    at: Timestamp


def decode_progress(data: bytes | str | Mapping[str, Any]) -> ProgressEvent:
    return decode_document(data, ProgressEvent, PROGRESS_V1)
