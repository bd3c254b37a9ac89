"""``video.ingest``: one video to localize, as the bridge or ``vidloc submit`` sends it.

v1 asks for a video's first analysis; v2 (the same fields plus ``analysis``) asks a new question
of a video already analysed, answered from the frames kept by its first analysis.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.codec import FieldProblem, decode_document
from contracts.common import (
    Document,
    LocalizerName,
    Part,
    PositiveCount,
    SafeId,
    SourceObject,
    Text,
    Timestamp,
)
from contracts.span import VideoSpan
from contracts.stream import StreamSegment
from contracts.versions import INGEST_V1, INGEST_V2

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


# The id of a video's first analysis: the one every v1 event asks for, stored where timelines
# have always been (the default routes read it).
DEFAULT_ANALYSIS_ID = "default"


def derive_analysis_id(event_id: str) -> str:
    """The analysis id of a v2 ingest message: a replay of the message is the same analysis."""
    return "a-" + hashlib.sha256(f"analysis\x00{event_id}".encode()).hexdigest()[:16]


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


class AnalysisRequest(Part):
    """Which analysis of the video a v2 event asks for; its question is in ``options``."""

    id: SafeId = Field(description="The analysis id (derive_analysis_id); never 'default'")


class IngestEvent(Document):
    SCHEMA: ClassVar[str] = INGEST_V1
    # _versioned below, as JSON Schema says it (each version's file pins its own id).
    SCHEMA_RULES: ClassVar[dict[str, Any]] = {}

    schema_id: Literal["vidloc.ingest.v1", "vidloc.ingest.v2"] = Field(
        default=INGEST_V1, alias="schema"
    )
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
    analysis: AnalysisRequest | None = Field(
        default=None,
        description="v2 only: a new analysis of an already analysed video, asked with "
        "options.prompt and options.labels",
    )

    @model_validator(mode="after")
    def _versioned(self) -> IngestEvent:
        if self.schema_id == INGEST_V2:
            if self.analysis is None:
                raise FieldProblem("analysis", f"required by {INGEST_V2}")
            if self.analysis.id == DEFAULT_ANALYSIS_ID:
                raise FieldProblem("analysis.id", f"{DEFAULT_ANALYSIS_ID!r} is the first analysis")
            if not (self.options.prompt or "").strip() and not self.options.labels:
                raise FieldProblem("options.prompt", "an analysis asks a prompt or labels")
            if self.stream is not None:
                raise FieldProblem("stream", "a live stream segment has no analyses")
        elif self.analysis is not None:
            raise FieldProblem("schema", f"an analysis is asked with {INGEST_V2}")
        return self

    @property
    def analysis_id(self) -> str:
        """The analysis this event asks for: ``"default"`` for a v1 event."""
        return DEFAULT_ANALYSIS_ID if self.analysis is None else self.analysis.id

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
    return decode_document(data, IngestEvent, (INGEST_V1, INGEST_V2))
