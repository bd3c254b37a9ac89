"""The worker's consumer loop: one message at a time per worker, the group kept alive meanwhile.

A job can take far longer than ``max.poll.interval.ms``. So the job runs in a thread while this
loop keeps calling ``poll()`` with every assigned partition paused: the consumer stays a live
member of the group, fetches nothing, and commits the offset only after the handler has
announced a final result. The Kafka consumer is not thread-safe, so only this thread
touches the stream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from vidloc.adapters.kafka import AssignmentCallback, BusRecord, Partition
from vidloc.backoff import compute_backoff
from vidloc.errors import BusUnavailable
from vidloc.metrics import Metrics, consumer_lag
from vidloc.settings import Settings
from workers.handler import MAX_CRASHES, Delivery, Disposition, IngestHandler

log = logging.getLogger(__name__)


class IngestStream(Protocol):
    """What the loop needs from the bus (``vidloc.adapters.kafka.EventStream`` in production).

    Only the consumer side: results leave through the handler's publisher, a separate object.
    Committing is one explicit call with the next offset to read per partition, so what to
    commit (and whether inside a producer transaction) stays the loop's decision.
    """

    def subscribe(
        self,
        topics: Sequence[str],
        *,
        on_assigned: AssignmentCallback | None = None,
        on_revoked: AssignmentCallback | None = None,
    ) -> None: ...

    def poll(self, *, timeout_s: float, max_records: int | None = None) -> list[BusRecord]: ...

    def commit(self, offsets: Mapping[Partition, int]) -> None: ...

    def seek(self, part: Partition, offset: int) -> bool: ...

    def assignment(self) -> set[Partition]: ...

    def pause(self, parts: Collection[Partition]) -> None: ...

    def pause_all(self) -> None: ...

    def resume_all(self) -> None: ...

    def lag_inputs(
        self, *, timeout_s: float = 2.0
    ) -> tuple[dict[Partition, int], dict[Partition, int | None]]: ...

    def close(self) -> None: ...


class WorkerLoop:
    def __init__(
        self,
        settings: Settings,
        stream: IngestStream,
        handler: IngestHandler,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        self._lag_due = 0.0
        self.settings = settings
        self.stream = stream
        self.handler = handler
        self._job: Future[Disposition] | None = None
        self._delivery: Delivery | None = None
        self._resume_at = 0.0
        self._attempts: dict[tuple[int, int], int] = {}
        self._crashes: dict[tuple[int, int], int] = {}
        self._lost: Partition | None = None
        self.jobs_done = 0
        self.jobs_handed_back = 0

    @property
    def busy(self) -> bool:
        return self._job is not None

    def check_ownership(self) -> None:
        """Hand the running job back when a rebalance gave its partition to another member.

        Its new owner replays the message from the last commit and, with the chunk checkpoints,
        resumes where this job got to; finishing it here too would announce it twice.
        """
        delivery = self._delivery
        if delivery is None or self._job is None:
            return
        part = Partition(delivery.topic, delivery.partition)
        if part not in self.stream.assignment():
            log.warning("%s moved to another member mid-job; handing the job back", part)
            self._lost = part
            self.handler.cancel.set()

    def _on_assigned(self, assigned: set[Partition]) -> None:
        # Partitions assigned while a job runs must stay paused too.
        if self.busy:
            self.stream.pause(assigned)
        self.check_ownership()

    def _on_revoked(self, revoked: set[Partition]) -> None:
        self.check_ownership()

    def run(self, topics: list[str], stop: threading.Event) -> None:
        self.stream.subscribe(topics, on_assigned=self._on_assigned, on_revoked=self._on_revoked)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="job") as pool:
            while True:
                self._report_lag()
                if stop.is_set() and not self.handler.cancel.is_set():
                    log.info("stop requested; finishing or handing back the current job")
                    self.handler.cancel.set()
                if self._job is None:
                    if stop.is_set():
                        break
                    self._poll_for_work(pool)
                else:
                    self._keep_alive_until_done(stop)
        self._close()

    def _poll_for_work(self, pool: ThreadPoolExecutor) -> None:
        if time.monotonic() < self._resume_at:
            self.stream.poll(timeout_s=0.2)
            return
        self.stream.resume_all()
        for record in self.stream.poll(timeout_s=0.5, max_records=1):
            self._delivery = _delivery(record)
            # Pause before the job starts so no further record is fetched meanwhile.
            self.stream.pause_all()
            self._job = pool.submit(self.handler.handle, self._delivery)
            return

    def _keep_alive_until_done(self, stop: threading.Event) -> None:
        assert self._job is not None and self._delivery is not None
        self.stream.poll(timeout_s=0.2)
        if not self._job.done():
            return
        delivery, job = self._delivery, self._job
        self._job, self._delivery = None, None
        part = Partition(delivery.topic, delivery.partition)
        lost, self._lost = self._lost == part, None
        if lost and not stop.is_set():
            self.handler.cancel.clear()  # that cancel was for the moved job only
        try:
            disposition = job.result()
        except BusUnavailable:  # the handler publishes failures itself; this is the bus failing
            log.exception(
                "could not announce the outcome of offset %d; will retry", delivery.offset
            )
            disposition = Disposition.RETRY
        except Exception as exc:  # the handler lets only bus failures out; this is a bug
            disposition = self._after_crash(delivery, exc)
        if disposition is Disposition.COMMIT:
            self._commit({part: delivery.offset + 1})
            self._attempts.pop((delivery.partition, delivery.offset), None)
            self.jobs_done += 1
        elif part not in self.stream.assignment():
            # Its new owner starts from the last commit; seeking a partition we lost would raise.
            log.info("offset %d of %s is now another member's", delivery.offset, part)
            self.jobs_handed_back += 1
        else:
            # Same offset again: after a backoff on RETRY, by another member on HAND_BACK.
            self.stream.seek(part, delivery.offset)
            if disposition is Disposition.HAND_BACK:
                self.jobs_handed_back += 1
            if disposition is Disposition.RETRY:
                attempt = self._attempts.get((delivery.partition, delivery.offset), 0) + 1
                self._attempts[(delivery.partition, delivery.offset)] = attempt
                delay = max(
                    compute_backoff(attempt, cap_s=self.settings.retry_backoff_max_s),
                    self.handler.retry_hint_s,
                )
                log.info("retrying offset %d in %.1f s", delivery.offset, delay)
                self._resume_at = time.monotonic() + delay

    def _after_crash(self, delivery: Delivery, exc: Exception) -> Disposition:
        """A bounded number of tries, then the message fails for good: a crash that repeats
        must not hold its partition (it did, retried every 30 s forever)."""
        where = (delivery.partition, delivery.offset)
        crashes = self._crashes[where] = self._crashes.get(where, 0) + 1
        if crashes < MAX_CRASHES:
            log.error("handling offset %d crashed (try %d): %r", delivery.offset, crashes, exc)
            return Disposition.RETRY
        del self._crashes[where]
        try:
            return self.handler.give_up(delivery, exc)
        except BusUnavailable:
            return Disposition.RETRY
        except Exception:
            log.critical("dropping offset %d: even its failure cannot be announced", where[1])
            return Disposition.COMMIT

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

    def _commit(self, offsets: dict[Partition, int]) -> None:
        """The one place the worker commits: next offset to read per partition."""
        try:
            self.stream.commit(offsets)
        except BusUnavailable as exc:
            # After a rebalance (code commit_rejected) the partition's new owner replays this
            # message and, with deterministic ids and checkpoints, announces the identical
            # result; any other failure is replayed the same way by the next owner.
            log.warning("%s", exc)

    def _close(self) -> None:
        self.stream.close()


def _delivery(record: BusRecord) -> Delivery:
    key = record.key.encode("utf-8") if record.key is not None else None
    return Delivery(record.topic, record.partition, record.offset, key, record.value)
