"""The webhook deliverer as deployed (``vidloc api webhooks deliver`` in a subprocess) serves its
Prometheus metrics on ``VIDLOC_WEBHOOK_METRICS_PORT``: deliveries by outcome, retries, attempts,
event-to-delivery latency, the backlog and its consumer lag, counted from real deliveries to a
real receiver (one that fails twice, one the operator's allow-list refuses)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from apistack import isolated_settings
from pipeline import REPO
from prometheus_client.parser import text_string_to_metric_families
from receiver import Receiver

from contracts import decode_result, encode
from vidloc import names
from vidloc.adapters.kafka import EventPublisher, park_group_at_end
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings
from vidloc.webhooks import Webhook, WebhookRegistry, new_secret, new_webhook_id

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(sample name, labels): value} of one scrape; {} while nothing answers yet."""
    try:
        text = httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return {}
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def deliverer(stack: Settings, tmp_path: Path) -> Iterator[tuple[Settings, str]]:
    """(settings, metrics URL) of a deliverer subprocess with a timeline bucket of its own."""
    settings = isolated_settings(stack, "hookmetrics").model_copy(
        update={"webhook_group": f"test-hookmetrics-{uuid.uuid4().hex[:10]}"}
    )
    for topic in (names.TOPIC_RESULTS, names.TOPIC_PROGRESS):
        park_group_at_end(settings, settings.webhook_group, topic)
    port = _free_port()
    env = {
        **os.environ,
        "VIDLOC_TIMELINE_BUCKET": settings.timeline_bucket,
        "VIDLOC_VIDEO_BUCKET": settings.video_bucket,
        "VIDLOC_WEBHOOK_GROUP": settings.webhook_group,
        "VIDLOC_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        "VIDLOC_WEBHOOK_BACKOFF_MAX_S": "0.5",
        "VIDLOC_WEBHOOK_REFRESH_S": "1",
        "VIDLOC_WEBHOOK_METRICS_PORT": str(port),
        "VIDLOC_METRICS_LAG_INTERVAL_S": "1",
    }
    log = (tmp_path / "deliverer.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vidloc", "api", "webhooks", "deliver"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield settings, f"http://127.0.0.1:{port}/metrics"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        print((tmp_path / "deliverer.log").read_text(errors="replace")[-3000:])


def test_deliverer_metrics_count_deliveries_retries_dead_letters_and_backlog(
    deliverer: tuple[Settings, str],
) -> None:
    settings, url = deliverer
    tenant = f"hm-{uuid.uuid4().hex[:8]}"
    receiver = Receiver(fail_first=2)
    ok_url = receiver.start()
    registry = WebhookRegistry(ObjectStore(settings), settings.timeline_bucket)
    now = datetime.now(UTC)
    for target in (ok_url, "http://127.0.0.2:9/refused"):  # 127.0.0.2: not on the allow-list
        registry.save(
            Webhook(
                id=new_webhook_id(), tenant=tenant, url=target, secret=new_secret(), created_at=now
            )
        )
    try:
        deadline = time.monotonic() + 60
        while not _samples(url) and time.monotonic() < deadline:
            time.sleep(0.2)
        before = _samples(url)
        assert before, "the deliverer serves no metrics"
        assert _value(before, "vidloc_webhook_pending") == 0
        time.sleep(3.0)  # the deliverer has joined its group (parked at the end)
        video_id = f"hm-{uuid.uuid4().hex[:12]}"
        event = decode_result(
            {
                "schema": "vidloc.result.v1",
                "event_id": f"hm-{uuid.uuid4().hex}",
                "video_id": video_id,
                "job_id": f"job-{video_id}",
                "status": "succeeded",
                "tenant": tenant,
                "source": {"bucket": settings.video_bucket, "key": f"tenants/{tenant}/a.mp4"},
                "timeline": {
                    "bucket": settings.timeline_bucket,
                    "key": names.timeline_key(video_id, tenant),
                },
                "created_at": datetime.now(UTC).isoformat(),
            }
        )
        with EventPublisher(settings) as publisher:
            publisher.publish(names.TOPIC_RESULTS, video_id, encode(event))
        deadline = time.monotonic() + 60
        after = before
        while time.monotonic() < deadline:
            after = _samples(url)
            settled = _value(
                after, "vidloc_webhook_deliveries_total", outcome="delivered"
            ) + _value(after, "vidloc_webhook_deliveries_total", outcome="dead_lettered")
            if settled >= 2 and _value(after, "vidloc_webhook_pending") == 0:
                break
            time.sleep(0.3)
        assert [r.status for r in receiver.requests] == [500, 500, 200]
        assert _value(after, "vidloc_webhook_deliveries_total", outcome="delivered") == 1
        assert _value(after, "vidloc_webhook_deliveries_total", outcome="dead_lettered") == 1
        assert _value(after, "vidloc_webhook_retries_total") == 2
        assert _value(after, "vidloc_webhook_attempt_seconds_count", outcome="retry") == 2
        assert _value(after, "vidloc_webhook_attempt_seconds_count", outcome="delivered") == 1
        assert _value(after, "vidloc_webhook_attempt_seconds_count", outcome="refused") == 1
        assert _value(after, "vidloc_webhook_delivery_seconds_count") == 1
        assert 0 < _value(after, "vidloc_webhook_delivery_seconds_sum") < 30
        assert _value(after, "vidloc_webhook_pending") == 0
        assert _value(after, "vidloc_webhook_oldest_pending_seconds") == 0
        lag_topics = {
            dict(labels)["topic"]
            for name, labels in after
            if name == "vidloc_consumer_lag_messages"
        }
        assert names.TOPIC_RESULTS in lag_topics
    finally:
        receiver.stop()
