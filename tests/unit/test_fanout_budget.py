"""A worker's jobs share one budget of decoded chunks: however many jobs run, no more chunks of
frames are held (decoded, not yet localized) than the budget allows, and a failing job gives
its slots back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from workers.pipeline.fanout import localize_chunks
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


def run_at_once(jobs: int, job: Callable[[], None]) -> None:
    """Run ``jobs`` copies of ``job`` in threads, as a worker's job slots would, and wait."""
    threads = [threading.Thread(target=job) for _ in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def test_jobs_sharing_a_budget_never_hold_more_chunks_than_it_allows() -> None:
    held = Held()
    budget = threading.Semaphore(3)
    results: list[int] = []

    run_at_once(
        4,
        lambda: localize_chunks(
            chunks(6, held),
            localize_slowly(held),
            workers=3,
            on_result=lambda r: results.append(r.chunk_index),
            budget=budget,
        ),
    )
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


def decoding_chunks(
    count: int, busy: Held, failing: bool = False
) -> Iterator[tuple[Chunk, list[FrameSample]]]:
    for i in range(count):
        busy.add(1)  # this chunk's frames are being decoded
        time.sleep(0.01)
        busy.add(-1)
        if failing and i == 1:
            raise RuntimeError("decoder died")
        yield Chunk(i, float(i), float(i + 1), (float(i),)), []


def quick_localize(chunk: Chunk, frames: list[FrameSample]) -> ChunkResult:
    return ChunkResult(chunk_index=chunk.index, events=())


@pytest.mark.parametrize("slots", [1, 2])
def test_jobs_sharing_decode_slots_never_decode_more_chunks_at_once(slots: int) -> None:
    decoding = Held()
    slots_held = threading.Semaphore(slots)
    results: list[int] = []

    run_at_once(
        4,
        lambda: localize_chunks(
            decoding_chunks(5, decoding),
            quick_localize,
            workers=2,
            on_result=lambda r: results.append(r.chunk_index),
            decoding=slots_held,
        ),
    )
    assert sorted(results) == sorted(list(range(5)) * 4)
    assert decoding.peak == slots  # four jobs, yet never more decodes at once than slots


def test_a_failing_decode_gives_its_slot_back() -> None:
    slots = threading.Semaphore(1)
    with pytest.raises(RuntimeError, match="decoder died"):
        localize_chunks(
            decoding_chunks(4, Held(), failing=True),
            quick_localize,
            workers=2,
            on_result=lambda r: None,
            decoding=slots,
        )
    assert slots.acquire(timeout=2)
