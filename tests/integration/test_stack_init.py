"""`vidloc stack init` against services it did not start: idempotent topics and buckets."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from kafka import KafkaAdminClient

from devkit.stack.init import init_deployment
from vidloc import names
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings

pytestmark = pytest.mark.integration


def test_init_creates_missing_buckets_once_and_finds_every_topic(
    stack: Settings, kafka_admin: KafkaAdminClient
) -> None:
    run = uuid.uuid4().hex[:8]
    settings = stack.model_copy(
        update={"video_bucket": f"init-videos-{run}", "timeline_bucket": f"init-tl-{run}"}
    )
    first = init_deployment(settings, timeout_s=30)
    assert first.created_buckets == [settings.video_bucket, settings.timeline_bucket]
    store = ObjectStore(settings)
    assert store.ensure_bucket(settings.video_bucket) is False  # it exists now
    again = init_deployment(settings, timeout_s=30)
    assert again.created_buckets == [] and again.created_topics == []
    assert set(names.ALL_TOPICS) <= set(kafka_admin.list_topics())


def test_cli_init_reports_and_exits_zero(stack: Settings) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vidloc", "stack", "init"],
        env={**os.environ, "VIDLOC_KAFKA_BOOTSTRAP": stack.kafka_bootstrap},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"kafka {stack.kafka_bootstrap}: created topics" in proc.stdout
    assert f"s3 {stack.s3_endpoint}: created buckets" in proc.stdout
