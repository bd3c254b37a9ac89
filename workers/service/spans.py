"""A long video on the whole group: the hand-off, a span's work, and the one merge (pure parts).

The member that receives the ingest event plans the video and, when it is longer than a span,
hands one *order* per span to the group (``video.spans``) in the transaction that commits the
ingest offset: the ingest partition is free again in seconds. Each span's worker localizes its
chunks (checkpointed) and *reports* (``video.spans.done``, keyed by the video, in the transaction
that commits its order). Reports of one video share a key, so one member reads them in order;
it keeps which spans reported in a small state object and, on the report that completes the set,
merges once: one timeline, one result. Every report before that publishes a partial result.
The one-chunk lead-in span's order goes to that member too, with the reports, and it runs it
(``runs_at_merge``): the first partial comes a chunk after the hand-off.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from contracts import IngestEvent
from contracts.span import SpanVideo, VideoSpan
from workers.pipeline.spans import Span
from workers.types import TokenTally, VideoInfo


@dataclass
class SpanLedger:
    """Which spans of one video's job have reported, in the order they did.

    ``completed_by`` is the span whose report completed the set: the merge happens on that
    report and on no other, even when it is delivered again (a crash before its commit).
    """

    count: int
    reported: list[int] = field(default_factory=list)
    completed_by: int | None = None
    failed: dict[str, Any] | None = None  # the first permanent failure: {index, code, message}

    def add(self, index: int) -> None:
        if index not in self.reported:
            self.reported.append(index)
        if self.completed_by is None and len(self.reported) == self.count:
            self.completed_by = index

    def fail(self, index: int, code: str, message: str) -> bool:
        """Record a span's permanent failure; True when it is the video's first."""
        self.add(index)
        if self.failed is not None:
            return False
        self.failed = {"index": index, "code": code, "message": message}
        return True

    def merges_on(self, index: int) -> bool:
        return self.failed is None and self.completed_by == index

    def encode(self) -> bytes:
        return json.dumps(
            {
                "count": self.count,
                "reported": self.reported,
                "completed_by": self.completed_by,
                "failed": self.failed,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def decode(cls, data: bytes, count: int) -> SpanLedger:
        doc = json.loads(data)
        if doc.get("count") != count:
            # Another plan of the same job (it cannot be: the plan is fixed by the object
            # version and the options); start over rather than mix two plans' spans.
            return cls(count)
        return cls(
            count,
            [int(i) for i in doc.get("reported", [])],
            doc.get("completed_by"),
            doc.get("failed"),
        )


def span_key(
    order: VideoSpan, video_id: str, partitions: int, partition_of: Callable[[str], int]
) -> str:
    """A key for ``order`` that lands on the partition its place in the video names: the middle
    of its chunks, as a share of the video's, times the partitions. So the orders spread evenly
    over the whole topic by work, not by count (the short lead-in spans weigh little).

    Each member owns a contiguous range of the partitions (the range assignor), and an order can
    only run on the member that owns its partition: hashed keys gave one member two spans of
    four and another none. ``partition_of`` is the producer's partitioner.
    """
    middle = (order.first_chunk + order.end_chunk) / 2
    wanted = min(partitions - 1, int(middle * partitions / order.chunks_total))
    plain = f"{video_id}.span-{order.index}"
    for salt in range(64 * partitions):
        key = plain + (f"~{salt}" if salt else "")
        if partition_of(key) == wanted:
            return key
    return plain  # a partitioner that never gives it: any partition will do


def span_orders(
    event: IngestEvent, spans: tuple[Span, ...], info: VideoInfo, chunks_total: int
) -> list[IngestEvent]:
    """One order per span: the ingest event itself, same event id (so the same job id and the
    same checkpoints), with the span's part."""
    video = SpanVideo(
        duration_s=info.duration_s,
        fps=info.fps,
        width=info.width,
        height=info.height,
        codec=info.codec[:64] or "unknown",
    )
    return [
        event.model_copy(
            update={
                "span": VideoSpan(
                    role="order",
                    index=span.index,
                    count=span.count,
                    first_chunk=span.first_chunk,
                    end_chunk=span.end_chunk,
                    chunks_total=chunks_total,
                    start_s=span.start_s,
                    end_s=span.end_s,
                    video=video,
                )
            }
        )
        for span in spans
    ]


def span_report(
    order: IngestEvent,
    tokens: TokenTally | None = None,
    error: tuple[str, str] | None = None,
) -> IngestEvent:
    """The order's report: its tokens when done, or ``(code, message)`` when it failed."""
    assert order.span is not None
    update: dict[str, Any] = {"role": "report"}
    if tokens is not None:
        update["tokens"] = {
            "prompt_tokens": tokens.prompt_tokens,
            "completion_tokens": tokens.completion_tokens,
            "requests": tokens.requests,
        }
    if error is not None:
        update["error"] = {"code": error[0], "message": error[1][:4000]}
    span = VideoSpan.model_validate({**order.span.model_dump(), **update})
    return order.model_copy(update={"span": span})
