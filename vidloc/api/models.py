"""Response bodies of the query API (the timeline itself is ``contracts.Timeline``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from contracts import TimelineEvent

# stalled: a job was running but its worker stopped reporting progress (see api_stalled_after_s).
VideoStatus = Literal["succeeded", "failed", "running", "stalled"]


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, snake_case: video_not_found, invalid_request, ...")
    message: str


class ErrorResponse(BaseModel):
    """The one shape of every error the API returns (404, 405, 422, 500, 503)."""

    error: ErrorDetail


class VideoState(BaseModel):
    """Where one video stands, derived from its stored timeline and the latest bus events."""

    video_id: str
    status: VideoStatus
    job_id: str | None = None
    stage: str | None = Field(default=None, description="progress stage while running")
    chunks_done: int | None = None
    chunks_total: int | None = None
    has_timeline: bool = Field(description="a timeline.json is stored for this video")
    events: int | None = Field(default=None, description="events in the latest timeline")
    duration_s: float | None = None
    error: ErrorDetail | None = None
    updated_at: datetime | None = None


class VideoList(BaseModel):
    videos: list[VideoState]
    total: int = Field(description="matching videos before limit/offset")


class EventQuery(BaseModel):
    labels: list[str] = Field(default_factory=list)
    start_s: float | None = None
    end_s: float | None = None


class EventsResponse(BaseModel):
    video_id: str
    job_id: str
    duration_s: float
    query: EventQuery
    count: int
    events: list[TimelineEvent]


class Health(BaseModel):
    status: Literal["ok", "ready"]
    checks: dict[str, str] = Field(default_factory=dict)
