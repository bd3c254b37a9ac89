"""The worker's consumer loop: one message at a time per worker, the group kept alive meanwhile.

A job can take far longer than ``max.poll.interval.ms``. So the job runs in a thread while this
loop keeps calling ``poll()`` with every assigned partition paused: the consumer stays a live
member of the group, fetches nothing, and commits the offset only after the handler has
announced a final result. kafka-python's consumer is not thread-safe, so only this thread
touches it.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from vidloc.backoff import compute_backoff
from vidloc.metrics import Metrics, consumer_lag
from vidloc.settings import Settings
from workers.handler import Delivery, Disposition, IngestHandler

log = logging.getLogger(__name__)


class _PauseNewAssignments(ConsumerRebalanceListener):
    """Partitions assigned while a job runs must stay paused too."""

    def __init__(self, loop: WorkerLoop) -> None:
        self._loop = loop

    def on_partitions_revoked(self, revoked: Any) -> None:
        log.info("partitions revoked: %s", sorted(str(tp) for tp in revoked))
        self._loop.check_ownership()

    def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("partitions assigned: %s", sorted(str(tp) for tp in assigned))
        if self._loop.busy:
            self._loop.consumer.pause(*assigned)
        self._loop.check_ownership()


class WorkerLoop:
    def __init__(
        self,
        settings: Settings,
        consumer: KafkaConsumer,
        handler: IngestHandler,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        self._lag_due = 0.0
        self.settings = settings
        self.consumer = consumer
        self.handler = handler
        self._job: Future[Disposition] | None = None
        self._delivery: Delivery | None = None
        self._resume_at = 0.0
        self._attempts: dict[tuple[int, int], int] = {}
        self._lost: TopicPartition | None = None
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
        tp = TopicPartition(delivery.topic, delivery.partition)
        if tp not in self.consumer.assignment():
            log.warning("%s moved to another member mid-job; handing the job back", tp)
            self._lost = tp
            self.handler.cancel.set()

    def run(self, topics: list[str], stop: threading.Event) -> None:
        self.consumer.subscribe(topics, listener=_PauseNewAssignments(self))
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
            self.consumer.poll(timeout_ms=200)
            return
        if self.consumer.paused():
            self.consumer.resume(*self.consumer.paused())
        records = self.consumer.poll(timeout_ms=500, max_records=1)
        for tp, messages in records.items():
            for msg in messages:
                self._delivery = Delivery(tp.topic, tp.partition, msg.offset, msg.key, msg.value)
                # Pause before the job starts so no further record is fetched meanwhile.
                self.consumer.pause(*self.consumer.assignment())
                self._job = pool.submit(self.handler.handle, self._delivery)
                return

    def _keep_alive_until_done(self, stop: threading.Event) -> None:
        assert self._job is not None and self._delivery is not None
        self.consumer.poll(timeout_ms=200)
        if not self._job.done():
            return
        delivery, job = self._delivery, self._job
        self._job, self._delivery = None, None
        tp = TopicPartition(delivery.topic, delivery.partition)
        lost, self._lost = self._lost == tp, None
        if lost and not stop.is_set():
            self.handler.cancel.clear()  # that cancel was for the moved job only
        try:
            disposition = job.result()
        except Exception:  # the handler publishes failures itself; this is the bus failing
            log.exception(
                "could not announce the outcome of offset %d; will retry", delivery.offset
            )
            disposition = Disposition.RETRY
        if disposition is Disposition.COMMIT:
            self._commit(tp, delivery.offset + 1)
            self._attempts.pop((delivery.partition, delivery.offset), None)
            self.jobs_done += 1
        elif tp not in self.consumer.assignment():
            # Its new owner starts from the last commit; seeking a partition we lost would raise.
            log.info("offset %d of %s is now another member's", delivery.offset, tp)
            self.jobs_handed_back += 1
        else:
            # Same offset again: after a backoff on RETRY, by another member on HAND_BACK.
            self.consumer.seek(tp, delivery.offset)
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

    def _report_lag(self) -> None:
        """Refresh the lag gauges now and then; only this thread may touch the consumer."""
        now = time.monotonic()
        if now < self._lag_due:
            return
        self._lag_due = now + self.settings.metrics_lag_interval_s
        assigned = list(self.consumer.assignment())
        try:
            ends = self.consumer.end_offsets(assigned, timeout_ms=2000) if assigned else {}
            positions = {tp: self.consumer.position(tp, timeout_ms=2000) for tp in assigned}
        except KafkaError as exc:  # a metric is not worth failing the loop for
            log.debug("consumer lag not refreshed: %s", exc)
            return
        self._metrics.set_consumer_lag(consumer_lag(ends, positions))

    def _commit(self, tp: TopicPartition, offset: int) -> None:
        try:
            self.consumer.commit({tp: OffsetAndMetadata(offset, "", -1)})
        except CommitFailedError:
            # The partition moved to another member; it will replay this message and, with
            # deterministic ids and checkpoints, announce the identical result.
            log.warning("commit of %s@%d failed after a rebalance", tp, offset)
        except KafkaError as exc:
            log.warning("commit of %s@%d failed: %s", tp, offset, exc)

    def _close(self) -> None:
        try:
            self.consumer.close(autocommit=False)
        except KafkaError as exc:
            log.warning("consumer close failed: %s", exc)
