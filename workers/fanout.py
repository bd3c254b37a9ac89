"""Localize chunks as they are assembled, a few at a time (threads; no I/O of its own).

A chunk is handed to the pool as soon as its last frame is decoded. At most ``workers`` chunks are
in flight, and the chunk assembled next waits for a free slot before more frames are decoded, so
a long video never holds more than ``workers + 1`` chunks of frames. Results come back in the
calling thread, in completion order; the first localizer error is re-raised there and the chunks
still queued are cancelled.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from workers.types import Chunk, ChunkResult, FrameSample

LocalizeFn = Callable[[Chunk, list[FrameSample]], ChunkResult]


def localize_chunks(
    chunks: Iterable[tuple[Chunk, list[FrameSample]]],
    localize: LocalizeFn,
    *,
    workers: int,
    on_result: Callable[[ChunkResult], None],
) -> None:
    """Call ``localize`` on every chunk, ``workers`` at a time; ``on_result`` for each result."""
    if workers < 1:
        raise ValueError("workers must be >= 1")
    in_flight: set[Future[ChunkResult]] = set()

    def finish(done: set[Future[ChunkResult]]) -> None:
        in_flight.difference_update(done)
        for fut in done:
            on_result(fut.result())  # re-raises the localizer's error in this thread

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="localize") as pool:
        try:
            for chunk, frames in chunks:
                while len(in_flight) >= workers:
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    finish(done)
                # Each chunk runs in a copy of this job's context: its log lines keep the ids.
                ctx = contextvars.copy_context()
                in_flight.add(pool.submit(ctx.run, localize, chunk, frames))
            done, _ = wait(in_flight)
            finish(done)
        finally:
            for fut in in_flight:
                fut.cancel()
