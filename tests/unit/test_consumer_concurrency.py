"""The loop with several job slots, on a fake stream: jobs finish out of order but their outputs
leave, and the offset commits, only in offset order; a partition that moves away has its running
job cancelled and that job's outputs dropped."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from vidloc.adapters.kafka import BusRecord, OutRecord, Partition
from vidloc.settings import Settings
from workers.service.consumer import WorkerLoop
from workers.service.handler import Delivery, Disposition
from workers.service.outbox import holding

TOPIC = "video.ingest"
PART = Partition(TOPIC, 0)


class FakeStream:
    def __init__(self, count: int) -> None:
        self.records = [BusRecord(TOPIC, 0, o, f"video-{o}", b"{}") for o in range(count)]
        self.position = 0
        self.paused = False
        self.polls = 0
        self.owned = {PART}
        self.move_away = threading.Event()
        self.on_assigned: Callable[[set[Partition]], None] | None = None

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.on_assigned = callbacks["on_assigned"]

    def poll(self, *, timeout_s: float, max_records: int | None = None) -> list[BusRecord]:
        time.sleep(0.005)
        self.polls += 1
        if self.move_away.is_set() and self.owned:
            self.owned = set()  # a rebalance gave the partition away, inside poll as in Kafka
            assert self.on_assigned is not None
            self.on_assigned(set())
        if self.paused or not self.owned:
            return []
        batch = self.records[self.position : self.position + (max_records or 1)]
        self.position += len(batch)
        return batch

    def commit(self, offsets: Mapping[Partition, int]) -> None:
        raise AssertionError("the committer commits, not the stream")

    def seek(self, part: Partition, offset: int) -> bool:
        return True

    def assignment(self) -> set[Partition]:
        return set(self.owned)

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


class Committer:
    def __init__(self) -> None:
        self.commits: list[tuple[list[OutRecord], dict[Partition, int]]] = []

    def commit(self, records: Sequence[OutRecord], offsets: Mapping[Partition, int]) -> None:
        self.commits.append((list(records), dict(offsets)))


class GatedHandler:
    """Each offset's job runs until the test opens its gate, then publishes ``r<offset>``."""

    def __init__(self, gates: dict[int, threading.Event], finished: set[int]) -> None:
        self.gates = gates
        self.finished = finished
        self.cancel = threading.Event()
        self.retry_hint_s = 0.0
        self.publish = holding(self._direct)

    def _direct(self, topic: str, key: str, value: bytes) -> None:
        raise AssertionError("outcomes are held for the committer")

    def handle(self, delivery: Delivery) -> Disposition:
        gate = self.gates[delivery.offset]
        while not gate.wait(0.01):
            if self.cancel.is_set():
                self.finished.add(delivery.offset)
                self.publish("video.results", "v", b"cancelled")  # must never leave
                return Disposition.HAND_BACK
        self.publish("video.results", f"video-{delivery.offset}", f"r{delivery.offset}".encode())
        self.finished.add(delivery.offset)
        return Disposition.COMMIT

    def give_up(self, delivery: Delivery, exc: BaseException) -> Disposition:
        raise AssertionError("no crash expected")


def wait_for(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        time.sleep(0.005)


def start(
    count: int,
) -> tuple[
    WorkerLoop,
    FakeStream,
    Committer,
    dict[int, threading.Event],
    set[int],
    threading.Event,
    threading.Thread,
]:
    stream = FakeStream(count)
    committer = Committer()
    gates = {o: threading.Event() for o in range(count)}
    finished: set[int] = set()
    handlers = [GatedHandler(gates, finished) for _ in range(count)]
    settings = Settings(metrics_lag_interval_s=3600)
    loop = WorkerLoop(settings, stream, handlers, committer=committer)  # type: ignore[arg-type]
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=([TOPIC], stop))
    thread.start()
    return loop, stream, committer, gates, finished, stop, thread


def test_out_of_order_finishes_leave_in_offset_order_in_one_commit() -> None:
    loop, stream, committer, gates, finished, stop, thread = start(3)
    try:
        wait_for(lambda: loop.busy and len(loop._running) == 3)  # all three run at once
        gates[2].set()
        gates[1].set()
        wait_for(lambda: finished == {1, 2})
        polls = stream.polls
        wait_for(lambda: stream.polls >= polls + 3)  # the loop has seen them finish
        assert committer.commits == []  # offset 0 still runs: nothing may leave
        gates[0].set()
        wait_for(lambda: bool(committer.commits))
        assert committer.commits == [
            (
                [("video.results", f"video-{o}", f"r{o}".encode()) for o in range(3)],
                {PART: 3},
            )
        ]
    finally:
        stop.set()
        thread.join(10)
    assert loop.jobs_done == 3


def test_a_partition_that_moves_cancels_its_jobs_and_drops_their_outputs() -> None:
    loop, stream, committer, gates, finished, stop, thread = start(2)
    try:
        wait_for(lambda: len(loop._running) == 2)
        gates[1].set()
        wait_for(lambda: finished == {1})
        stream.move_away.set()
        wait_for(lambda: finished == {0, 1})  # offset 0's job saw its cancel and handed back
        wait_for(lambda: not loop.busy)
    finally:
        stop.set()
        thread.join(10)
    assert committer.commits == []  # neither outcome left: the new owner replays both
    assert loop.jobs_handed_back == 1 and loop.jobs_done == 0
