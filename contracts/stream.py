"""The live-stream parts of the v1 contracts: optional fields, so v1 readers stay valid.

A live stream travels as ordinary ingest events, one per segment, each with a ``stream`` part
(``IngestEvent.stream``); the worker keeps one growing timeline per stream (``Timeline.stream``)
and announces each update with a result marked ``partial`` (``ResultEvent.stream``). Adding
optional fields is not a breaking change (contracts/versions.py), so the ids stay ``.v1``: a
reader that predates streams sees a segment as a short video and a stream timeline as a timeline.

Stream clock: seconds since the stream's first segment began, as the producer measured it. It
keeps running through source drops, so a gap is a span of the clock with no segment.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from contracts.codec import FieldProblem
from contracts.common import Count, ObjectKey, Part, SafeId, Seconds, Timestamp

StreamPolicy = Literal["catch_up", "skip_to_live"]
PositiveFloat = Annotated[float, Field(gt=0)]
# The most spans a stream timeline lists per kind; older ones are dropped first, so a stream
# that keeps failing cannot grow its timeline without bound.
MAX_SPANS = 1000
# The most segments a stream timeline places on its clock; the oldest are dropped first. 2000
# segments of 4 s is a bit over two hours of stream that a clip can still be cut from.
MAX_SEGMENTS_INDEXED = 2000


class StreamSegment(Part):
    """Which piece of which live stream an ingest event carries."""

    stream_id: SafeId
    seq: Count = Field(description="0, 1, 2, ... per stream, never reused after a restart")
    start_s: Seconds = Field(description="where the segment starts on the stream's clock")
    duration_s: Seconds = Field(description="0 for an end-of-stream marker without media")
    wall_clock: Timestamp = Field(description="when the producer received the segment's start")
    end_of_stream: bool = Field(
        default=False, description="the last event of the stream; the worker finalizes it"
    )
    gap_before_s: Seconds = Field(
        default=0.0,
        description="stream seconds lost to a source drop just before this segment",
    )
    policy: StreamPolicy = Field(
        default="catch_up",
        description="when the model falls behind: catch_up localizes every segment late; "
        "skip_to_live skips segments older than max_lag_s and records the skipped span",
    )
    max_lag_s: PositiveFloat | None = Field(
        default=None, description="skip_to_live's lag limit; absent: the worker's setting"
    )


class StreamSpan(Part):
    """A stretch of the stream clock: a source drop (gap) or segments not localized (skipped)."""

    start_s: Seconds
    end_s: Seconds
    reason: Annotated[str, Field(max_length=64)] = ""

    @model_validator(mode="after")
    def _ordered(self) -> StreamSpan:
        if self.end_s < self.start_s:
            raise FieldProblem("end_s", f"end_s {self.end_s} is before start_s {self.start_s}")
        return self


class SegmentPlace(Part):
    """Where one folded segment sits on the stream clock, and which object version holds it."""

    seq: Count
    key: ObjectKey = Field(description="the segment object, in the timeline's source bucket")
    etag: Annotated[str, Field(min_length=1, max_length=256)]
    start_s: Seconds = Field(description="where the segment starts on the stream's clock")
    duration_s: Seconds


class StreamState(Part):
    """Where a stream's timeline stands: what is covered, what was lost, how late it runs."""

    stream_id: SafeId
    last_seq: Count = Field(description="the last segment folded in (localized or skipped)")
    segments: Count = 0
    covered_s: Seconds = Field(default=0.0, description="the stream clock reached so far")
    ended: bool = False
    policy: StreamPolicy = "catch_up"
    lag_s: Seconds = Field(
        default=0.0, description="wall-clock age of the last segment when it was folded in"
    )
    gaps: list[StreamSpan] = Field(default_factory=list, max_length=MAX_SPANS)
    skipped: list[StreamSpan] = Field(default_factory=list, max_length=MAX_SPANS)
    next_event: Count = Field(default=0, description="the number the next new event id gets")
    segments_index: list[SegmentPlace] | None = Field(
        default=None,
        max_length=MAX_SEGMENTS_INDEXED,
        description="the newest segments with media, oldest first (absent: a timeline written "
        "before segments were indexed)",
    )


class StreamUpdate(Part):
    """What one update of a stream timeline changed, carried on its result event."""

    stream_id: SafeId
    seq: Count
    lag_s: Seconds = 0.0
    skipped: bool = Field(default=False, description="the segment was skipped, not localized")
    ended: bool = False
    new_events: list[str] = Field(default_factory=list, description="ids first reported now")
    extended_events: list[str] = Field(
        default_factory=list, description="ids reported before whose end moved"
    )
