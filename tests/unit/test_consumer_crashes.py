"""The worker loop retries a bus failure for as long as it lasts, but a crash only a few times:
then the message fails for good and the partition moves on (it used to retry forever)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import pytest

from vidloc.adapters.kafka import BusRecord, Partition
from vidloc.errors import BusUnavailable
from vidloc.settings import Settings
from workers.service.consumer import WorkerLoop
from workers.service.handler import MAX_CRASHES, Delivery, Disposition

TOPIC = "video.ingest"


class FakeStream:
    """One partition holding one record; remembers commits."""

    def __init__(self) -> None:
        self.position = 0
        self.paused = False
        self.commits: list[dict[Partition, int]] = []
        self.part = Partition(TOPIC, 0)

    def subscribe(self, topics: list[str], **_: Callable[[set[Partition]], None]) -> None:
        pass

    def poll(self, *, timeout_s: float, max_records: int | None = None) -> list[BusRecord]:
        time.sleep(0.001)
        if self.paused or self.position > 0:
            return []
        self.position = 1
        return [BusRecord(TOPIC, 0, 0, "vid-1", b'{"poison": true}')]

    def commit(self, offsets: Mapping[Partition, int]) -> None:
        self.commits.append(dict(offsets))

    def seek(self, part: Partition, offset: int) -> bool:
        self.position = offset
        return True

    def assignment(self) -> set[Partition]:
        return {self.part}

    def pause(self, parts: Collection[Partition]) -> None:
        self.paused = True

    def pause_all(self) -> None:
        self.paused = True

    def resume_all(self) -> None:
        self.paused = False

    def lag_inputs(self, *, timeout_s: float) -> Any:
        return {}, {}

    def close(self) -> None:
        pass


class CrashingHandler:
    """``handle`` always raises ``error``; ``give_up`` answers ``gives``."""

    def __init__(self, error: Exception, gives: Disposition | Exception) -> None:
        self.error = error
        self.gives = gives
        self.handled = 0
        self.given_up: list[tuple[Delivery, BaseException]] = []
        self.cancel = threading.Event()
        self.retry_hint_s = 0.0

    def handle(self, delivery: Delivery) -> Disposition:
        self.handled += 1
        raise self.error

    def give_up(self, delivery: Delivery, exc: BaseException) -> Disposition:
        self.given_up.append((delivery, exc))
        if isinstance(self.gives, Exception):
            raise self.gives
        return self.gives


def run_until(loop: WorkerLoop, done: Callable[[], bool], timeout_s: float = 20.0) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=([TOPIC], stop))
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(10)
    assert done(), "the loop did not get there"


def make_loop(handler: CrashingHandler) -> tuple[WorkerLoop, FakeStream]:
    stream = FakeStream()
    settings = Settings(retry_backoff_max_s=0.01, metrics_lag_interval_s=3600)
    return WorkerLoop(settings, stream, handler), stream  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "gives",
    [Disposition.COMMIT, RuntimeError("the failure path is broken too")],
    ids=["failed_for_good", "dropped"],
)
def test_a_crash_is_tried_a_bounded_number_of_times_then_committed(
    gives: Disposition | Exception,
) -> None:
    handler = CrashingHandler(RuntimeError("bug"), gives)
    loop, stream = make_loop(handler)
    run_until(loop, lambda: bool(stream.commits))
    assert handler.handled == MAX_CRASHES
    assert [str(exc) for _, exc in handler.given_up] == ["bug"]
    assert stream.commits == [{stream.part: 1}]


def test_a_bus_failure_is_retried_without_giving_up() -> None:
    handler = CrashingHandler(BusUnavailable("kafka down"), Disposition.COMMIT)
    loop, stream = make_loop(handler)
    run_until(loop, lambda: handler.handled >= MAX_CRASHES + 2)
    assert handler.given_up == [] and stream.commits == []
