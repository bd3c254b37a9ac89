"""``vidloc init``: create vidloc's topics and buckets on a deployment's Kafka and S3 store.

What docker-compose's one-shot ``init`` service (or a Kubernetes Job) runs before the bridge,
workers and API start. The broker and the store may still be booting, so each step is retried
until a deadline instead of failing on the first refused connection. Safe to run any number of
times: what exists is left alone.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from vidloc.adapters.kafka.admin import ensure_topics
from vidloc.adapters.object_store import ObjectStore
from vidloc.cli.exits import EXIT_FAILED, EXIT_OK
from vidloc.errors import TransientError
from vidloc.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRY_EVERY_S = 2.0


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "init", help="create the topics and buckets (a deployment's one-shot init)"
    )
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="seconds to wait for Kafka and S3 (180)"
    )
    parser.set_defaults(func=run)


def until_ready(
    what: str,
    step: Callable[[], T],
    deadline: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``step()``, retried every RETRY_EVERY_S while it raises a TransientError, until
    ``deadline`` (on ``clock``); then the last error is raised."""
    while True:
        try:
            return step()
        except TransientError as exc:
            if clock() >= deadline:
                raise
            log.info("%s: not ready yet (%s); retrying", what, exc)
            sleep(RETRY_EVERY_S)


def create_buckets(settings: Settings) -> list[str]:
    store = ObjectStore(settings)
    buckets = dict.fromkeys((settings.video_bucket, settings.timeline_bucket))
    return [bucket for bucket in buckets if store.ensure_bucket(bucket)]


def run(args: argparse.Namespace, settings: Settings) -> int:
    deadline = time.monotonic() + args.timeout
    try:
        topics = until_ready("kafka", lambda: ensure_topics(settings), deadline)
        buckets = until_ready("s3", lambda: create_buckets(settings), deadline)
    except TransientError as exc:
        print(f"vidloc init: gave up waiting: {exc.code}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"kafka {settings.kafka_bootstrap}: created topics {', '.join(topics) or 'none'}",
        flush=True,
    )
    print(f"s3 {settings.s3_endpoint}: created buckets {', '.join(buckets) or 'none'}", flush=True)
    return EXIT_OK
