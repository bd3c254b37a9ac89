"""The loop under the faults of issue 23, on fakes: partitions lost by eviction, a rebalance
while outputs are held, a commit without an answer, and SIGTERM while no coordinator answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pytest
from test_consumer_concurrency import PART, TOPIC, FakeStream, GatedHandler, wait_for
from test_kafka_bounds import KafkaLikeProducer

from vidloc.adapters.kafka import OutRecord, Partition, TransactionalPublisher
from vidloc.errors import BusUnavailable
from vidloc.settings import Settings
from workers.service.consumer import WorkerLoop
from workers.service.outbox import TransactionCommitter


class GroupStream(FakeStream):
    """kafka-python's order of things: inside one poll, ``on_lost`` (or ``on_revoked``) runs
    while the assignment still lists the partitions, then ``on_assigned`` with the new set."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.callbacks: dict[str, Any] = {}
        self.events: list[str] = []  # "lost" / "revoke": what the next poll delivers
        self.in_poll = False
        self.committed_offset: int | None = None
        self.seeks: list[tuple[Partition, int]] = []

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.callbacks = callbacks
        self.on_assigned = callbacks["on_assigned"]

    def poll(self, *, timeout_s: float, max_records: int | None = None) -> list[Any]:
        self.in_poll = True
        try:
            if self.events:
                kind = self.events.pop(0)
                if kind == "revoke_only":  # a rebalance under way: revoked, not yet assigned
                    self.callbacks["on_revoked"]({PART})
                    return []
                if kind in ("assign_back", "assign_elsewhere"):
                    if kind == "assign_elsewhere":
                        self.owned = set()
                    self.callbacks["on_assigned"](set(self.owned))
                    return super().poll(timeout_s=timeout_s, max_records=max_records)
                if kind == "lost":
                    self.callbacks.get("on_lost", self.callbacks.get("on_revoked"))({PART})
                    # Meanwhile another member finished both records and committed past them.
                    self.position = len(self.records)
                elif self.callbacks.get("on_revoked"):
                    self.callbacks["on_revoked"]({PART})
                self.callbacks["on_assigned"]({PART})  # back here, in a new generation
            return super().poll(timeout_s=timeout_s, max_records=max_records)
        finally:
            self.in_poll = False

    def committed(
        self, parts: Collection[Partition], *, timeout_s: float = 10.0
    ) -> dict[Partition, int | None]:
        return {p: self.committed_offset for p in parts}

    def seek(self, part: Partition, offset: int) -> bool:
        self.seeks.append((part, offset))
        return True


class ScriptedCommitter:
    """Records commits; raises the scripted errors first; notes commits made inside a poll."""

    def __init__(self, stream: GroupStream, errors: Sequence[BusUnavailable] = ()) -> None:
        self.stream = stream
        self.errors = list(errors)
        self.commits: list[tuple[list[OutRecord], dict[Partition, int]]] = []
        self.inside_poll = 0
        self.recovered = 0

    def commit(self, records: Sequence[OutRecord], offsets: Mapping[Partition, int]) -> None:
        if self.stream.in_poll:
            self.inside_poll += 1
        if self.errors:
            raise self.errors.pop(0)
        self.commits.append((list(records), dict(offsets)))

    def recover(self) -> None:
        self.recovered += 1


def run_loop(
    stream: GroupStream, committer: Any, count: int
) -> tuple[WorkerLoop, dict[int, threading.Event], set[int], threading.Event, threading.Thread]:
    gates = {o: threading.Event() for o in range(count)}
    finished: set[int] = set()
    handlers = [GatedHandler(gates, finished) for _ in range(count)]
    loop = WorkerLoop(Settings(metrics_lag_interval_s=3600), stream, handlers, committer=committer)  # type: ignore[arg-type]
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=([TOPIC], stop), daemon=True)
    thread.start()
    return loop, gates, finished, stop, thread


def test_lost_partitions_are_dropped_even_when_they_come_back() -> None:
    # Offset 0 runs, offset 1 finished and is held behind it. The member is evicted (a
    # SIGSTOP past the session timeout); another member finishes both; then this member
    # rejoins and gets the partition back. Committing its old outputs now would announce both
    # videos twice and move the group's offset back.
    stream = GroupStream(2)
    committer = ScriptedCommitter(stream)
    loop, gates, finished, stop, thread = run_loop(stream, committer, 2)
    try:
        wait_for(lambda: len(loop._running) == 2)
        gates[1].set()
        wait_for(lambda: finished == {1})
        stream.events.append("lost")
        wait_for(lambda: finished == {0, 1})  # offset 0's job was cancelled
        gates[0].set()
        polls = stream.polls
        wait_for(lambda: stream.polls >= polls + 20 and not loop.busy)
    finally:
        stop.set()
        thread.join(10)
    assert committer.commits == []
    assert loop.jobs_done == 0


@pytest.mark.parametrize("comes_back", [False, True], ids=["moved", "came-back"])
def test_a_job_finished_mid_rebalance_waits_for_the_new_assignment(comes_back: bool) -> None:
    # Seen in the fault matrix (a frozen worker thawed and rejoining): a member's partitions
    # were revoked, its job finished before the rebalance said who owns them next, and it
    # committed with the new generation while the partition's new owner replayed the same
    # record: two results. The outputs wait for the assignment: committed if the partition
    # came back, dropped if it moved.
    stream = GroupStream(1)
    committer = ScriptedCommitter(stream)
    loop, gates, finished, stop, thread = run_loop(stream, committer, 1)
    try:
        wait_for(lambda: len(loop._running) == 1)
        stream.events.append("revoke_only")
        wait_for(lambda: not stream.events)
        gates[0].set()
        wait_for(lambda: finished == {0} and not loop._running)
        polls = stream.polls
        wait_for(lambda: stream.polls >= polls + 20)
        assert committer.commits == []  # between revoke and assignment: nothing
        stream.events.append("assign_back" if comes_back else "assign_elsewhere")
        polls = stream.polls
        wait_for(lambda: stream.polls >= polls + 20)
    finally:
        stop.set()
        thread.join(10)
    if comes_back:
        assert committer.commits == [([("video.results", "video-0", b"r0")], {PART: 1})]
        assert loop.jobs_done == 1
    else:
        assert committer.commits == []
        assert loop.jobs_done == 0


def test_no_commit_runs_inside_a_rebalance_callback() -> None:
    # A finished job's outputs are held (the first commit failed); a rebalance comes. The
    # commit must wait for the loop, not run on kafka-python's event loop inside poll.
    stream = GroupStream(1)
    committer = ScriptedCommitter(stream, [BusUnavailable("coordinator moving")])
    _loop, gates, finished, stop, thread = run_loop(stream, committer, 1)
    try:
        gates[0].set()
        wait_for(lambda: finished == {0})
        stream.events.append("revoke")
        wait_for(lambda: bool(committer.commits))
    finally:
        stop.set()
        thread.join(10)
    assert committer.inside_poll == 0
    assert committer.commits == [([("video.results", "video-0", b"r0")], {PART: 1})]


@pytest.mark.parametrize(
    ("committed", "commits"),
    [
        # The unanswered commit did commit: its outputs are visible, never sent again.
        pytest.param(1, 0, id="it-committed"),
        # It did not: the held outputs leave once, with the next commit.
        pytest.param(None, 1, id="it-did-not"),
    ],
)
def test_an_unanswered_commit_is_settled_by_the_groups_offsets(
    committed: int | None, commits: int
) -> None:
    stream = GroupStream(1)
    stream.committed_offset = committed
    ambiguous = BusUnavailable("no answer", code="commit_ambiguous")
    committer = ScriptedCommitter(stream, [ambiguous])
    loop, gates, _finished, stop, thread = run_loop(stream, committer, 1)
    try:
        gates[0].set()
        wait_for(lambda: committer.recovered >= 1)
        time.sleep(1.5)  # a flush retry or two later
    finally:
        stop.set()
        thread.join(10)
    assert len(committer.commits) == commits
    assert loop.jobs_done == 1


def test_sigterm_is_acted_on_while_no_coordinator_answers() -> None:
    # The job finished, its commit waits on a coordinator that never answers (a broker
    # outage), and SIGTERM comes: the worker must stop within a bounded time.
    stream = GroupStream(1)
    stream.group_metadata = lambda: object()  # type: ignore[attr-defined]
    producers = [KafkaLikeProducer({"commit", "abort"}) for _ in range(10)]
    txn = TransactionalPublisher(
        Settings(), "tx", producer_factory=lambda _: producers.pop(0), max_block_ms=500
    )
    loop, gates, finished, stop, thread = run_loop(stream, TransactionCommitter(stream, txn), 1)  # type: ignore[arg-type]
    gates[0].set()
    wait_for(lambda: finished == {0})
    time.sleep(0.2)  # the commit is under way
    stop.set()
    started = time.monotonic()
    thread.join(8.0)
    assert not thread.is_alive(), "the worker did not stop while the coordinator was silent"
    assert time.monotonic() - started < 5.0
    assert loop.jobs_done == 0


def test_the_jobs_read_this_members_share_of_each_topic_as_the_last_rebalance_left_it() -> None:
    # A long video's hand-off rounds its span count by the group's size, judged from this
    # share (workers.pipeline.spans.group_slots); job threads read it while the loop polls.
    stream = GroupStream(1)
    loop, gates, _, stop, thread = run_loop(stream, ScriptedCommitter(stream), 1)
    try:
        assert loop.share.owned(TOPIC) == 0  # nothing assigned yet
        stream.events.append("assign_back")
        wait_for(lambda: loop.share.owned(TOPIC) == 1)
        assert loop.share.owned("video.spans") == 0
        stream.events.append("assign_elsewhere")
        wait_for(lambda: loop.share.owned(TOPIC) == 0)
    finally:
        gates[0].set()
        stop.set()
        thread.join(10)
