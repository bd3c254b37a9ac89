"""Segment bookkeeping for ``vidloc stream`` (pure): which segments FFmpeg finished, where they
sit on the stream clock, and what the producer must remember across restarts.

The stream clock is wall-clock based: second 0 is when the stream's first connection delivered
its first packet (``origin_wall``), and a later connection (after a source drop or a producer
restart) starts where the wall clock says it does. Within one connection, segments follow the
source's own timestamps (FFmpeg's segment list), which do not drift with upload delays. A jump
between where the stream had reached and where a connection starts is a gap, announced on the
segment after it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from contracts.common import SourceObject
from contracts.ingest import derive_version_tag
from vidloc import names

# Keyframe-cut segments start a frame or two off where the previous one ended; smaller jumps
# than this are jitter, not a gap.
GAP_SLACK_S = 0.5
STATE_VERSION = 1
STREAMS_PREFIX = "streams"


@dataclass(frozen=True)
class ListedSegment:
    """One line of FFmpeg's ``-segment_list_type csv``: a finished segment file."""

    file: str
    start: float  # the source's own timestamps, seconds
    end: float


def parse_segment_list(text: str) -> list[ListedSegment]:
    """The complete lines of a segment list; a line still being written (no newline) waits."""
    out = []
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        parts = line.strip().rsplit(",", 2)
        if len(parts) != 3:
            continue
        try:
            out.append(ListedSegment(parts[0], float(parts[1]), float(parts[2])))
        except ValueError:
            continue
    return out


@dataclass(frozen=True)
class Placement:
    start_s: float
    duration_s: float
    gap_before_s: float


class ConnectionClock:
    """Places one connection's segments on the stream clock.

    ``stream_end_s``: where the stream had reached before this connection; ``offset_s``: the
    stream-clock second at which this connection's first packet arrived.
    """

    def __init__(self, stream_end_s: float, offset_s: float) -> None:
        self._end = stream_end_s
        self._offset = offset_s
        self._first: float | None = None
        self._start: float | None = None

    def place(self, seg: ListedSegment) -> Placement:
        duration = max(0.0, seg.end - seg.start)
        if self._first is None:
            start = max(self._offset, self._end)
            if start - self._end <= GAP_SLACK_S:
                start = self._end  # jitter: continue exactly where the stream was
            self._first, self._start = seg.start, start
        else:
            assert self._start is not None
            start = max(self._end, self._start + (seg.start - self._first))
            if start - self._end <= GAP_SLACK_S:
                start = self._end
        gap = start - self._end
        self._end = start + duration
        return Placement(round(start, 6), round(duration, 6), round(gap, 6))


@dataclass(frozen=True)
class ProducerState:
    """What a producer keeps in the bucket (``streams/<id>/state.json``) to resume a stream.

    ``last_event`` is the last ingest event it decided to publish, written *before* publishing:
    a producer that died between the two publishes it again, and the worker, which folds each
    sequence number once, makes the repeat harmless. So no segment is lost and none counted
    twice; a segment uploaded but never recorded is overwritten by the next one of its number.
    """

    stream_id: str
    next_seq: int = 0
    origin_wall: float | None = None
    end_s: float = 0.0
    ended: bool = False
    last_event: dict[str, Any] | None = field(default=None, compare=False)

    def encode(self) -> bytes:
        return json.dumps(
            {
                "version": STATE_VERSION,
                "stream_id": self.stream_id,
                "next_seq": self.next_seq,
                "origin_wall": self.origin_wall,
                "end_s": self.end_s,
                "ended": self.ended,
                "last_event": self.last_event,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def decode(cls, data: bytes, stream_id: str) -> ProducerState:
        doc = json.loads(data)
        if doc.get("version") != STATE_VERSION or doc.get("stream_id") != stream_id:
            raise ValueError(f"not a version {STATE_VERSION} state of stream {stream_id!r}")
        return cls(
            stream_id=stream_id,
            next_seq=int(doc["next_seq"]),
            origin_wall=None if doc["origin_wall"] is None else float(doc["origin_wall"]),
            end_s=float(doc["end_s"]),
            ended=bool(doc.get("ended", False)),
            last_event=doc.get("last_event"),
        )


def stream_root(stream_id: str, tenant: str | None = None) -> str:
    """Where a stream's segments and state live in the video bucket: under its tenant's prefix,
    so two tenants' streams of one id never share state (ends with a slash)."""
    return f"{names.tenant_root(tenant)}{STREAMS_PREFIX}/{stream_id}/"


def segment_key(stream_id: str, seq: int, tenant: str | None = None) -> str:
    return f"{stream_root(stream_id, tenant)}{seq:08d}.ts"


def state_key(stream_id: str, tenant: str | None = None) -> str:
    return f"{stream_root(stream_id, tenant)}state.json"


def segment_event_id(stream_id: str, seq: int, source: SourceObject) -> str:
    """``stream-<id>-<seq:08d>-<version tag>``: a re-sent segment is the same message, hence the
    same job; another tenant's stream of the same id, or a sequence number reused with other
    content, is another (the tag names the segment object's version, its key the tenant)."""
    tag = derive_version_tag(source.bucket, source.key, source.etag)
    return f"stream-{stream_id}-{seq:08d}-{tag}"
