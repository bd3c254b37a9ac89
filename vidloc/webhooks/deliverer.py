"""The webhook deliverer: ``video.results`` (and ``video.progress``) -> signed POSTs.

A consumer group of its own (``VIDLOC_WEBHOOK_GROUP``) reads results read_committed, so it
sees what readers of the topic see, and the workers never wait for it: a slow or dead receiver
delays its own deliveries, nothing else. One thread owns the Kafka reader; sends run on a pool
(``VIDLOC_WEBHOOK_CONCURRENCY``, at most ``VIDLOC_WEBHOOK_PER_TARGET`` per webhook, so a
receiver that never answers holds at most that many senders for its timeout each). A failed
attempt is retried with capped, jittered backoff until ``VIDLOC_WEBHOOK_RETRY_FOR_S`` after
the first, then dead-lettered (registry.py) for an operator to see and replay. Offsets are
committed below the oldest unsettled delivery (ledger.py): at least once, under a delivery id
that is the same for every attempt and redelivery.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx

from contracts import ContractError, ProgressEvent, ResultEvent, decode_progress, decode_result
from producers.uploads import load_submission
from vidloc import names
from vidloc.adapters.kafka import BusRecord, Partition, TopicReader
from vidloc.adapters.object_store import ObjectStore
from vidloc.errors import TransientError
from vidloc.metrics import Metrics, consumer_lag
from vidloc.settings import Settings
from vidloc.tenancy import event_tenant
from vidloc.webhooks.ledger import OffsetLedger
from vidloc.webhooks.registry import EventKind, Webhook, WebhookRegistry
from vidloc.webhooks.sender import DELIVERED, REFUSED, Delivery, attempt, retry_delay
from vidloc.webhooks.targets import TargetPolicy

log = logging.getLogger(__name__)

# Clocks of the worker that stamped an event and of this process may differ this much.
CLOCK_SKEW = timedelta(seconds=2)


def decode_event(record: BusRecord) -> tuple[EventKind, ResultEvent | ProgressEvent] | None:
    try:
        if record.topic == names.TOPIC_RESULTS:
            return "result", decode_result(record.value)
        if record.topic == names.TOPIC_PROGRESS:
            return "progress", decode_progress(record.value)
    except ContractError as exc:
        log.warning("skipping unreadable %s@%d: %s", record.topic, record.offset, exc)
    return None


def event_time(event: ResultEvent | ProgressEvent) -> datetime:
    return event.created_at if isinstance(event, ResultEvent) else event.at


class Hooks:
    """The registrations as of the last read, re-read every ``refresh_s`` and whenever an event
    is newer than the last read (so a webhook gets every event created after its registration)."""

    def __init__(self, registry: WebhookRegistry, refresh_s: float) -> None:
        self._registry = registry
        self._refresh_s = refresh_s
        self._hooks: list[Webhook] = []
        self.read_at = datetime.min.replace(tzinfo=UTC)
        self._read_mono = -1e9

    def refresh(self) -> None:
        started = datetime.now(UTC)
        self._hooks = self._registry.all()
        self.read_at, self._read_mono = started, time.monotonic()

    def current(self, newest: datetime | None) -> list[Webhook]:
        stale = time.monotonic() - self._read_mono >= self._refresh_s
        behind = newest is not None and newest + CLOCK_SKEW >= self.read_at
        if stale or behind:
            try:
                self.refresh()
            except TransientError as exc:
                log.warning("webhook registrations not re-read (the last ones serve): %s", exc)
        return self._hooks


class Deliverer:
    def __init__(
        self,
        settings: Settings,
        store: ObjectStore | None = None,
        *,
        client: httpx.Client | None = None,
        policy: TargetPolicy | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics or Metrics()
        self._store = store or ObjectStore(settings)
        self.registry = WebhookRegistry(self._store, settings.timeline_bucket)
        self._policy = policy or TargetPolicy.parse(
            settings.webhook_allowed_networks, settings.webhook_allowed_hosts
        )
        self._client = client or httpx.Client(
            timeout=settings.webhook_timeout_s,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=settings.webhook_concurrency * 2),
        )
        self._hooks = Hooks(self.registry, settings.webhook_refresh_s)
        self._ledger = OffsetLedger()
        self._due: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count()
        self._done: queue.Queue[tuple[Delivery, str]] = queue.Queue()
        self._active: Counter[str] = Counter()
        self._submitters: OrderedDict[tuple[str | None, str], str | None] = OrderedDict()
        self._committed_at = 0.0
        # Every delivery read and not yet settled (queued, in flight or waiting to retry), for
        # the backlog gauges; insertion order is reading order, so the first is the oldest.
        self._unsettled: dict[int, float] = {}
        self._reported_at = self._lag_due = 0.0
        self.delivered = 0
        self.dead = 0

    # -- matching -------------------------------------------------------------------------

    def _submitter(self, tenant: str | None, video_id: str) -> str | None:
        slot = (tenant, video_id)
        if slot not in self._submitters:
            found = load_submission(self._store, self._settings.timeline_bucket, tenant, video_id)
            self._submitters[slot] = found.key_id if found is not None else None
            if len(self._submitters) > 4096:
                self._submitters.popitem(last=False)
        return self._submitters[slot]

    def deliveries_for(
        self,
        record: BusRecord,
        hooks: list[Webhook],
        kind: EventKind,
        event: ResultEvent | ProgressEvent,
    ) -> list[Delivery]:
        tenant = event_tenant(event)
        when = event_time(event)
        out = []
        for hook in hooks:
            if hook.tenant != tenant or kind not in hook.events or when < hook.created_at:
                continue
            if hook.key_id is not None and self._submitter(tenant, event.video_id) != hook.key_id:
                continue
            out.append(
                Delivery(
                    hook=hook,
                    kind=kind,
                    event_id=event.event_id,
                    video_id=event.video_id,
                    event_at=when,
                    body=record.value,
                    partition=record.where,
                    offset=record.offset,
                )
            )
        return out

    # -- the loop -------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        topics = [names.TOPIC_RESULTS, names.TOPIC_PROGRESS]
        while not stop.is_set():
            try:
                self._hooks.refresh()
                break
            except TransientError as exc:  # nothing is read before the registrations are
                log.warning("cannot read webhook registrations yet: %s", exc)
                stop.wait(2.0)
        stream = TopicReader.connect(
            self._settings,
            group_id=self._settings.webhook_group,
            max_poll_records=200,
            max_poll_interval_ms=5 * 60 * 1000,
        )
        stream.subscribe(topics, on_revoked=self._revoked)
        pool = ThreadPoolExecutor(self._settings.webhook_concurrency, "vidloc-webhook")
        committed: dict[Partition, int] = {}
        paused = False
        log.info("webhook deliverer reading %s as group %s", topics, self._settings.webhook_group)
        try:
            while not stop.is_set():
                self._settle()
                self._launch(pool)
                committed = self._commit(stream, committed)
                self._report(stream)
                full = self._ledger.pending() >= self._settings.webhook_max_pending
                if full != paused:
                    (stream.pause_all if full else stream.resume_all)()
                    paused = full
                busy = bool(self._due) or sum(self._active.values()) > 0
                try:
                    records = stream.poll(timeout_s=0.05 if busy else 0.5)
                except TransientError as exc:
                    log.warning("webhook deliverer: %s", exc)
                    stop.wait(1.0)
                    continue
                self._take(records)
        finally:
            # Attempts under way finish (each within VIDLOC_WEBHOOK_TIMEOUT_S); queued ones
            # are delivered again by whoever reads from the last commit.
            pool.shutdown(wait=True, cancel_futures=True)
            self._commit(stream, committed)
            stream.close()
            self._client.close()
            log.info("webhook deliverer stopped")

    def _revoked(self, parts: set[Partition]) -> None:
        # Nothing is committed inside a rebalance: what was not committed is delivered again
        # by the partitions' next owner, under the same delivery ids.
        self._ledger.forget(parts)

    def _take(self, records: list[BusRecord]) -> None:
        decoded = [(r, decode_event(r)) for r in records]
        times = [event_time(d[1]) for _, d in decoded if d is not None]
        hooks = self._hooks.current(max(times) if times else None)
        now = time.monotonic()
        for record, found in decoded:
            deliveries = self.deliveries_for(record, hooks, *found) if found is not None else []
            self._ledger.seen(record.where, record.offset, len(deliveries))
            for delivery in deliveries:
                self._unsettled[id(delivery)] = now
                heapq.heappush(self._due, (now, next(self._seq), delivery))

    def _launch(self, pool: ThreadPoolExecutor) -> None:
        now = time.monotonic()
        held: list[tuple[float, int, Delivery]] = []
        while self._due and self._due[0][0] <= now:
            if sum(self._active.values()) >= self._settings.webhook_concurrency:
                break
            item = heapq.heappop(self._due)
            delivery = item[2]
            if self._active[delivery.hook.id] >= self._settings.webhook_per_target:
                held.append(item)
                continue
            self._active[delivery.hook.id] += 1
            pool.submit(self._send, delivery)
        for item in held:
            heapq.heappush(self._due, item)

    def _send(self, delivery: Delivery) -> None:
        started = time.monotonic()
        try:
            outcome = attempt(self._client, delivery, self._policy)
        except Exception as exc:  # a bug must not lose the delivery: retried like a failure
            log.exception("webhook attempt failed unexpectedly")
            delivery.last_error = f"{type(exc).__name__}: {exc}"
            outcome = "retry"
        self._metrics.webhook_attempt(outcome, time.monotonic() - started)
        self._done.put((delivery, outcome))

    def _settle(self) -> None:
        while True:
            try:
                delivery, outcome = self._done.get_nowait()
            except queue.Empty:
                return
            self._active[delivery.hook.id] -= 1
            now = datetime.now(UTC)
            given_up = now - delivery.first_attempt_at >= timedelta(
                seconds=self._settings.webhook_retry_for_s
            )
            if outcome == DELIVERED:
                self.delivered += 1
                since = (now - delivery.event_at).total_seconds() if delivery.event_at else None
                self._metrics.webhook_settled("delivered", since)
                log.info(
                    "delivered %s %s to webhook %s (attempt %d)",
                    delivery.kind, delivery.id, delivery.hook.id, delivery.attempts,
                    extra={"video_id": delivery.video_id},
                )  # fmt: skip
            elif outcome == REFUSED or given_up:
                if not self._bury(delivery, now):
                    self._retry(delivery)
                    continue
            else:
                self._retry(delivery)
                continue
            self._unsettled.pop(id(delivery), None)
            if delivery.partition is not None:
                self._ledger.settle(delivery.partition, delivery.offset)  # type: ignore[arg-type]

    def _retry(self, delivery: Delivery) -> None:
        self._metrics.webhook_retries.inc()
        delay = retry_delay(delivery, self._settings.webhook_backoff_max_s)
        log.info(
            "webhook %s delivery %s failed (%s); attempt %d in %.1f s",
            delivery.hook.id, delivery.id, delivery.last_error, delivery.attempts + 1, delay,
        )  # fmt: skip
        heapq.heappush(self._due, (time.monotonic() + delay, next(self._seq), delivery))

    def _bury(self, delivery: Delivery, now: datetime) -> bool:
        try:
            self.registry.bury(delivery.dead_letter(now))
        except TransientError as exc:  # kept and retried: never dropped for want of a store
            log.warning("cannot dead-letter %s yet: %s", delivery.id, exc)
            return False
        self.dead += 1
        self._metrics.webhook_settled("dead_lettered")
        log.warning(
            "webhook %s delivery %s dead-lettered after %d attempts: %s",
            delivery.hook.id, delivery.id, delivery.attempts, delivery.last_error,
            extra={"video_id": delivery.video_id},
        )  # fmt: skip
        return True

    def _commit(self, stream: TopicReader, committed: dict[Partition, int]) -> dict[Partition, int]:
        wanted = {p: o for p, o in self._ledger.committable().items() if committed.get(p) != o}
        if not wanted or time.monotonic() - self._committed_at < 0.5:
            return committed
        self._committed_at = time.monotonic()
        try:
            stream.commit(wanted)
        except TransientError as exc:
            log.info("webhook offsets not committed yet: %s", exc)
            return committed
        return {**committed, **wanted}

    def _report(self, stream: TopicReader) -> None:
        """The backlog gauges every second, the consumer lag every
        ``VIDLOC_METRICS_LAG_INTERVAL_S``; only this thread touches the consumer."""
        now = time.monotonic()
        if now - self._reported_at < 1.0:
            return
        self._reported_at = now
        oldest = next(iter(self._unsettled.values()), now)
        self._metrics.webhook_backlog(len(self._unsettled), now - oldest)
        if now < self._lag_due:
            return
        self._lag_due = now + self._settings.metrics_lag_interval_s
        try:
            ends, positions = stream.lag_inputs(timeout_s=2.0)
        except TransientError as exc:  # a metric is not worth stopping deliveries for
            log.debug("webhook consumer lag not refreshed: %s", exc)
            return
        self._metrics.set_consumer_lag(consumer_lag(ends, positions))
