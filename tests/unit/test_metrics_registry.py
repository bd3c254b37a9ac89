"""Metrics objects, their hook points (model client, handler) and the job log context."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contracts import derive_job_id, encode
from contracts.ingest import IngestEvent
from vidloc.errors import DecodeFailed, ModelUnavailable
from vidloc.logs import JobContext, JsonLines, bind_job, current_job, job_context
from vidloc.metrics import Metrics, consumer_lag, serve_metrics
from vidloc.settings import Settings
from workers.model.client import ModelClient
from workers.service.handler import Delivery, Disposition, IngestHandler


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


# --- the Metrics object ------------------------------------------------------------------


def test_each_metrics_object_has_its_own_registry() -> None:
    # Two in one process must not clash (the default registry would raise "Duplicated").
    a, b = Metrics(), Metrics()
    a.job_finished("succeeded", "vlm")
    assert value(a, "vidloc_jobs_total", status="succeeded", localizer="vlm") == 1
    assert value(b, "vidloc_jobs_total", status="succeeded", localizer="vlm") == 0


def test_render_exposes_every_metric_in_text_format() -> None:
    m = Metrics()
    m.job_finished("failed", None)
    m.error("decode_failed")
    m.observe_chunk("cv", 0.3)
    m.model_request("http_error", 503, 1.5)
    m.add_tokens(100, 7)
    m.set_consumer_lag({("video.ingest", 0): 5})
    families = {f.name: f for f in text_string_to_metric_families(m.render().decode())}
    assert set(families) >= {
        "vidloc_jobs",
        "vidloc_jobs_in_flight",
        "vidloc_errors",
        "vidloc_chunk_seconds",
        "vidloc_model_request_seconds",
        "vidloc_tokens",
        "vidloc_consumer_lag_messages",
    }
    assert value(m, "vidloc_jobs_total", status="failed", localizer="unknown") == 1
    assert value(m, "vidloc_errors_total", code="decode_failed") == 1
    assert value(m, "vidloc_chunk_seconds_count", localizer="cv") == 1
    assert value(m, "vidloc_chunk_seconds_bucket", localizer="cv", le="0.5") == 1
    assert value(m, "vidloc_chunk_seconds_bucket", localizer="cv", le="0.25") == 0
    assert value(m, "vidloc_model_request_seconds_sum", outcome="http_error", status="503") == 1.5
    assert value(m, "vidloc_tokens_total", kind="prompt") == 100
    assert value(m, "vidloc_tokens_total", kind="completion") == 7
    assert value(m, "vidloc_consumer_lag_messages", topic="video.ingest", partition="0") == 5


def test_in_flight_gauge_drops_back_even_when_the_job_raises() -> None:
    m = Metrics()
    with m.job_in_flight():
        assert value(m, "vidloc_jobs_in_flight") == 1
    with pytest.raises(RuntimeError), m.job_in_flight():
        raise RuntimeError("boom")
    assert value(m, "vidloc_jobs_in_flight") == 0


def test_timed_chunk_observes_failures_too() -> None:
    m = Metrics()

    def localize(x: int) -> int:
        if x < 0:
            raise ValueError("bad chunk")
        return x * 2

    timed = m.timed_chunk("vlm", localize)
    assert timed(3) == 6
    with pytest.raises(ValueError):
        timed(-1)
    assert value(m, "vidloc_chunk_seconds_count", localizer="vlm") == 2


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


def test_consumer_lag_is_end_minus_position_and_skips_unknown_positions() -> None:
    ends = {TP("t", 0): 10, TP("t", 1): 4, TP("t", 2): 7}
    positions: dict[Any, int | None] = {TP("t", 0): 3, TP("t", 1): 9, TP("t", 2): None}
    # Partition 1: a position past a (stale) end offset is no negative lag.
    assert consumer_lag(ends, positions) == {("t", 0): 7, ("t", 1): 0}


def test_lag_series_of_partitions_no_longer_owned_disappear() -> None:
    m = Metrics()
    m.set_consumer_lag({("video.ingest", 0): 2, ("video.ingest", 1): 3})
    m.set_consumer_lag({("video.ingest", 1): 1})
    samples = [
        s
        for f in text_string_to_metric_families(m.render().decode())
        if f.name == "vidloc_consumer_lag_messages"
        for s in f.samples
    ]
    assert [(s.labels["partition"], s.value) for s in samples] == [("1", 1.0)]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_metrics_server_serves_and_stops_and_zero_means_off() -> None:
    m = Metrics()
    m.add_tokens(42, 0)
    with serve_metrics(m, free_port(), addr="127.0.0.1") as server:
        assert server.serving
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as r:
            body = r.read().decode()
        assert 'vidloc_tokens_total{kind="prompt"} 42.0' in body
    assert not server.serving
    with serve_metrics(m, 0) as off:
        assert not off.serving


def test_a_taken_port_leaves_the_worker_running_without_metrics(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    with (
        serve_metrics(Metrics(), port, addr="127.0.0.1") as first,
        serve_metrics(Metrics(), port, addr="127.0.0.1") as second,
    ):
        assert first.serving and not second.serving
    assert any("metrics not served" in r.getMessage() for r in caplog.records)


# --- the model client hook ---------------------------------------------------------------


def chat_ok() -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "choices": [{"message": {"content": "{}"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2},
        },
    )


def test_model_client_observes_every_attempt_with_outcome_and_status() -> None:
    answers: list[httpx.Response | Exception] = [
        httpx.Response(503, json={"error": {"message": "busy"}}),
        httpx.ReadTimeout("slow"),
        chat_ok(),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        item = answers.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    m = Metrics()
    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        client = ModelClient(
            "http://model.test/v1", "m", None, {}, http, sleep=lambda _s: None, metrics=m
        )
        client.complete([{"role": "user", "content": "hi"}])
    count = "vidloc_model_request_seconds_count"
    assert value(m, count, outcome="http_error", status="503") == 1
    assert value(m, count, outcome="timeout", status="none") == 1
    assert value(m, count, outcome="ok", status="2xx") == 1


def test_model_client_counts_a_final_refusal() -> None:
    m = Metrics()
    transport = httpx.MockTransport(lambda r: httpx.Response(400, json={"error": "too big"}))
    with httpx.Client(transport=transport) as http:
        client = ModelClient("http://model.test/v1", "m", None, {}, http, metrics=m)
        with pytest.raises(Exception, match="HTTP 400"):
            client.complete([{"role": "user", "content": "hi"}])
    assert value(m, "vidloc_model_request_seconds_count", outcome="http_error", status="400") == 1


# --- the handler hook and the job log context --------------------------------------------


class Capture(logging.Handler):
    """Formats records the way a JSON-logging worker does, filters included."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(JobContext())
        self.setFormatter(JsonLines())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def captured() -> Iterator[Capture]:
    capture = Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.INFO)
    yield capture
    root.removeHandler(capture)
    root.setLevel(old_level)


def test_records_from_a_nested_pool_thread_carry_the_job_ids(captured: Capture) -> None:
    deep = logging.getLogger("workers.localizers.deep")

    def chunk_work(i: int) -> None:
        deep.info("chunk %d", i)

    def job() -> None:
        bind_job("vid-1", "job-1")
        deep.info("job thread")
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(contextvars.copy_context().run, chunk_work, i) for i in (0, 1)]
            for f in futures:
                f.result()

    with ThreadPoolExecutor(1) as outer:
        outer.submit(contextvars.copy_context().run, job).result()
    deep.info("after the job")  # this thread never bound a job

    ids = [(line["message"], line.get("video_id"), line.get("job_id")) for line in captured.lines]
    assert sorted(ids[:3]) == [
        ("chunk 0", "vid-1", "job-1"),
        ("chunk 1", "vid-1", "job-1"),
        ("job thread", "vid-1", "job-1"),
    ]
    assert ids[3] == ("after the job", None, None)
    assert current_job() is None


def test_explicit_extra_wins_and_job_context_resets(captured: Capture) -> None:
    log = logging.getLogger("vidloc.test")
    with job_context("vid-a", "job-a"):
        log.info("inside", extra={"video_id": "vid-explicit"})
    log.info("outside")
    assert [(x.get("video_id"), x.get("job_id")) for x in captured.lines] == [
        ("vid-explicit", "job-a"),
        (None, None),
    ]


def test_context_text_format_carries_ids_too() -> None:
    from vidloc.logs import ContextText

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(JobContext())
    handler.setFormatter(ContextText("%(levelname)s %(message)s"))
    log = logging.getLogger("vidloc.test.text")
    log.addHandler(handler)
    log.propagate = False
    try:
        with job_context("vid-t", "job-t"):
            log.warning("hello")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    assert stream.getvalue().strip() == "WARNING hello [video_id=vid-t job_id=job-t]"


class StubRunner:
    """Stands in for JobRunner: logs from a pool thread like a localizer, then acts."""

    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def run_or_hand_off(self, event: IngestEvent, job_id: str, progress: Any) -> Any:
        return self.run(event, job_id, progress)

    def run(self, event: IngestEvent, job_id: str, progress: Any) -> Any:
        log = logging.getLogger("workers.localizers.stub")
        with ThreadPoolExecutor(1) as pool:
            ctx = contextvars.copy_context()
            pool.submit(ctx.run, log.info, "localizing in a pool thread").result()
        if self.error is not None:
            raise self.error
        raise AssertionError("only failure paths are stubbed here")


def delivery_for(bucket: str) -> tuple[Delivery, IngestEvent]:
    event = IngestEvent.model_validate(
        {
            "schema": "vidloc.ingest.v1",
            "event_id": "evt-metrics-1",
            "video_id": "vid-metrics-1",
            "source": {"bucket": bucket, "key": "a.mp4", "etag": "e1", "size": 10},
            "options": {"localizer": "cv"},
            "submitted_at": "2026-01-01T00:00:00Z",
        }
    )
    return Delivery("video.ingest", 0, 5, b"vid-metrics-1", encode(event)), event


@pytest.mark.parametrize(
    ("error", "disposition", "status", "code"),
    [
        pytest.param(DecodeFailed("bad"), Disposition.COMMIT, "failed", "decode_failed", id="dlq"),
        pytest.param(
            ModelUnavailable("down"), Disposition.RETRY, "retried", "model_unavailable", id="retry"
        ),
    ],
)
def test_handler_counts_outcomes_and_tags_job_lines(
    captured: Capture, error: Exception, disposition: Disposition, status: str, code: str
) -> None:
    settings = Settings(video_bucket="videos", circuit_failure_threshold=100)
    delivery, event = delivery_for("videos")
    published: list[tuple[str, str]] = []
    m = Metrics()
    handler = IngestHandler(
        settings,
        StubRunner(error),  # type: ignore[arg-type]
        lambda topic, key, _value: published.append((topic, key)),
        metrics=m,
    )
    with ThreadPoolExecutor(1, thread_name_prefix="job") as pool:
        assert pool.submit(handler.handle, delivery).result() is disposition
    assert value(m, "vidloc_jobs_total", status=status, localizer="cv") == 1
    assert value(m, "vidloc_errors_total", code=code) == 1
    assert value(m, "vidloc_jobs_in_flight") == 0
    job_id = derive_job_id(event.event_id)
    job_lines = [x for x in captured.lines if x["logger"].startswith("workers.")]
    assert any(x["message"] == "localizing in a pool thread" for x in job_lines)
    assert job_lines and all(
        (x.get("video_id"), x.get("job_id")) == ("vid-metrics-1", job_id) for x in job_lines
    ), job_lines
    if status == "failed":
        assert ("video.ingest.dlq", "vid-metrics-1") in published


def test_handler_refused_message_counts_as_failed_with_unknown_localizer() -> None:
    m = Metrics()
    handler = IngestHandler(
        Settings(video_bucket="videos"),
        StubRunner(None),  # type: ignore[arg-type]
        lambda *_a: None,
        metrics=m,
    )
    delivery, _ = delivery_for("someone-elses-bucket")
    assert handler.handle(delivery) is Disposition.COMMIT
    assert value(m, "vidloc_jobs_total", status="failed", localizer="unknown") == 1
    assert value(m, "vidloc_errors_total", code="bucket_not_allowed") == 1


def test_threads_started_outside_a_job_see_no_job() -> None:
    seen: list[dict[str, str] | None] = []
    with job_context("v", "j"):
        t = threading.Thread(target=lambda: seen.append(current_job()))
        t.start()
        t.join()
    # A bare Thread starts from an empty context: only copied contexts carry the ids.
    assert seen == [None]
