"""`vidloc init` (the product's, which the compose deployment's one-shot init runs) on the
running stack: every topic found, missing buckets created once."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from kafka import KafkaAdminClient

from vidloc import names
from vidloc.adapters.kafka.admin import topic_partitions
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings

pytestmark = pytest.mark.integration


def run_init(stack: Settings, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vidloc", "init", "--timeout", "30"],
        env={
            **os.environ,
            "VIDLOC_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
            "VIDLOC_S3_ENDPOINT": stack.s3_endpoint,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_init_creates_missing_buckets_once_and_finds_every_topic(
    stack: Settings, kafka_admin: KafkaAdminClient
) -> None:
    run = uuid.uuid4().hex[:8]
    buckets = {"VIDLOC_VIDEO_BUCKET": f"init-v-{run}", "VIDLOC_TIMELINE_BUCKET": f"init-t-{run}"}
    first = run_init(stack, **buckets)
    assert first.returncode == 0, first.stderr
    assert f"created buckets init-v-{run}, init-t-{run}" in first.stdout
    store = ObjectStore(stack)
    assert store.ensure_bucket(f"init-v-{run}") is False  # it exists now
    again = run_init(stack, **buckets)
    assert again.returncode == 0, again.stderr
    assert "created topics none" in again.stdout and "created buckets none" in again.stdout
    assert set(names.ALL_TOPICS) <= set(kafka_admin.list_topics())
    assert set(topic_partitions(stack)) == set(names.ALL_TOPICS)


def test_init_gives_up_on_a_broker_that_never_answers(stack: Settings) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vidloc", "init", "--timeout", "1"],
        env={**os.environ, "VIDLOC_KAFKA_BOOTSTRAP": "127.0.0.1:1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "vidloc init: gave up waiting: bus_unavailable" in proc.stderr
