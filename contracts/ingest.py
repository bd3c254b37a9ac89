"""``video.ingest`` v1: one video to localize, as the bridge or ``vidloc submit`` sends it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.codec import decode_document
from contracts.common import (
    Document,
    LocalizerName,
    PositiveCount,
    SafeId,
    SourceObject,
    Text,
    Timestamp,
)
from contracts.span import VideoSpan
from contracts.stream import StreamSegment
from contracts.versions import INGEST_V1

PositiveFloat = Annotated[float, Field(gt=0)]


def _normalize_etag(etag: str) -> str:
    # S3 notifications quote the etag, HEAD responses may not; both name the same object version.
    return etag.strip().strip('"').lower()


def _version_digest(bucket: str, key: str, etag: str) -> str:
    # NUL separates the parts because it cannot occur in a valid bucket or key.
    return hashlib.sha256(f"{bucket}\x00{key}\x00{_normalize_etag(etag)}".encode()).hexdigest()


def derive_video_id(bucket: str, key: str, etag: str) -> str:
    """The video id of an object version: same object, same id; a re-upload gets a new one."""
    return "v-" + _version_digest(bucket, key, etag)[:24]


def derive_version_tag(bucket: str, key: str, etag: str) -> str:
    """A short name of one object version, for ids that say "this work was already done".

    The key carries the tenant (``tenants/<t>/...``), so two tenants' objects under one relative
    key differ, and so do two uploads of one key; the same version (etag quoted or not, any
    case) always gets the same tag. 48 bits: ids that carry it are already scoped by stream
    and sequence number (docs/idempotency.md).
    """
    return _version_digest(bucket, key, etag)[:12]


def derive_job_id(event_id: str) -> str:
    """The job id of an ingest message, so a replay of the same message resumes the same job."""
    return "j-" + hashlib.sha256(event_id.encode("utf-8")).hexdigest()[:24]


class IngestOptions(BaseModel):
    """What the submitter asked for. Unknown keys are refused so a typo is not silently ignored;
    ``extra`` is the free-form place for anything new."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    localizer: LocalizerName | None = None
    prompt: Annotated[str, Field(max_length=8000)] | None = None
    labels: list[Text] = Field(default_factory=list, max_length=100)
    sample_fps: Annotated[float, Field(gt=0, le=60)] | None = None
    chunk_s: PositiveFloat | None = None
    chunk_overlap_s: Annotated[float, Field(ge=0)] | None = None
    max_frames: PositiveCount | None = None
    # Quality/cost knobs; None means the worker's settings decide.
    sampling: Literal["uniform", "adaptive"] | None = None
    token_budget_per_min: PositiveFloat | None = None
    refine: bool | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class IngestEvent(Document):
    SCHEMA: ClassVar[str] = INGEST_V1

    schema_id: Literal["vidloc.ingest.v1"] = Field(default=INGEST_V1, alias="schema")
    event_id: Text
    video_id: SafeId | None = Field(
        default=None, description="Optional; else derived from bucket + key + etag"
    )
    tenant: SafeId | None = Field(
        default=None,
        description="The tenant whose prefix (tenants/<tenant>/) the source key is under; "
        "absent for none. Readers trust the key prefix over this field",
    )
    source: SourceObject
    options: IngestOptions = Field(default_factory=IngestOptions)
    submitted_at: Timestamp
    stream: StreamSegment | None = Field(
        default=None,
        description="Present when the object is one segment of a live stream (docs/streams.md)",
    )
    span: VideoSpan | None = Field(
        default=None,
        description="Present when the event carries one span of a long video: an order to "
        "localize its chunks, or the report that they are done (docs/delivery.md)",
    )

    @property
    def effective_video_id(self) -> str:
        """The given ``video_id``, else one derived from the object version."""
        if self.video_id is not None:
            return self.video_id
        return derive_video_id(self.source.bucket, self.source.key, self.source.etag)

    @property
    def job_id(self) -> str:
        return derive_job_id(self.event_id)

    @property
    def version_tag(self) -> str:
        """The source object version's :func:`derive_version_tag`."""
        return derive_version_tag(self.source.bucket, self.source.key, self.source.etag)


def decode_ingest(data: bytes | str | Mapping[str, Any]) -> IngestEvent:
    return decode_document(data, IngestEvent, INGEST_V1)
