"""A job told to stop between chunks (a shutdown, a user's cancel) asks the model nothing more,
and every chunk it had already asked still comes back: its answer is paid for, so it is
checkpointed and billed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from workers.pipeline.fanout import localize_chunks
from workers.types import Chunk, ChunkResult, FrameSample

IMAGE = np.zeros((2, 2, 3), dtype=np.uint8)


def _chunks(n: int, pulled: list[int]) -> Iterator[tuple[Chunk, list[FrameSample]]]:
    for i in range(n):
        pulled.append(i)
        yield Chunk(i, float(i), float(i + 1), (float(i),)), [FrameSample(float(i), IMAGE)]


@pytest.mark.parametrize("workers", [1, 3])
def test_once_stopped_no_chunk_is_asked_and_those_in_flight_are_reported(workers: int) -> None:
    lock = threading.Lock()
    asked: list[int] = []
    asked_after_stop: list[int] = []
    reported: list[int] = []
    stop = threading.Event()

    def localize(chunk: Chunk, frames: list[FrameSample]) -> ChunkResult:
        with lock:
            asked.append(chunk.index)
            if stop.is_set():
                asked_after_stop.append(chunk.index)
        return ChunkResult(chunk.index, ())

    def on_result(result: ChunkResult) -> None:
        reported.append(result.chunk_index)
        stop.set()  # the first result's progress report says stop

    pulled: list[int] = []
    budget = threading.Semaphore(workers + 1)
    localize_chunks(
        _chunks(20, pulled),
        localize,
        workers=workers,
        on_result=on_result,
        budget=budget,
        stop=stop.is_set,
    )
    assert asked_after_stop == []
    assert sorted(reported) == sorted(asked) and len(asked) == workers
    assert len(pulled) <= workers + 1  # the one assembled while they ran is dropped
    # Every budget slot came back, the dropped chunk's too.
    assert all(budget.acquire(blocking=False) for _ in range(workers + 1))


def test_without_a_stop_every_chunk_runs() -> None:
    reported: list[int] = []
    localize_chunks(
        _chunks(5, []),
        lambda c, f: ChunkResult(c.index, ()),
        workers=2,
        on_result=lambda r: reported.append(r.chunk_index),
        stop=lambda: False,
    )
    assert sorted(reported) == list(range(5))


class Store:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def get_bytes(self, bucket: str, key: str) -> bytes:
        from vidloc.errors import ObjectMissing

        try:
            return self.objects[key]
        except KeyError:
            raise ObjectMissing(key) from None

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "") -> None:
        self.objects[key] = data

    def list_keys(self, bucket: str, prefix: str = "") -> Iterator[str]:
        return iter(sorted(k for k in self.objects if k.startswith(prefix)))


def test_a_job_stopped_between_chunks_checkpoints_every_chunk_it_had_asked() -> None:
    """Three model requests at a time: when the first answer's progress report stops the job,
    the other two answers still land in their checkpoints (the cancelled job's bill), and the
    stop is raised after them."""
    from contracts import decode_ingest, derive_job_id
    from vidloc.metrics import Metrics
    from vidloc.settings import Settings
    from workers.localizers.registry import localizer_kind
    from workers.model.cost import Prices
    from workers.pipeline.job.context import JobContext
    from workers.pipeline.job.frames import Feed
    from workers.pipeline.job.work import localize
    from workers.pipeline.planning import PlanConfig, make_plan
    from workers.service.cancels import paid_so_far
    from workers.service.policy import CancelledByUser
    from workers.types import TokenTally, VideoInfo

    settings = Settings(vlm_concurrency=3, chunk_s=30.0, sample_fps=1.0)
    store = Store()
    ctx = JobContext(
        settings=settings,
        store=store,  # type: ignore[arg-type]
        open_source=lambda path: (_ for _ in ()).throw(AssertionError("no decode")),
        make_localizer=lambda name: (_ for _ in ()).throw(AssertionError("given")),
        metrics=Metrics(),
        plan_config=PlanConfig.from_settings(settings),
        prices=Prices(1.0, 1.0),
        frame_cache=None,
        open_ranged=None,
        frame_budget=None,
        decode_slots=None,
    )
    event = decode_ingest(
        {
            "schema": "vidloc.ingest.v1",
            "event_id": "e-stop",
            "source": {"bucket": "videos", "key": "v.mp4", "etag": "abc", "size": 9},
            "submitted_at": "2026-12-04T12:00:00Z",
        }
    )
    job_id = derive_job_id(event.event_id)
    plan = make_plan(
        VideoInfo(600.0, 25.0, 64, 64, "h264"), event, ctx.plan_config, localizer_kind("vlm")
    )
    assert len(plan.chunks) > 6
    lock = threading.Lock()
    asked: list[int] = []

    class Model:
        name = "vlm"

        def localize(self, chunk: Chunk, frames: Any, request: Any) -> ChunkResult:
            with lock:
                asked.append(chunk.index)
            return ChunkResult(chunk.index, (), TokenTally(100, 10, 1))

    def progress(stage: str, done: int, total: int, message: str) -> None:
        if message.startswith("chunk "):
            raise CancelledByUser("cancelled by the user")

    feed = Feed(frames=lambda times: (FrameSample(t, IMAGE) for t in times))
    with pytest.raises(CancelledByUser):
        localize(ctx, event, job_id, plan, feed, Model(), progress)
    assert len(asked) == 3  # nothing asked after the stop
    paid = paid_so_far(store, "timelines", event.effective_video_id, job_id, None)
    assert paid == TokenTally(300, 30, 3)  # every answer paid is checkpointed
