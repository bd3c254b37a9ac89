"""The timeline v1: what a job found, stored as JSON in the timeline bucket."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from contracts.codec import FieldProblem, decode_document
from contracts.common import (
    Confidence,
    Count,
    Document,
    JobWarning,
    LocalizerName,
    Part,
    PositiveCount,
    SafeId,
    Seconds,
    SourceObject,
    Text,
    Timestamp,
    Usage,
)
from contracts.stream import StreamState
from contracts.versions import TIMELINE_V1

PositiveFloat = Annotated[float, Field(gt=0)]


class VideoMeta(Part):
    duration_s: Seconds
    fps: Seconds  # 0 when the container does not say
    width: PositiveCount
    height: PositiveCount
    codec: Annotated[str, Field(max_length=64)]


class ModelInfo(Part):
    """The model endpoint that produced the events. Never carries the API key."""

    name: Text
    base_url: Annotated[str, Field(min_length=1, max_length=2000)]
    params: dict[str, Any] = Field(default_factory=dict)


class Sampling(Part):
    sample_fps: PositiveFloat
    chunk_s: PositiveFloat
    chunk_overlap_s: Seconds = 0.0
    frames: Count
    chunks: Count
    frame_size: tuple[PositiveCount, PositiveCount] | None = Field(
        default=None, description="[width, height] of the frames sent"
    )
    # Adaptive sampling and boundary refinement (absent on timelines made without them).
    mode: Literal["uniform", "adaptive"] | None = Field(
        default=None,
        description="uniform: sample_fps everywhere; "
        "adaptive: dense where a cv pre-pass saw change",
    )
    token_budget_per_min: PositiveFloat | None = None
    refine: bool | None = None
    refined_boundaries: Count | None = None
    refine_frames: Count | None = None


class TimelineEvent(Part):
    model_config = ConfigDict(
        json_schema_extra={
            "$comment": "end_s >= start_s is enforced by the models; JSON Schema cannot "
            "compare fields."
        }
    )

    id: Text
    label: Text
    start_s: Seconds
    end_s: Seconds
    description: Annotated[str, Field(max_length=4000)] = ""
    confidence: Confidence | None = None
    source: Annotated[str, Field(max_length=64)] | None = None  # localizer / pass
    thumbnail: (
        Annotated[str, Field(max_length=256, pattern=r"^thumbnails/[A-Za-z0-9._-]+$")] | None
    ) = Field(
        default=None,
        description="a JPEG of the event, relative to the timeline's folder "
        "(thumbnails/<name>.jpg); absent when the job kept no frame for it",
    )

    @model_validator(mode="after")
    def _ordered(self) -> TimelineEvent:
        if self.end_s < self.start_s:
            raise FieldProblem("end_s", f"end_s {self.end_s} is before start_s {self.start_s}")
        return self


class TimelineStats(Part):
    """How the model's answers were read; all zero when everything was read as asked."""

    rejected_events: Count = Field(
        default=0, description="events dropped from model answers (the warnings say why)"
    )
    answers: Count = Field(default=0, description="model answers read, re-asks included")
    rejected_answers: Count = Field(
        default=0, description="answers that could not be read, or whose every event was rejected"
    )
    reasked: Count = Field(default=0, description="corrective re-asks after an unusable answer")
    unusable_chunks: Count = Field(
        default=0, description="chunks left without a usable answer, even after re-asking"
    )
    relative_times_shifted: Count = Field(
        default=0,
        description="events whose times counted from the request's first frame, shifted",
    )


# The warning a long video's partial timeline carries until its final one replaces it.
SPANS_PENDING = "spans_pending"


class Timeline(Document):
    """``model`` is required when the vlm localizer made the events."""

    SCHEMA: ClassVar[str] = TIMELINE_V1
    # _model_named below, as JSON Schema says it.
    SCHEMA_RULES: ClassVar[dict[str, Any]] = {
        "if": {"properties": {"localizer": {"const": "vlm"}}, "required": ["localizer"]},
        "then": {"required": ["model"], "properties": {"model": {"type": "object"}}},
    }

    schema_id: Literal["vidloc.timeline.v1"] = Field(default=TIMELINE_V1, alias="schema")
    video_id: SafeId
    job_id: SafeId
    source: SourceObject
    video: VideoMeta
    localizer: LocalizerName
    model: ModelInfo | None = None
    analysis_id: SafeId | None = Field(
        default=None,
        description="The analysis of the video this timeline answers (vidloc.ingest.v2); absent "
        "for its first analysis",
    )
    prompt: Annotated[str, Field(max_length=8000)] | None = None
    labels: list[Text] = Field(default_factory=list)
    sampling: Sampling
    events: list[TimelineEvent]
    usage: Usage = Field(default_factory=Usage)
    stats: TimelineStats | None = None
    # What the job could not do as asked (rejected model answers, ignored options, a decoder
    # abandoned, a partly decodable file): empty when everything went as asked.
    warnings: list[JobWarning] = Field(default_factory=list)
    created_at: Timestamp
    stream: StreamState | None = Field(
        default=None, description="Present on a live stream's growing timeline (docs/streams.md)"
    )

    @property
    def final(self) -> bool:
        """True when its job writes nothing after it: not a live stream's growing timeline,
        not a long video's partial one (its spans still run)."""
        growing = self.stream is not None and not self.stream.ended
        return not growing and not any(w.code == SPANS_PENDING for w in self.warnings)

    @model_validator(mode="after")
    def _model_named(self) -> Timeline:
        if self.localizer == "vlm" and self.model is None:
            raise FieldProblem("model", "required when localizer is 'vlm'")
        return self


def decode_timeline(data: bytes | str | Mapping[str, Any]) -> Timeline:
    return decode_document(data, Timeline, TIMELINE_V1)
