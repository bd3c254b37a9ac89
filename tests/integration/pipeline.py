"""A harness for end-to-end tests: real workers as processes, a watcher on the output topics.

Every harness uses consumer groups of its own, positioned at the current end of their topics,
so leftovers from earlier runs on a developer's stack are never replayed into a test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts import (
    DlqRecord,
    ProgressEvent,
    ResultEvent,
    decode_dlq,
    decode_progress,
    decode_result,
)
from devkit.stack import stack_command
from vidloc import names
from vidloc.adapters.kafka import TopicReader, park_group_at_end
from vidloc.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Outputs:
    results: dict[str, list[ResultEvent]] = field(default_factory=lambda: defaultdict(list))
    dlq: dict[str, list[DlqRecord]] = field(default_factory=lambda: defaultdict(list))
    progress: dict[str, list[ProgressEvent]] = field(default_factory=lambda: defaultdict(list))


class Watcher:
    """Reads video.results, video.ingest.dlq and video.progress from their current ends."""

    TOPICS = (names.TOPIC_RESULTS, names.TOPIC_DLQ, names.TOPIC_PROGRESS)

    def __init__(self, settings: Settings) -> None:
        # Positioned before anything is published, so nothing the test triggers is missed.
        self._stream = TopicReader.tail(settings, self.TOPICS)
        self.seen = Outputs()

    def drain(self, timeout_s: float = 1.0) -> None:
        for msg in self._stream.poll(timeout_s=timeout_s, max_records=500):
            if msg.topic == names.TOPIC_RESULTS:
                result = decode_result(msg.value)
                self.seen.results[result.video_id].append(result)
            elif msg.topic == names.TOPIC_DLQ:
                record = decode_dlq(msg.value)
                self.seen.dlq[record.video_id].append(record)
            else:
                progress = decode_progress(msg.value)
                self.seen.progress[progress.video_id].append(progress)

    def wait_results(
        self, video_ids: Iterable[str], timeout_s: float, *, settle_s: float = 3.0
    ) -> Outputs:
        """Poll until every video has a result, then a little longer to catch duplicates."""
        wanted = set(video_ids)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not wanted <= set(self.seen.results):
            self.drain()
        settle_end = time.monotonic() + settle_s
        while time.monotonic() < settle_end:
            self.drain(0.5)
        missing = wanted - set(self.seen.results)
        assert not missing, f"no result within {timeout_s:.0f} s for {sorted(missing)}"
        return self.seen

    def close(self) -> None:
        self._stream.close()


class Workers:
    """``vidloc worker`` processes sharing one fresh consumer group."""

    def __init__(self, settings: Settings, env: Mapping[str, str], log_dir: Path) -> None:
        self.group = f"test-workers-{uuid.uuid4().hex[:10]}"
        for topic in names.WORKER_TOPICS:
            park_group_at_end(settings, self.group, topic)
        self._env = {**os.environ, **env, "VIDLOC_WORKER_GROUP": self.group}
        self._log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, count: int = 1) -> list[subprocess.Popen[bytes]]:
        started = []
        for _ in range(count):
            log = self._log_dir / f"worker-{len(self.procs)}.log"
            with log.open("wb") as sink:  # the child keeps its own descriptor
                proc = subprocess.Popen(
                    [sys.executable, "-m", "vidloc", "worker"],
                    cwd=REPO,
                    env=self._env,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            self.procs.append(proc)
            started.append(proc)
        return started

    def logs(self) -> str:
        parts = []
        for path in sorted(self._log_dir.glob("worker-*.log")):
            lines = path.read_text(errors="replace").splitlines()[-40:]
            parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    def stop(self, timeout_s: float = 40.0) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def own_stack(
    base: Settings,
    stack_dir: Path,
    *,
    kafka_port: int,
    controller_port: int,
    s3_port: int | None = None,
    brokers: int = 1,
    **update: Any,
) -> Iterator[Settings]:
    """A second local stack on other ports, for tests that stop or reconfigure components.

    It shares the built jars and versitygw binary (``cache_dir``) but nothing else with the
    stack every other test uses. Without ``s3_port`` only Kafka is started. ``brokers`` 3: a
    replicated cluster (devkit/stack/cluster.py), node i on ports 10 (i - 1) above the given.
    """
    changes: dict[str, Any] = {
        "kafka_port": kafka_port,
        "kafka_controller_port": controller_port,
        "kafka_bootstrap": ",".join(f"127.0.0.1:{kafka_port + 10 * i}" for i in range(brokers)),
        "stack_dir": stack_dir,
        "cache_dir": (REPO / base.cache_dir).resolve(),
    }
    if s3_port is not None:
        changes |= {"s3_port": s3_port, "s3_endpoint": f"http://127.0.0.1:{s3_port}"}
    settings = base.model_copy(update=changes | update)
    component = None if s3_port is not None else "kafka"
    try:
        started = stack_command("up", settings, component, brokers=brokers)
        assert started == 0, "the test's own stack did not start"
        yield settings
    finally:
        stack_command("down", settings, component)
