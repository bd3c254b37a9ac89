"""The HTTP shapes of submitting and of webhooks, shared by the API (which serves them) and the
client (which sends and reads them). Kafka's and S3's documents stay in ``contracts``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts import IngestOptions, ObjectRef

# Parts of one multipart upload: their etags must fit in one request body (64 KiB by default);
# 500 parts of VIDLOC_API_UPLOAD_PART_BYTES (64 MiB) are 32 GiB.
MAX_PARTS = 500
SubmitStatus = Literal["awaiting_upload", "queued"]
HookEvent = Literal["result", "progress"]


class SubmitRequest(BaseModel):
    """Either an upload to come (``file_name`` and ``size``) or an object already under the
    tenant's prefix of the video bucket (``key``)."""

    model_config = ConfigDict(extra="forbid")

    file_name: str | None = Field(default=None, max_length=255, description="for an upload")
    size: int | None = Field(default=None, ge=1, description="bytes of the upload")
    content_type: str = Field(default="application/octet-stream", max_length=128)
    key: str | None = Field(
        default=None, max_length=1024, description="an object in the bucket (tenant-relative)"
    )
    prompt: str | None = Field(default=None, max_length=8000)
    labels: list[str] = Field(default_factory=list, max_length=100)
    options: IngestOptions = Field(
        default_factory=IngestOptions, description="any other ingest option (localizer, ...)"
    )


class PartUpload(BaseModel):
    part_number: int
    url: str
    size: int = Field(description="bytes of the file this part carries")


class UploadPlan(BaseModel):
    """PUT the file to ``url``; or, when ``upload_id`` is set, each part's bytes to its URL,
    then POST their etags to ``complete_url``."""

    method: Literal["PUT"] = "PUT"
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    upload_id: str | None = None
    part_size: int | None = None
    parts: list[PartUpload] = Field(default_factory=list)
    complete_url: str | None = None
    expires_at: datetime


class SubmitResponse(BaseModel):
    video_id: str
    status: SubmitStatus
    source: ObjectRef | None = Field(default=None, description="where the video is (or goes)")
    job_id: str | None = Field(default=None, description="known once the ingest event is out")
    upload: UploadPlan | None = None


class CompletedPart(BaseModel):
    part_number: int = Field(ge=1, le=MAX_PARTS)
    etag: str = Field(max_length=66)


class CompleteUpload(BaseModel):
    upload_id: str = Field(max_length=1024)
    parts: list[CompletedPart] = Field(min_length=1, max_length=MAX_PARTS)


def _results_only() -> list[HookEvent]:
    return ["result"]


class WebhookSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048)
    events: list[HookEvent] = Field(default_factory=_results_only, min_length=1)
    scope: Literal["tenant", "key"] = Field(
        default="tenant", description="every video of the tenant, or only this key's submissions"
    )


class WebhookInfo(BaseModel):
    id: str
    url: str
    events: list[HookEvent]
    scope: Literal["tenant", "key"]
    created_at: datetime


class WebhookCreated(WebhookInfo):
    secret: str = Field(description="the signing secret; shown once")


class WebhookList(BaseModel):
    webhooks: list[WebhookInfo]


class Video(BaseModel):
    """``GET /videos/{id}``: where one video stands (the API's VideoState)."""

    model_config = ConfigDict(extra="allow")

    video_id: str
    status: Literal["succeeded", "failed", "running", "stalled"]
    job_id: str | None = None
    stage: str | None = None
    chunks_done: int | None = None
    chunks_total: int | None = None
    has_timeline: bool = False
    events: int | None = None
    duration_s: float | None = None
    error: dict[str, str] | None = None
    updated_at: datetime | None = None


# -- analyses (docs/api.md "Analyses") ----------------------------------------------------

AnalysisStatus = Literal["running", "succeeded", "failed", "stalled"]


class AskRequest(BaseModel):
    """``POST /videos/{id}/analyses``: a new question of an analysed video. The question is
    ``prompt`` and/or ``labels`` (at least one not empty); ``options`` may set the localizer
    and sampling as a submission's may (``options.prompt``/``labels`` are read when the fields
    are not given)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str | None = Field(default=None, description="at most 8000 characters")
    labels: list[str] = Field(default_factory=list, max_length=100)
    options: IngestOptions = Field(
        default_factory=IngestOptions, description="any other ingest option (localizer, ...)"
    )


class AnalysisLinks(BaseModel):
    self: str
    timeline: str
    view: str


class Analysis(BaseModel):
    """One analysis of a video: its question, where it stands, where its timeline is."""

    model_config = ConfigDict(extra="allow")

    analysis_id: str = Field(description="'default' for the video's first analysis")
    video_id: str
    status: AnalysisStatus
    prompt: str | None = None
    labels: list[str] = Field(default_factory=list)
    job_id: str | None = None
    stage: str | None = Field(default=None, description="progress stage while running")
    has_timeline: bool = False
    events: int | None = None
    error: dict[str, str] | None = None
    created_at: datetime | None = Field(default=None, description="when it was asked")
    updated_at: datetime | None = None
    links: AnalysisLinks


class AnalysisList(BaseModel):
    video_id: str
    analyses: list[Analysis] = Field(description="the first analysis ('default') first")


# -- cancelling (docs/api.md "Cancelling") ------------------------------------------------


class Cancel(BaseModel):
    """``POST /videos/{id}/cancel``: the cancel of a running job, asked (202). The job ends
    with a failed result ``cancelled`` once its workers see it (between chunks)."""

    model_config = ConfigDict(extra="allow")

    video_id: str
    job_id: str
    status: Literal["cancelling"] = "cancelling"
    requested_at: datetime
