"""Log injection through the real stack (issue 16, finding 5).

An object whose key holds a newline and an ANSI escape is uploaded to the real S3 store; its
notification goes through Kafka to a real bridge, which logs the key it skips. The bridge's
text log (formatted as ``configure_logging`` formats it) must show that key on one line, spelled
out, with no control byte: the newline used to forge a log line of its own and ESC reached the
operator's terminal.
"""

from __future__ import annotations

import io
import logging
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from minio import Minio

from producers.bridge import run_bridge
from vidloc import names
from vidloc.adapters.kafka import park_group_at_end
from vidloc.logs import ContextText, JobContext
from vidloc.settings import Settings

pytestmark = pytest.mark.integration

FORGED = "2026-11-29 12:00:00,000 INFO producers.bridge: all clear"


@pytest.fixture
def bridge_log(stack: Settings, group_id: str) -> Iterator[io.StringIO]:
    """A running bridge whose log lines are formatted like a deployed one's text logs."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(JobContext())
    handler.setFormatter(ContextText("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("producers.bridge")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    park_group_at_end(stack, group_id, names.TOPIC_S3_EVENTS)
    stop = threading.Event()
    thread = threading.Thread(
        target=run_bridge,
        kwargs={"settings": stack, "stop": stop, "group_id": group_id},
        name="test-bridge-logs",
        daemon=True,
    )
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join(timeout=20)
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_hostile_object_key_cannot_forge_a_log_line_or_reach_the_terminal(
    stack: Settings, minio_client: Minio, bridge_log: io.StringIO
) -> None:
    prefix = f"test-logs/{uuid.uuid4().hex[:10]}/"
    key = f"{prefix}evil\n{FORGED}\x1b[31m red.txt"
    minio_client.put_object(stack.video_bucket, key, io.BytesIO(b"x"), 1)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and prefix not in bridge_log.getvalue():
            time.sleep(0.2)
    finally:
        minio_client.remove_object(stack.video_bucket, key)
    text = bridge_log.getvalue()
    lines = [ln for ln in text.splitlines() if prefix in ln]  # its creation (and removal)
    assert any("not a video" in ln for ln in lines), text
    assert all(f"evil\\n{FORGED}\\x1b[31m red.txt" in ln for ln in lines), lines
    assert not any(ln.startswith(FORGED) for ln in text.splitlines())
    assert "\x1b" not in text
