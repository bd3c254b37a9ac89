"""Frames decoded by the worker, counted (``vidloc_frames_decoded_total``): a frame source that
counts what it serves and is otherwise the source it wraps."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from vidloc.metrics import Metrics
from workers.types import FrameSample, FrameSource, VideoInfo


class CountedSource:
    """``source`` (a ``FrameSource``), each frame it serves counted as it is served."""

    def __init__(self, source: FrameSource, metrics: Metrics) -> None:
        self._source = source
        self._metrics = metrics
        self.name = source.name

    def probe(self, path: str) -> VideoInfo:
        return self._source.probe(path)

    def frames(
        self, path: str, times: Sequence[float], size: tuple[int, int]
    ) -> Iterator[FrameSample]:
        for frame in self._source.frames(path, times, size):
            self._metrics.add_decoded(1)
            yield frame

    def __getattr__(self, name: str) -> Any:
        # What a job asks a source besides frames (its warnings, close) is the wrapped one's.
        return getattr(self._source, name)
