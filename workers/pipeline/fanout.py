"""Localize chunks as they are assembled, a few at a time (threads; no I/O of its own).

A chunk is handed to the pool as soon as its last frame is decoded. At most ``workers`` chunks are
in flight, and the chunk assembled next waits for a free slot before more frames are decoded, so
a long video never holds more than ``workers + 1`` chunks of frames. Results come back in the
calling thread, in completion order; the first localizer error is re-raised there and the chunks
still queued are cancelled. A ``stop`` that says yes hands no more chunks to the model, and the
chunks already asked still come back (their answers are paid for).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from workers.types import Chunk, ChunkResult, FrameSample

LocalizeFn = Callable[[Chunk, list[FrameSample]], ChunkResult]


def localize_chunks(
    chunks: Iterable[tuple[Chunk, list[FrameSample]]],
    localize: LocalizeFn,
    *,
    workers: int,
    on_result: Callable[[ChunkResult], None],
    budget: threading.Semaphore | None = None,
    decoding: threading.Semaphore | None = None,
    stop: Callable[[], bool] | None = None,
) -> None:
    """Call ``localize`` on every chunk, ``workers`` at a time; ``on_result`` for each result.

    ``budget``, shared by every job of a worker, caps the chunks of decoded frames held across
    jobs: a slot is taken before a chunk is decoded and given back once it is localized.
    ``decoding``, shared too, caps the chunks being decoded at once: jobs that start together
    then decode one after another at full speed, the first chunks reach the model early and the
    rest decode while those wait for it, instead of all of them sharing the cores and reaching
    the model late together.

    ``stop`` is asked before each chunk is handed to the pool (after the results that came
    back meanwhile went to ``on_result``): once it says yes, no chunk is handed over any more,
    the ones in flight are awaited and reported, and the call returns.
    """
    if workers < 1:
        raise ValueError("workers must be >= 1")
    in_flight: set[Future[ChunkResult]] = set()
    holding = False  # a budget slot taken for a chunk not yet handed to the pool

    def finish(done: set[Future[ChunkResult]]) -> None:
        in_flight.difference_update(done)
        for fut in done:
            on_result(fut.result())  # re-raises the localizer's error in this thread

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="localize") as pool:
        try:
            for chunk, frames in _within(chunks, budget, decoding):
                holding = budget is not None
                while len(in_flight) >= workers:
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    finish(done)
                if stop is not None and stop():
                    break  # this chunk's budget slot goes back below
                # Each chunk runs in a copy of this job's context: its log lines keep the ids.
                ctx = contextvars.copy_context()
                fut = pool.submit(ctx.run, localize, chunk, frames)
                if budget is not None:
                    fut.add_done_callback(_giving_back(budget))
                holding = False
                in_flight.add(fut)
            done, _ = wait(in_flight)
            finish(done)
        finally:
            if holding and budget is not None:
                budget.release()
            for fut in in_flight:
                fut.cancel()


def _giving_back(budget: threading.Semaphore) -> Callable[[Future[ChunkResult]], None]:
    def release(_done: Future[ChunkResult]) -> None:
        budget.release()

    return release


def _within(
    chunks: Iterable[tuple[Chunk, list[FrameSample]]],
    budget: threading.Semaphore | None,
    decoding: threading.Semaphore | None,
) -> Iterator[tuple[Chunk, list[FrameSample]]]:
    """``chunks``, each decoded once a budget slot is taken (the caller gives it back) and while
    a decoding slot is held."""
    it = iter(chunks)
    while True:
        if budget is not None:
            budget.acquire()
        try:
            with decoding if decoding is not None else contextlib.nullcontext():
                item = next(it)
        except StopIteration:
            if budget is not None:
                budget.release()
            return
        except BaseException:
            if budget is not None:
                budget.release()
            raise
        yield item
