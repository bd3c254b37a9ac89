"""``vidloc worker``: wire the adapters into a WorkerLoop and run it until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import httpx

from contracts import IngestEvent
from vidloc import names
from vidloc.adapters.kafka import EventPublisher, TopicReader, TransactionalPublisher
from vidloc.adapters.object_store import ObjectStore
from vidloc.metrics import Metrics, serve_metrics
from vidloc.settings import Settings
from workers.frames import forced_source, open_frame_source, open_ranged_source
from workers.frames.isolated import start_decoder_server
from workers.localizers.kind import LocalizerDeps
from workers.localizers.registry import localizer_kind
from workers.model.circuit import CircuitBreaker
from workers.model.client import http_client_from_settings
from workers.pipeline.job import JobRunner
from workers.pipeline.spans import group_slots
from workers.priority import PrioritySlots
from workers.service.consumer import GroupShare, WorkerLoop
from workers.service.handler import IngestHandler
from workers.service.outbox import Committer, PlainCommitter, Publish, TransactionCommitter, holding
from workers.service.work_markers import WorkMarkers
from workers.service.workdir import own_work_dir, release_work_dir
from workers.types import FrameSource, Localizer, RangedFrameSource, VideoInfo

log = logging.getLogger(__name__)


def localizer_factory(
    settings: Settings, http: httpx.Client, metrics: Metrics | None = None
) -> Callable[[str], Localizer]:
    deps = LocalizerDeps(settings, http, metrics)
    shared: dict[str, Localizer] = {}
    lock = threading.Lock()

    def make(name: str) -> Localizer:
        kind = localizer_kind(name)
        if not kind.shared:
            return kind.build(deps)
        # One for every job of this worker: a model localizer's semaphore is the worker's one
        # model budget.
        with lock:
            if name not in shared:
                shared[name] = kind.build(deps)
            return shared[name]

    return make


def source_opener(settings: Settings) -> Callable[[Path], tuple[FrameSource, VideoInfo]]:
    def open_source(path: Path) -> tuple[FrameSource, VideoInfo]:
        return open_frame_source(
            str(path),
            force=forced_source(settings.frame_source),
            decode_timeout_s=settings.decode_timeout_s,
            threads=settings.decode_threads,
        )

    return open_source


def ranged_opener(
    settings: Settings, store: ObjectStore
) -> Callable[[IngestEvent], RangedFrameSource]:
    """A span's source: its object version read by ranges (pinned to the order's etag, held to
    ``VIDLOC_MAX_OBJECT_BYTES``), decoded by PyAV in a child of its own."""

    def open_ranged(event: IngestEvent) -> RangedFrameSource:
        remote = store.remote_object(
            event.source.bucket,
            event.source.key,
            max_bytes=settings.max_object_bytes,
            expected_etag=event.source.etag,
        )
        return open_ranged_source(
            remote, decode_timeout_s=settings.decode_timeout_s, threads=settings.decode_threads
        )

    return open_ranged


def build_handlers(
    settings: Settings,
    publish: Publish,
    http: httpx.Client,
    metrics: Metrics | None = None,
    *,
    publish_progress: Publish | None = None,
    span_slots: Callable[[], int] | None = None,
) -> list[IngestHandler]:
    """One handler per job slot: per-job state (cancel flag, retry hint) apart; the runner,
    model budget and circuit breaker shared, so the breaker sees every job's model failures."""
    store = ObjectStore(settings)
    make_localizer = localizer_factory(settings, http, metrics)
    # Decoded chunks held at once across the jobs: enough for the model's slots to be busy while
    # as many more are decoded, and never less than one job alone holds (concurrency + 1).
    frames = PrioritySlots(max(2, 2 * settings.vlm_concurrency))
    # Chunks decoded at once across the jobs: one per core (one decode thread each, by default).
    # Both give a freed slot to a short video or a merge before a span order (workers/priority.py).
    decoding = PrioritySlots(settings.decode_slots or os.cpu_count() or 1)
    runner = JobRunner(
        settings,
        store,
        source_opener(settings),
        make_localizer,
        metrics,
        frame_budget=frames,
        decode_slots=decoding,
        open_ranged=ranged_opener(settings, store),
        span_slots=span_slots,
        # A lead-in (foreground) is given a freed span decoder before a span order.
        span_decoders=PrioritySlots(settings.span_decoders),
    )
    breaker = CircuitBreaker(settings.circuit_failure_threshold, settings.circuit_cooldown_s)
    # Identical work (same object version and options) runs once; see workers/service/dedup.py.
    markers = WorkMarkers(store, settings.timeline_bucket)
    return [
        IngestHandler(
            settings,
            runner,
            publish,
            breaker=breaker,
            metrics=metrics,
            publish_progress=publish_progress,
            markers=markers,
        )
        for _ in range(settings.effective_worker_jobs)
    ]


def transactional_id(settings: Settings) -> str:
    """Stable per worker instance where the operator names it (a pod name); else host + pid."""
    if settings.worker_transactional_id:
        return settings.worker_transactional_id
    return f"{settings.worker_group}-{socket.gethostname()}-{os.getpid()}"


def run_worker(settings: Settings, stop: threading.Event | None = None) -> int:
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d received: leaving the group after the current job", signum)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    work_dir = own_work_dir(settings.work_dir)
    try:
        return _run(settings.model_copy(update={"work_dir": work_dir}), stop)
    finally:
        release_work_dir(work_dir)


def _run(settings: Settings, stop: threading.Event) -> int:
    metrics = Metrics()
    # Before the first job: decoder children are forked from it (workers/frames/isolated.py).
    start_decoder_server()
    with (
        serve_metrics(metrics, settings.metrics_port),
        # One builder for the model's TLS (VIDLOC_VLM_CA_FILE), limits and timeouts.
        http_client_from_settings(settings) as http,
        # In-flight progress (advisory) leaves at once; outcomes wait for their offset.
        EventPublisher(settings) as publisher,
    ):
        # Span orders may take every slot but one: a short video never waits for a long one.
        span_cap = max(1, min(settings.span_jobs, settings.effective_worker_jobs - 1))
        share = GroupShare()

        def span_slots() -> int:
            owned = share.owned(names.TOPIC_SPANS)
            return group_slots(owned, settings.span_partitions, span_cap)

        handlers = build_handlers(
            settings,
            holding(publisher.publish),
            http,
            metrics,
            # Advisory: a job does not wait a broker round trip per progress event.
            publish_progress=publisher.publish_soon,
            span_slots=span_slots,
        )
        # Jobs outlive any poll interval, but the loop keeps polling with partitions paused, so
        # the default interval holds; a short session lets a dead worker's partitions move fast.
        stream = TopicReader.connect(
            settings,
            group_id=settings.worker_group,
            max_poll_interval_ms=settings.worker_max_poll_interval_ms,
            session_timeout_ms=settings.worker_session_timeout_ms,
            heartbeat_interval_ms=settings.worker_heartbeat_interval_ms,
        )
        transactions: TransactionalPublisher | None = None
        committer: Committer
        try:
            if settings.worker_transactions:
                transactions = TransactionalPublisher(
                    settings,
                    transactional_id(settings),
                    transaction_timeout_ms=settings.worker_transaction_timeout_ms,
                )
                committer = TransactionCommitter(stream, transactions)
            else:
                committer = PlainCommitter(stream, publisher.publish)
            loop = WorkerLoop(
                settings,
                stream,
                handlers,
                metrics,
                committer=committer,
                topic_caps={names.TOPIC_SPANS: span_cap},
                share=share,
            )
            log.info(
                "worker started: group %s on %s, %d jobs at once, %s commits, localizer default %s",
                settings.worker_group,
                ", ".join(names.WORKER_TOPICS),
                len(handlers),
                "transactional" if transactions is not None else "plain",
                settings.effective_localizer,
            )
            loop.run(list(names.WORKER_TOPICS), stop)
        finally:
            if transactions is not None:
                transactions.close()
    log.info("worker stopped after %d jobs (%d handed back)", loop.jobs_done, loop.jobs_handed_back)
    return 0
