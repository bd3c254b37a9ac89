"""What a job needs of the store and reports as it goes, and what it comes back with."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from contracts import Timeline
from workers.pipeline.spans import Span
from workers.types import TokenTally, VideoInfo


class JobStore(Protocol):
    """The part of the object store a job uses."""

    def download(
        self, bucket: str, key: str, dest: Path, *, max_bytes: int, expected_etag: str | None = None
    ) -> Any: ...

    def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str = "application/json"
    ) -> Any: ...

    def get_bytes(self, bucket: str, key: str) -> bytes: ...

    def list_keys(self, bucket: str, prefix: str = "") -> Iterator[str]: ...

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[Any]: ...


ProgressFn = Callable[[str, int, int, str], None]  # stage, chunks_done, chunks_total, message


@dataclass
class JobOutcome:
    timeline: Timeline
    timeline_bucket: str
    timeline_key: str
    usage: TokenTally
    cost: float
    chunks_from_checkpoint: int = 0
    rejected_events: int = 0
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class HandOff:
    """A long video's plan: its spans go to the group instead of this worker running them."""

    spans: tuple[Span, ...]
    info: VideoInfo
    chunks_total: int
    # What planning it read from the store by ranges, of the object's size (0: downloaded).
    bytes_fetched: int = 0
    object_bytes: int = 0


@dataclass(frozen=True)
class SpanOutcome:
    """One span's chunks, done and checkpointed."""

    tokens: TokenTally
    chunks: int
    chunks_from_checkpoint: int
    # What its decoder fetched from the store by ranges, of the object's size (0: downloaded).
    bytes_fetched: int = 0
    object_bytes: int = 0
