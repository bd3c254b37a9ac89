"""``video.results`` v1: how a job ended. One per job; a replay re-sends the same event."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, NonNegativeFloat, model_validator

from contracts.codec import FieldProblem, decode_document
from contracts.common import (
    Count,
    Document,
    ErrorInfo,
    JobWarning,
    LocalizerName,
    ObjectRef,
    Part,
    SafeId,
    Seconds,
    Text,
    Timestamp,
    Usage,
)
from contracts.stream import StreamUpdate
from contracts.timeline import TimelineEvent
from contracts.versions import RESULT_V1

Status = Literal["succeeded", "failed"]


class Summary(Part):
    events: Count = 0
    duration_s: Seconds = 0.0


class StreamResult(StreamUpdate):
    events: list[TimelineEvent] = Field(
        default_factory=list, max_length=1000, description="the new and extended events, as now"
    )


class ResultEvent(Document):
    """``timeline`` is there exactly when the job succeeded, ``error`` exactly when it failed.

    ``source`` is required on success; a failed result may lack it, because a message refused
    before it could be decoded has no trustworthy source to name.
    """

    SCHEMA: ClassVar[str] = RESULT_V1
    # _status_matches_payload below, as JSON Schema says it.
    SCHEMA_RULES: ClassVar[dict[str, Any]] = {
        "if": {"properties": {"status": {"const": "succeeded"}}, "required": ["status"]},
        "then": {
            "required": ["source", "timeline"],
            "properties": {
                "source": {"type": "object"},
                "timeline": {"type": "object"},
                "error": {"type": "null"},
            },
        },
        "else": {
            "required": ["error"],
            "properties": {"error": {"type": "object"}, "timeline": {"type": "null"}},
        },
    }

    schema_id: Literal["vidloc.result.v1"] = Field(default=RESULT_V1, alias="schema")
    event_id: Text
    video_id: Text
    job_id: Text
    status: Status
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
    source: ObjectRef | None = None
    timeline: ObjectRef | None = None
    error: ErrorInfo | None = None
    summary: Summary = Field(default_factory=Summary)
    usage: Usage = Field(default_factory=Usage)
    localizer: LocalizerName | None = None
    timings: dict[str, NonNegativeFloat] | None = Field(
        default=None, description="Seconds spent per stage"
    )
    # What the job could not do as asked (rejected model answers, ignored options, a decoder
    # abandoned, a partly decodable file): empty when everything went as asked.
    warnings: list[JobWarning] = Field(default_factory=list)
    created_at: Timestamp
    # Live streams (docs/streams.md): one result per timeline update, partial until the end.
    partial: bool | None = Field(
        default=None, description="true: a live stream's timeline will still grow"
    )
    stream: StreamResult | None = None

    @model_validator(mode="after")
    def _status_matches_payload(self) -> ResultEvent:
        if self.status == "succeeded":
            if self.source is None:
                raise FieldProblem("source", "required when status is 'succeeded'")
            if self.timeline is None:
                raise FieldProblem("timeline", "required when status is 'succeeded'")
            if self.error is not None:
                raise FieldProblem("error", "must be absent when status is 'succeeded'")
        else:
            if self.error is None:
                raise FieldProblem("error", "required when status is 'failed'")
            if self.timeline is not None:
                raise FieldProblem("timeline", "must be absent when status is 'failed'")
        return self


def decode_result(data: bytes | str | Mapping[str, Any]) -> ResultEvent:
    return decode_document(data, ResultEvent, RESULT_V1)
