"""A worker's jobs share one budget of decoded chunks: however many jobs run, no more chunks of
frames are held (decoded, not yet localized) than the budget allows, and a failing job gives
its slots back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from workers.fanout import localize_chunks
from workers.types import Chunk, ChunkResult, FrameSample


class Held:
    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.now += n
            self.peak = max(self.peak, self.now)


def chunks(count: int, held: Held) -> Iterator[tuple[Chunk, list[FrameSample]]]:
    for i in range(count):
        held.add(1)  # decoded: its frames are held from here until localized
        yield Chunk(i, float(i), float(i + 1), (float(i),)), []


def localize_slowly(held: Held, fail_at: int | None = None):  # type: ignore[no-untyped-def]
    def localize(chunk: Chunk, frames: list[FrameSample]) -> ChunkResult:
        time.sleep(0.02)
        held.add(-1)
        if chunk.index == fail_at:
            raise RuntimeError("model said no")
        return ChunkResult(chunk_index=chunk.index, events=())

    return localize


def test_jobs_sharing_a_budget_never_hold_more_chunks_than_it_allows() -> None:
    held = Held()
    budget = threading.Semaphore(3)
    results: list[int] = []

    def job() -> None:
        localize_chunks(
            chunks(6, held),
            localize_slowly(held),
            workers=3,
            on_result=lambda r: results.append(r.chunk_index),
            budget=budget,
        )

    threads = [threading.Thread(target=job) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == sorted(list(range(6)) * 4)
    assert 1 <= held.peak <= 3


def test_a_failing_job_gives_its_budget_back() -> None:
    held = Held()
    budget = threading.Semaphore(2)
    with pytest.raises(RuntimeError, match="model said no"):
        localize_chunks(
            chunks(5, held),
            localize_slowly(held, fail_at=1),
            workers=2,
            on_result=lambda r: None,
            budget=budget,
        )
    # Chunks still running when the error came finish and give theirs back too.
    assert budget.acquire(timeout=2) and budget.acquire(timeout=2)
