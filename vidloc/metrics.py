"""Prometheus metrics, defined in one place and owned by whoever builds the process.

A ``Metrics`` is made at the entrypoint (``vidloc worker``, ``vidloc api``) on a registry of its
own and passed down through constructors. Code that is given none makes ``Metrics()``: a private
registry nobody scrapes, so library code and tests never touch a process-wide default registry
(registering the same name twice there raises) and never need a None check.

=================================  =========  ==============================================
name                               type       labels
=================================  =========  ==============================================
vidloc_jobs_total                  counter    status (succeeded|failed|retried|handed_back),
                                              localizer
vidloc_jobs_in_flight              gauge      -
vidloc_errors_total                counter    code (``vidloc.errors`` codes)
vidloc_chunk_seconds               histogram  localizer
vidloc_model_request_seconds       histogram  outcome (ok|http_error|timeout|unreachable|
                                              invalid), status (HTTP code, "2xx" or "none")
vidloc_tokens_total                counter    kind (prompt|completion)
vidloc_cached_prompt_tokens_total  counter    - (prompt tokens the server's prefix cache served)
vidloc_frames_decoded_total        counter    -
vidloc_frame_cache_lookups_total   counter    outcome (hit|miss), reason (``frame_cache``)
vidloc_consumer_lag_messages       gauge      topic, partition
vidloc_span_read_bytes_total       counter    - (what span decoders read from the store by ranges)
vidloc_api_requests_total          counter    route, method, status (the query API)
vidloc_api_request_seconds         histogram  route
vidloc_videos                      gauge      status (the API's view of every known video)
vidloc_webhook_attempt_seconds     histogram  outcome (delivered|retry|refused)
vidloc_webhook_deliveries_total    counter    outcome (delivered|dead_lettered)
vidloc_webhook_retries_total       counter    -
vidloc_webhook_delivery_seconds    histogram  - (result or progress event made -> delivered)
vidloc_webhook_pending             gauge      - (deliveries not yet delivered or dead-lettered)
vidloc_webhook_oldest_pending_seconds  gauge  - (since the deliverer read its event)
=================================  =========  ==============================================
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

# Chunks: a cv chunk takes milliseconds, a VLM chunk of 30 frames seconds to minutes.
CHUNK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320)
# Model requests: one multi-image completion, retries excluded (each attempt is observed).
REQUEST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)

P = ParamSpec("P")
T = TypeVar("T")

JOB_STATUSES = ("succeeded", "failed", "retried", "handed_back")
# Webhook deliveries, event made -> delivered: a healthy receiver takes tens of milliseconds,
# retries stretch it up to VIDLOC_WEBHOOK_RETRY_FOR_S (an hour).
DELIVERY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 900, 3600)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """Every vidloc metric, registered on one registry; thread-safe like prometheus_client."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.jobs = Counter(
            "vidloc_jobs", "Jobs finished, by outcome", ["status", "localizer"], registry=r
        )
        self.jobs_in_flight = Gauge(
            "vidloc_jobs_in_flight", "Jobs this process is working on now", registry=r
        )
        self.errors = Counter(
            "vidloc_errors", "Errors met by jobs, by vidloc error code", ["code"], registry=r
        )
        self.chunk_seconds = Histogram(
            "vidloc_chunk_seconds",
            "Time to localize one chunk",
            ["localizer"],
            buckets=CHUNK_BUCKETS,
            registry=r,
        )
        self.model_request_seconds = Histogram(
            "vidloc_model_request_seconds",
            "One HTTP attempt against the model endpoint",
            ["outcome", "status"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("vidloc_tokens", "Model tokens used, by kind", ["kind"], registry=r)
        self.cached_prompt_tokens = Counter(
            "vidloc_cached_prompt_tokens",
            "Prompt tokens the model server reported served from its prefix cache",
            registry=r,
        )
        self.frames_decoded = Counter(
            "vidloc_frames_decoded", "Video frames the worker's decoders served", registry=r
        )
        self.frame_cache_lookups = Counter(
            "vidloc_frame_cache_lookups",
            "Frame-cache lookups of later analyses, by outcome and the reason of a miss",
            ["outcome", "reason"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "vidloc_consumer_lag_messages",
            "Messages not yet consumed: end offset minus this consumer's position",
            ["topic", "partition"],
            registry=r,
        )
        self._lag_series: set[tuple[str, str]] = set()
        self._lag_lock = threading.Lock()
        self.webhook_attempt_seconds = Histogram(
            "vidloc_webhook_attempt_seconds",
            "One webhook POST attempt, by outcome",
            ["outcome"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "vidloc_webhook_deliveries",
            "Webhook deliveries settled, by outcome",
            ["outcome"],
            registry=r,
        )
        self.webhook_retries = Counter(
            "vidloc_webhook_retries", "Failed webhook attempts scheduled again", registry=r
        )
        self.webhook_delivery_seconds = Histogram(
            "vidloc_webhook_delivery_seconds",
            "From an event's creation (its worker's clock) to its webhook's 2xx",
            buckets=DELIVERY_BUCKETS,
            registry=r,
        )
        self.webhook_pending = Gauge(
            "vidloc_webhook_pending",
            "Webhook deliveries read and neither delivered nor dead-lettered yet",
            registry=r,
        )
        self.webhook_oldest_pending_seconds = Gauge(
            "vidloc_webhook_oldest_pending_seconds",
            "Age of the oldest pending webhook delivery (since the deliverer read its event)",
            registry=r,
        )
        self.api_requests = Counter(
            "vidloc_api_requests",
            "Query API requests, by route template, method and status code",
            ["route", "method", "status"],
            registry=r,
        )
        self.api_request_seconds = Histogram(
            "vidloc_api_request_seconds",
            "Query API request latency, by route template",
            ["route"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.span_read_bytes = Counter(
            "vidloc_span_read_bytes",
            "Bytes the decoders of spans read from the object store by ranges",
            registry=r,
        )

    def api_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.api_requests.labels(route=route, method=method, status=str(status)).inc()
        self.api_request_seconds.labels(route=route).observe(seconds)

    # Jobs ---------------------------------------------------------------------------------

    def job_finished(self, status: str, localizer: str | None) -> None:
        self.jobs.labels(status=status, localizer=localizer or "unknown").inc()

    def error(self, code: str) -> None:
        self.errors.labels(code=code).inc()

    @contextmanager
    def job_in_flight(self) -> Iterator[None]:
        self.jobs_in_flight.inc()
        try:
            yield
        finally:
            self.jobs_in_flight.dec()

    # Chunks and the model -----------------------------------------------------------------

    def observe_chunk(self, localizer: str, seconds: float) -> None:
        self.chunk_seconds.labels(localizer=localizer).observe(seconds)

    def timed_chunk(self, localizer: str, fn: Callable[P, T]) -> Callable[P, T]:
        """``fn`` wrapped so each call's duration lands in the chunk histogram."""

        def timed(*args: P.args, **kwargs: P.kwargs) -> T:
            started = time.monotonic()
            try:
                return fn(*args, **kwargs)
            finally:
                self.observe_chunk(localizer, time.monotonic() - started)

        return timed

    def add_span_read(self, fetched: int) -> None:
        if fetched > 0:
            self.span_read_bytes.inc(fetched)

    def model_request(self, outcome: str, status: int | str | None, seconds: float) -> None:
        status_label = str(status) if status is not None else "none"
        self.model_request_seconds.labels(outcome=outcome, status=status_label).observe(seconds)

    def add_tokens(self, prompt: int, completion: int) -> None:
        if prompt:
            self.tokens.labels(kind="prompt").inc(prompt)
        if completion:
            self.tokens.labels(kind="completion").inc(completion)

    def add_cached_tokens(self, tokens: int) -> None:
        if tokens > 0:
            self.cached_prompt_tokens.inc(tokens)

    def add_decoded(self, frames: int) -> None:
        if frames:
            self.frames_decoded.inc(frames)

    def frame_cache_lookup(self, reason: str | None) -> None:
        """One lookup: ``reason`` None for a hit, else why it missed."""
        self.frame_cache_lookups.labels(
            outcome="miss" if reason else "hit", reason=reason or "none"
        ).inc()

    # Consumer lag -------------------------------------------------------------------------

    def set_consumer_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Replace the lag series with ``{(topic, partition): lag}``.

        Partitions this consumer no longer owns are dropped: a stale series would show lag on
        a partition another member is draining.
        """
        fresh = {(topic, str(partition)): max(0, lag) for (topic, partition), lag in lags.items()}
        with self._lag_lock:
            for gone in self._lag_series - set(fresh):
                self.consumer_lag.remove(*gone)
            for (topic, partition), lag in fresh.items():
                self.consumer_lag.labels(topic=topic, partition=partition).set(lag)
            self._lag_series = set(fresh)

    # Webhooks -----------------------------------------------------------------------------

    def webhook_attempt(self, outcome: str, seconds: float) -> None:
        self.webhook_attempt_seconds.labels(outcome=outcome).observe(seconds)

    def webhook_settled(self, outcome: str, since_event_s: float | None = None) -> None:
        """A delivery is done: ``delivered`` (``since_event_s`` after its event was made) or
        ``dead_lettered``."""
        self.webhook_deliveries.labels(outcome=outcome).inc()
        if since_event_s is not None:
            self.webhook_delivery_seconds.observe(max(0.0, since_event_s))

    def webhook_backlog(self, pending: int, oldest_s: float) -> None:
        self.webhook_pending.set(pending)
        self.webhook_oldest_pending_seconds.set(oldest_s)

    # Exposition ---------------------------------------------------------------------------

    def render(self) -> bytes:
        """The registry in the Prometheus text format (what ``/metrics`` serves)."""
        return generate_latest(self.registry)


def consumer_lag(
    end_offsets: Mapping[Any, int], positions: Mapping[Any, int | None]
) -> dict[tuple[str, int], int]:
    """Pure: lag per ``(topic, partition)`` from end offsets and positions keyed by partition.

    Keys are anything with ``.topic`` and ``.partition`` (kafka's TopicPartition). A partition
    without a position yet is left out: counting from offset 0 would overstate the lag where
    retention has already deleted the start of the log.
    """
    lags: dict[tuple[str, int], int] = {}
    for tp, end in end_offsets.items():
        position = positions.get(tp)
        if position is None:
            continue
        lags[(tp.topic, tp.partition)] = max(0, end - position)
    return lags


class MetricsServer:
    """``/metrics`` over HTTP on a background thread (prometheus_client's WSGI server)."""

    def __init__(self, metrics: Metrics, port: int, addr: str = "0.0.0.0") -> None:
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        if port == 0:
            return
        try:
            self._server, self._thread = start_http_server(
                port, addr=addr, registry=metrics.registry
            )
        except OSError as exc:
            # Metrics are for watching the work, not part of it: a taken port (two workers on
            # one host with the same VIDLOC_METRICS_PORT) must not stop the worker.
            log.error("metrics not served on %s:%d: %s", addr, port, exc)
            return
        self.port = self._server.server_port
        log.info("metrics on http://%s:%d/metrics", addr, self.port)

    @property
    def serving(self) -> bool:
        return self._server is not None

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_metrics(metrics: Metrics, port: int, addr: str = "0.0.0.0") -> MetricsServer:
    """Start serving ``metrics`` on ``port`` (0 = off); close the result to stop."""
    return MetricsServer(metrics, port, addr)
