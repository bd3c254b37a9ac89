"""The worker's consumer loop: several jobs at once, the group kept alive meanwhile.

Jobs run in threads, one per slot (``VIDLOC_WORKER_JOBS``), and can take far longer than
``max.poll.interval.ms``; this loop keeps calling ``poll()`` (partitions paused while every slot
is busy), so the consumer stays a live member of the group. Jobs finish in any order, but an
offset is committed only below the lowest unfinished job of its partition, and a finished job's
outputs leave with that commit (``workers/service/inflight.py``, ``workers/service/outbox.py``,
docs/delivery.md). The Kafka consumer is not thread-safe, so only this thread touches the
stream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from vidloc.adapters.kafka import AssignmentCallback, BusRecord, OutRecord, Partition
from vidloc.backoff import compute_backoff
from vidloc.errors import BusUnavailable
from vidloc.metrics import Metrics, consumer_lag
from vidloc.settings import Settings
from workers.service.handler import MAX_CRASHES, Delivery, Disposition
from workers.service.inflight import Flush, Ledger
from workers.service.outbox import Committer, PlainCommitter, Settle, Settlements, job_context

log = logging.getLogger(__name__)

# Finished jobs held behind an unfinished one of their partition, per slot, before the loop
# stops fetching: they hold only their output records, but a stuck job must not grow them.
HELD_PER_SLOT = 4
# How soon a refused or failed commit is tried again.
FLUSH_RETRY_S = 1.0


class IngestStream(Protocol):
    """What the loop needs from the bus (``vidloc.adapters.kafka.TopicReader`` in production).

    Only the consumer side: outputs and offsets leave through a ``Committer``
    (``workers/service/outbox.py``: one producer transaction, or publish then :meth:`commit`).
    """

    def subscribe(
        self,
        topics: Sequence[str],
        *,
        on_assigned: AssignmentCallback | None = None,
        on_revoked: AssignmentCallback | None = None,
        on_lost: AssignmentCallback | None = None,
    ) -> None: ...

    def poll(self, *, timeout_s: float, max_records: int | None = None) -> list[BusRecord]: ...

    def commit(self, offsets: Mapping[Partition, int]) -> None: ...

    def committed(
        self, parts: Collection[Partition], *, timeout_s: float = 10.0
    ) -> dict[Partition, int | None]: ...

    def seek(self, part: Partition, offset: int) -> bool: ...

    def assignment(self) -> set[Partition]: ...

    def pause(self, parts: Collection[Partition]) -> None: ...

    def pause_all(self) -> None: ...

    def resume_all(self) -> None: ...

    def lag_inputs(
        self, *, timeout_s: float = 2.0
    ) -> tuple[dict[Partition, int], dict[Partition, int | None]]: ...

    def close(self) -> None: ...


class JobHandler(Protocol):
    """One job slot (``workers.service.handler.IngestHandler``): each slot has its own cancel
    flag and retry hint, so a moved partition cancels only its own jobs."""

    cancel: threading.Event
    retry_hint_s: float

    def handle(self, delivery: Delivery) -> Disposition: ...

    def give_up(self, delivery: Delivery, exc: BaseException) -> Disposition: ...


@dataclass
class _Running:
    delivery: Delivery
    part: Partition
    slot: int
    box: list[OutRecord]
    settle: list[Settle]  # its after-commit steps (workers/service/outbox.py)
    orphaned: bool = False  # its partition moved: whatever it produces is dropped


class GroupShare:
    """How many partitions of each topic this member owns, as the last rebalance left them:
    written on the worker loop's thread, read by job threads (a whole Counter swapped in)."""

    def __init__(self) -> None:
        self._owned: Counter[str] = Counter()

    def update(self, assignment: Collection[Partition]) -> None:
        self._owned = Counter(p.topic for p in assignment)

    def owned(self, topic: str) -> int:
        return self._owned[topic]


class WorkerLoop:
    def __init__(
        self,
        settings: Settings,
        stream: IngestStream,
        handler: JobHandler | Sequence[JobHandler],
        metrics: Metrics | None = None,
        *,
        committer: Committer | None = None,
        topic_caps: Mapping[str, int] | None = None,
        share: GroupShare | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        # The most records of a topic running or waiting here at once: a long video's span
        # orders may fill all slots but these, so a short video's ingest always finds one.
        self._topic_caps = dict(topic_caps or {})
        self.share = share or GroupShare()
        self._lag_due = 0.0
        self.settings = settings
        self.stream = stream
        self.slots: list[JobHandler] = list(handler) if isinstance(handler, Sequence) else [handler]
        self._free = list(range(len(self.slots)))[::-1]
        self._committer = committer or PlainCommitter(stream)
        self._ledger: Ledger[Partition, OutRecord] = Ledger()
        self._deliveries: dict[tuple[Partition, int], Delivery] = {}
        self._due: dict[tuple[Partition, int], float] = {}
        self._running: dict[Future[Disposition], _Running] = {}
        self._settlements = Settlements()
        self._attempts: dict[tuple[Partition, int], int] = {}
        self._crashes: dict[tuple[Partition, int], int] = {}
        self._flush_due = 0.0
        # Flushes whose commit got no answer: committed or not, unknown until the group says.
        self._unanswered: dict[Partition, Flush[OutRecord]] = {}
        # Partitions revoked by a rebalance that has not yet said who owns them next. Their
        # outputs wait: with the join done, this member may already hold the new generation
        # (the broker accepts its offsets: KIP-447 checks the generation, not who owns a
        # partition) while the partition has gone to another member that replays it.
        self._revoked: set[Partition] = set()
        self._stopping = False
        self.jobs_done = 0
        self.jobs_handed_back = 0

    @property
    def busy(self) -> bool:
        return bool(self._running)

    @property
    def capacity(self) -> int:
        return len(self.slots)

    # -- the group ---------------------------------------------------------------------------

    def check_ownership(self) -> None:
        """Hand back the jobs of every partition a rebalance gave to another member.

        Its new owner replays them from the last commit and, with the chunk checkpoints, resumes
        where these jobs got to; finishing them here too would announce them twice (and with
        transactions their commit would be refused anyway).
        """
        owned = self.stream.assignment()
        for part in self._ledger.partitions() - owned:
            log.warning("%s moved to another member; handing its jobs back", part)
            self._forget(part)

    def _forget(self, part: Partition) -> None:
        """Cancel ``part``'s running jobs and drop everything held for it: from here on,
        nothing of it is committed by this member."""
        self._ledger.drop(part)
        self._settlements.drop(part)
        self._unanswered.pop(part, None)
        for where in [w for w in self._deliveries if w[0] == part]:
            self._deliveries.pop(where, None)
            self._due.pop(where, None)
        for running in self._running.values():
            if running.part == part and not running.orphaned:
                running.orphaned = True
                self.slots[running.slot].cancel.set()

    def _on_revoked(self, revoked: set[Partition]) -> None:
        """A rebalance began: hold ``revoked``'s outputs until it says where they went
        (:meth:`_on_assigned`); their jobs run on, since most come back to this member."""
        self._revoked |= revoked

    def _on_assigned(self, assigned: set[Partition]) -> None:
        # A newly assigned partition is not paused, and this runs inside a poll that may fetch
        # from it: pause it here when its topic is at its cap (or every slot is taken), or a
        # rebalance hands this member more span orders than its cap (seen: a member that took
        # a killed member's partitions ran five spans at once with a cap of two).
        if self._at_capacity():
            self.stream.pause(assigned)
        else:
            full = {topic for topic, cap in self._topic_caps.items() if self._taken(topic) >= cap}
            self.stream.pause({p for p in assigned if p.topic in full})
        self.check_ownership()
        self.share.update(self.stream.assignment())
        self._revoked.clear()

    def _on_lost(self, lost: set[Partition]) -> None:
        """This member was evicted (its session expired: a long pause, a network split); the
        group has given ``lost`` to others, who replay from the last commit. kafka-python
        still lists them as assigned while this runs, so they are dropped here by name,
        before anything else can be committed."""
        for part in lost & (self._ledger.partitions() | set(self._unanswered)):
            log.warning("%s lost (this member was evicted); dropping its jobs", part)
            self._forget(part)

    # -- the loop ----------------------------------------------------------------------------

    def run(self, topics: list[str], stop: threading.Event) -> None:
        # No commit inside a rebalance callback: it runs on kafka-python's event loop, where a
        # commit waiting on a slow or absent coordinator would stop the heartbeats. Finished
        # outputs of a partition that stays here leave after the rebalance; those of one that
        # moves are dropped (check_ownership) and replayed by its new owner from checkpoints.
        self.stream.subscribe(
            topics,
            on_assigned=self._on_assigned,
            on_revoked=self._on_revoked,
            on_lost=self._on_lost,
        )
        with ThreadPoolExecutor(max_workers=len(self.slots), thread_name_prefix="job") as pool:
            while True:
                self._report_lag()
                if stop.is_set() and not self._stopping:
                    log.info(
                        "stop requested; finishing or handing back %d jobs", len(self._running)
                    )
                    self._stopping = True
                    for running in self._running.values():
                        self.slots[running.slot].cancel.set()
                self._collect()
                self._flush()
                if self._stopping:
                    if not self._running:
                        break
                    self.stream.pause_all()
                    self.stream.poll(timeout_s=0.1)
                    continue
                self._start_ready(pool)
                self._poll()
        self._close()

    def _at_capacity(self) -> bool:
        # Finished jobs wait for their partition's front; cap them too (memory, not slots).
        jobs = len(self.slots)
        return self._ledger.active() >= jobs or self._ledger.held() >= HELD_PER_SLOT * jobs

    def _poll(self) -> None:
        wait_s = 0.1 if self._running or self._ledger.held() else 0.5
        if self._at_capacity():
            self.stream.pause_all()
            self.stream.poll(timeout_s=wait_s)  # membership and heartbeats only
            return
        self.stream.resume_all()
        room = len(self.slots) - self._ledger.active()
        for topic, cap in self._topic_caps.items():
            taken = self._taken(topic)
            if taken >= cap:
                self.stream.pause({p for p in self.stream.assignment() if p.topic == topic})
            else:
                # Never fetch more of it than its cap leaves room for: a fetched record holds
                # a slot's place until it runs.
                room = min(room, cap - taken)
        for record in self.stream.poll(timeout_s=wait_s, max_records=room):
            part = record.where
            if self._ledger.admit(part, record.offset, record.key):
                self._deliveries[(part, record.offset)] = _delivery(record)

    def _taken(self, topic: str) -> int:
        """Records of ``topic`` running or fetched and waiting for a slot."""
        return sum(
            1 for part, _ in self._ledger.running() + self._ledger.pending() if part.topic == topic
        )

    def _start_ready(self, pool: ThreadPoolExecutor) -> None:
        now = time.monotonic()
        running = Counter(part.topic for part, _ in self._ledger.running())
        for part in sorted(self._ledger.partitions()):
            for offset in self._ledger.startable(part):
                if not self._free:
                    return
                cap = self._topic_caps.get(part.topic)
                if cap is not None and running[part.topic] >= cap:
                    break  # fetched past its cap anyway (a rebalance): it waits its turn
                if self._due.get((part, offset), 0.0) > now:
                    continue
                self._due.pop((part, offset), None)
                slot = self._free.pop()
                handler = self.slots[slot]
                handler.cancel.clear()
                delivery = self._deliveries[(part, offset)]
                box: list[OutRecord] = []
                settle: list[Settle] = []
                self._ledger.start(part, offset)
                running[part.topic] += 1
                future = pool.submit(job_context(box, settle).run, handler.handle, delivery)
                self._running[future] = _Running(delivery, part, slot, box, settle)

    def _collect(self) -> None:
        for future in [f for f in self._running if f.done()]:
            running = self._running.pop(future)
            self._free.append(running.slot)
            handler = self.slots[running.slot]
            if not self._stopping:
                handler.cancel.clear()  # that cancel was for the moved job only
            delivery, part = running.delivery, running.part
            where = (part, delivery.offset)
            if running.orphaned:
                log.info("offset %d of %s is now another member's", delivery.offset, part)
                self._settlements.abandon(running.settle)
                self.jobs_handed_back += 1
                continue
            try:
                disposition = future.result()
            except BusUnavailable:  # the handler publishes failures itself; this is the bus
                log.exception("could not announce the outcome of offset %d; will retry", where[1])
                disposition = Disposition.RETRY
            except Exception as exc:  # the handler lets only bus failures out; this is a bug
                disposition = self._after_crash(handler, running, exc)
            if disposition is Disposition.COMMIT:
                self._ledger.finish(part, delivery.offset, running.box)
                self._settlements.hold(part, delivery.offset, running.settle)
                self._attempts.pop(where, None)
                continue
            self._settlements.abandon(running.settle)
            if self._stopping:
                # Shutting down: left uncommitted, another member picks it up.
                self.jobs_handed_back += 1
            else:
                self._ledger.put_back(part, delivery.offset)
                delay = 0.0
                if disposition is Disposition.HAND_BACK:
                    self.jobs_handed_back += 1
                else:
                    attempt = self._attempts[where] = self._attempts.get(where, 0) + 1
                    delay = max(
                        compute_backoff(attempt, cap_s=self.settings.retry_backoff_max_s),
                        handler.retry_hint_s,
                    )
                    log.info("retrying offset %d of %s in %.1f s", delivery.offset, part, delay)
                self._due[where] = time.monotonic() + delay

    def _after_crash(self, handler: JobHandler, running: _Running, exc: Exception) -> Disposition:
        """A bounded number of tries, then the message fails for good: a crash that repeats
        must not hold its partition (it did, retried every 30 s forever)."""
        delivery = running.delivery
        where = (running.part, delivery.offset)
        crashes = self._crashes[where] = self._crashes.get(where, 0) + 1
        if crashes < MAX_CRASHES:
            log.error("handling offset %d crashed (try %d): %r", delivery.offset, crashes, exc)
            return Disposition.RETRY
        del self._crashes[where]
        running.box.clear()  # whatever the crashed attempt held is not its outcome
        self._settlements.abandon(running.settle)
        running.settle.clear()
        try:
            return job_context(running.box, running.settle).run(handler.give_up, delivery, exc)
        except BusUnavailable:
            return Disposition.RETRY
        except Exception:
            log.critical("dropping offset %d: even its failure cannot be announced", where[1])
            running.box.clear()
            return Disposition.COMMIT

    def _flush(self, *, force: bool = False) -> None:
        """Release every partition's finished front: its outputs and offset in one commit."""
        if not force and time.monotonic() < self._flush_due:
            return
        if self._unanswered and not self._settle_unanswered():
            self._flush_due = time.monotonic() + FLUSH_RETRY_S
            return
        flushes = {}
        # Only partitions this member owns now: a revoked one waits for the rebalance's end.
        for part in self._ledger.partitions() - self._revoked:
            flush = self._ledger.flushable(part)
            if flush is not None:
                flushes[part] = flush
        if not flushes:
            return
        records = [record for flush in flushes.values() for record in flush.outputs]
        try:
            self._committer.commit(records, {part: f.commit for part, f in flushes.items()})
        except BusUnavailable as exc:
            self._flush_due = time.monotonic() + FLUSH_RETRY_S
            if exc.code == "commit_ambiguous":
                log.warning("commit of %d jobs unanswered; asking the group next", len(records))
                self._unanswered.update(flushes)
                return
            # Nothing of it is visible (a transaction) or it is replayed (plain): keep the
            # outputs and try again; a partition that moved is dropped by check_ownership and
            # its new owner replays it, with checkpoints, from the last commit.
            log.warning("outputs of %d jobs not committed yet: %s", len(records), exc)
            return
        for part, flush in flushes.items():
            self._flushed(part, flush)

    def _flushed(self, part: Partition, flush: Flush[OutRecord]) -> None:
        self._ledger.flushed(part, flush)
        self._settlements.committed(part, flush.offsets)
        self.jobs_done += len(flush.offsets)

    def _settle_unanswered(self) -> bool:
        """Decide each unanswered flush by the group's committed offset; False: not yet.

        First the committer settles the transaction it left (a new producer's
        ``init_transactions`` completes or aborts it), then the committed offsets, read with
        ``require_stable``, are final: at the flush's end, it committed (its outputs are
        visible: forget them); at or below its first offset, it did not (its outputs are still
        held and leave with the next flush); anything else means another member committed
        the partition meanwhile: drop it and read on from there. Either way no outcome is
        published twice or lost (docs/delivery.md, "A commit without an answer").
        """
        try:
            self._committer.recover()
            found = self.stream.committed(list(self._unanswered))
        except BusUnavailable as exc:
            log.info("unanswered commit not settled yet: %s", exc)
            return False
        for part, flush in list(self._unanswered.items()):
            del self._unanswered[part]
            offset = found.get(part)
            if offset == flush.commit:
                log.info("the unanswered commit of %s@%d did commit", part, flush.commit)
                self._flushed(part, flush)
            elif offset is None or offset <= flush.offsets[0]:
                log.info("the unanswered commit of %s@%d did not commit", part, flush.commit)
            else:
                log.warning("%s was committed to %d by another member; re-reading", part, offset)
                self._forget(part)
                self.stream.seek(part, offset)
        return True

    def _report_lag(self) -> None:
        """Refresh the lag gauges now and then; only this thread may touch the consumer."""
        now = time.monotonic()
        if now < self._lag_due:
            return
        self._lag_due = now + self.settings.metrics_lag_interval_s
        try:
            ends, positions = self.stream.lag_inputs(timeout_s=2.0)
        except BusUnavailable as exc:  # a metric is not worth failing the loop for
            log.debug("consumer lag not refreshed: %s", exc)
            return
        self._metrics.set_consumer_lag(consumer_lag(ends, positions))

    def _close(self) -> None:
        self._settlements.close()
        self.stream.close()


def _delivery(record: BusRecord) -> Delivery:
    key = record.key.encode("utf-8") if record.key is not None else None
    return Delivery(record.topic, record.partition, record.offset, key, record.value)
