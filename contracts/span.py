"""The long-video parts of the v1 contracts: one video's work split into spans (docs/delivery.md).

A video longer than the worker's span length travels as ordinary ingest events with a ``span``
part (``IngestEvent.span``): the worker that receives the video plans it once and hands one
*order* per span to the group on ``video.spans``; each span's worker, when its chunks are done
(checkpointed), reports on ``video.spans.done`` with a *report*. Reports of one video share a
key, so one member reads them in order and merges once. Optional fields: ids stay ``.v1``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from contracts.codec import FieldProblem
from contracts.common import Count, ErrorInfo, Part, PositiveCount, Seconds

SpanRole = Literal["order", "report"]


class SpanVideo(Part):
    """The probe facts the plan was made from; every span's worker must plan the same chunks."""

    duration_s: Seconds
    fps: Seconds
    width: PositiveCount
    height: PositiveCount
    codec: Annotated[str, Field(max_length=64)]


class SpanTokens(Part):
    """What one span's chunks cost at the model (the video's bill is summed at the merge)."""

    prompt_tokens: Count = 0
    completion_tokens: Count = 0
    requests: Count = 0


class VideoSpan(Part):
    """One span of one long video: chunks ``[first_chunk, end_chunk)`` of ``chunks_total``."""

    role: SpanRole
    index: Count
    count: PositiveCount
    first_chunk: Count
    end_chunk: Count
    chunks_total: PositiveCount
    start_s: Seconds
    end_s: Seconds
    video: SpanVideo
    # A report only: what the span cost, or why it failed for good.
    tokens: SpanTokens | None = None
    error: ErrorInfo | None = None

    @model_validator(mode="after")
    def _consistent(self) -> VideoSpan:
        if self.index >= self.count:
            raise FieldProblem("index", f"span {self.index} of {self.count}")
        if not self.first_chunk < self.end_chunk <= self.chunks_total:
            raise FieldProblem(
                "end_chunk",
                f"chunks [{self.first_chunk}, {self.end_chunk}) of {self.chunks_total}",
            )
        if self.end_s < self.start_s:
            raise FieldProblem("end_s", f"end_s {self.end_s} is before start_s {self.start_s}")
        return self

    def owns(self, chunk_index: int) -> bool:
        """Whether chunk ``chunk_index`` of the plan is this span's to localize."""
        return self.first_chunk <= chunk_index < self.end_chunk

    @property
    def label(self) -> str:
        """How a person reads which span it is (error messages, logs)."""
        return f"span {self.index + 1} of {self.count} ({self.start_s:.1f}-{self.end_s:.1f} s)"
