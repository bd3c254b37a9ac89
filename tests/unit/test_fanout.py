"""Chunks fan out to the localizer a few at a time; decoding waits while every slot is busy."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from workers.pipeline.fanout import localize_chunks
from workers.types import Chunk, ChunkResult, FrameSample

IMAGE = np.zeros((2, 2, 3), dtype=np.uint8)


def chunks(n: int, pulled: list[int]) -> Iterator[tuple[Chunk, list[FrameSample]]]:
    for i in range(n):
        pulled.append(i)
        yield Chunk(i, float(i), float(i + 1), (float(i),)), [FrameSample(float(i), IMAGE)]


@pytest.mark.parametrize("workers", [1, 3])
def test_every_chunk_is_localized_and_frames_held_stay_bounded(workers: int) -> None:
    lock = threading.Lock()
    peak = 0
    pulled: list[int] = []
    results: list[ChunkResult] = []

    def localize(chunk: Chunk, frames: list[FrameSample]) -> ChunkResult:
        nonlocal peak
        with lock:
            # chunks pulled but not yet reported: frames held in memory
            peak = max(peak, len(pulled) - len(results))
        return ChunkResult(chunk.index, ())

    def on_result(result: ChunkResult) -> None:
        assert threading.current_thread() is threading.main_thread()
        results.append(result)

    localize_chunks(chunks(10, pulled), localize, workers=workers, on_result=on_result)
    assert sorted(r.chunk_index for r in results) == list(range(10))
    assert peak <= workers + 1  # in flight, plus the one assembled while they run


def test_the_first_error_reaches_the_caller_and_stops_the_pull() -> None:
    pulled: list[int] = []

    def localize(chunk: Chunk, frames: list[FrameSample]) -> ChunkResult:
        if chunk.index == 1:
            raise RuntimeError("model said no")
        return ChunkResult(chunk.index, ())

    with pytest.raises(RuntimeError, match="model said no"):
        localize_chunks(chunks(50, pulled), localize, workers=1, on_result=lambda r: None)
    assert len(pulled) < 50


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError):
        localize_chunks(iter(()), lambda c, f: ChunkResult(c.index, ()), workers=0, on_result=print)
