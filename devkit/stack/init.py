"""`vidloc stack init`: create vidloc's topics and buckets on services someone else runs.

``stack up`` starts a local Kafka and versitygw and then does this; in a deployment
(docker-compose's one-shot ``init`` service, a Kubernetes Job) the broker and the store already
exist, maybe still booting, so this waits for each until a deadline instead of failing on the
first refused connection. Safe to run any number of times.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from vidloc.adapters.kafka.admin import ensure_topics
from vidloc.adapters.object_store import ObjectStore
from vidloc.errors import StackError, TransientError
from vidloc.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRY_EVERY_S = 2.0


@dataclass
class InitReport:
    created_topics: list[str] = field(default_factory=list)
    created_buckets: list[str] = field(default_factory=list)


def create_topics(settings: Settings) -> list[str]:
    """Create the missing vidloc topics on ``VIDLOC_KAFKA_BOOTSTRAP``; return their names."""
    return ensure_topics(settings)  # BusUnavailable is a TransientError: retried until ready


def create_buckets(settings: Settings) -> list[str]:
    """Create the video and timeline buckets on ``VIDLOC_S3_ENDPOINT`` if missing."""
    store = ObjectStore(settings)
    buckets = dict.fromkeys((settings.video_bucket, settings.timeline_bucket))
    return [bucket for bucket in buckets if store.ensure_bucket(bucket)]


def _until_ready(
    what: str,
    step: Callable[[], T],
    deadline: float,
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> T:
    while True:
        try:
            return step()
        except TransientError as exc:
            if clock() >= deadline:
                raise StackError(f"{what}: gave up waiting: {exc}") from exc
            log.info("%s: not ready yet (%s); retrying", what, exc)
            sleep(RETRY_EVERY_S)


def init_deployment(
    settings: Settings,
    *,
    timeout_s: float = 180.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> InitReport:
    """Topics, then buckets; each retried until ``timeout_s`` while its service boots."""
    deadline = clock() + timeout_s
    report = InitReport()
    report.created_topics = _until_ready(
        "kafka", lambda: create_topics(settings), deadline, clock=clock, sleep=sleep
    )
    report.created_buckets = _until_ready(
        "s3", lambda: create_buckets(settings), deadline, clock=clock, sleep=sleep
    )
    return report


def init_command(settings: Settings, timeout_s: float = 180.0) -> int:
    """CLI body: 0 when everything exists, 1 (reason on stderr) when a service never answered."""
    try:
        report = init_deployment(settings, timeout_s=timeout_s)
    except StackError as exc:
        print(f"stack init failed: {exc}", file=sys.stderr)
        return 1
    topics = ", ".join(report.created_topics) or "none (all present)"
    buckets = ", ".join(report.created_buckets) or "none (all present)"
    print(f"kafka {settings.kafka_bootstrap}: created topics {topics}", flush=True)
    print(f"s3 {settings.s3_endpoint}: created buckets {buckets}", flush=True)
    return 0
