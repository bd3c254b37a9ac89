"""Issue 23: the matrix of Kafka's own transactions_test.py, through a real three-broker cluster.

Two real workers, a batch of videos, and in turn: the leader of ``video.results`` partition 0
SIGKILLed mid-run and restarted after the session timeout; the transaction coordinator of a
worker's transactional id likewise; a worker frozen (SIGSTOP) past its session timeout while
it runs a long job, thawed (SIGCONT) once the other worker finished that job. A read_committed
reader must see every video exactly once, every timeline must exist, the group's committed
offsets must never go backwards, and results must flow again within 60 s of the broker's return.

Marked ``kafka_faults`` and left out of ``make test`` (minutes of wall time, three JVMs):
``make fault-test`` runs it. Figures go to the reliability report (``suite`` "kafka_faults").
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from pipeline import REPO, Watcher, Workers, own_stack
from reliability import Ingest, assert_one_outcome, record, set_faults, upload, wait_group_stable

from devkit.stack import stack_command
from devkit.synth.catalogue import spec_named
from devkit.synth.render import ensure_rendered
from vidloc import names
from vidloc.adapters.object_store import ObjectStore
from vidloc.settings import Settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.kafka_faults,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.timeout(1500),
]

KAFKA_PORT, CONTROLLER_PORT = 39092, 39093
VIDEOS = int(os.environ.get("VIDLOC_FAULT_VIDEOS", "32"))
SESSION_MS = 10_000
BACK_WITHIN_S = 60.0


@pytest.fixture(scope="module")
def cluster(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with own_stack(
        stack,
        tmp_path_factory.mktemp("cluster"),
        kafka_port=KAFKA_PORT,
        controller_port=CONTROLLER_PORT,
        brokers=3,
    ) as settings:
        yield settings


def _component(node_id: int) -> str:
    return "kafka" if node_id == 1 else f"kafka-{node_id}"


def _kill_node(settings: Settings, node_id: int) -> None:
    pid = int((Path(settings.stack_dir) / "pids" / f"{_component(node_id)}.pid").read_text())
    os.kill(pid, signal.SIGKILL)


def _leader(admin: KafkaAdminClient, topic: str, partition: int) -> int:
    (described,) = admin.describe_topics([topic])
    for part in described["partitions"]:
        if part["partition_index"] == partition:
            return int(part["leader_id"])
    raise AssertionError(f"{topic}-{partition} not described")


def _txn_partition(transactional_id: str, partitions: int = 50) -> int:
    """Kafka's ``Utils.abs(transactionalId.hashCode) % transaction.state.log.num.partitions``."""
    h = 0
    for ch in transactional_id:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return (h & 0x7FFFFFFF) % partitions


class OffsetWatch:
    """Samples the group's committed offsets; records any that went backwards."""

    def __init__(self, bootstrap: str, group: str) -> None:
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
        self._group = group
        self.last: dict[tuple[str, int], int] = {}
        self.backwards: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                offsets = self._admin.list_consumer_group_offsets(self._group)
            except Exception:  # a broker is down: sample again later
                continue
            for tp, meta in offsets.items():
                key, now = (tp.topic, tp.partition), meta.offset
                if now >= 0 and now < self.last.get(key, -1):
                    self.backwards.append(f"{key}: {self.last[key]} -> {now}")
                self.last[key] = max(now, self.last.get(key, -1))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._admin.close()


def _stall(arrivals: list[float], start: float, end: float) -> float:
    """The longest time without a new result between ``start`` and ``end``."""
    points = [start, *[t for t in arrivals if start < t < end], end]
    return max(b - a for a, b in itertools.pairwise(points))


def test_broker_kills_and_a_frozen_worker_lose_and_double_nothing(
    cluster: Settings, fake_vlm: str, tmp_path: Path
) -> None:
    settings = cluster
    bucket = f"faults-{uuid.uuid4().hex[:8]}"
    settings = settings.model_copy(update={"video_bucket": bucket})
    store = ObjectStore(settings)
    store.ensure_bucket(bucket)
    short = ensure_rendered(spec_named("h264_mp4"), REPO / ".cache" / "test-media")
    long = ensure_rendered(spec_named("long_h264"), REPO / ".cache" / "test-media")
    # Every chunk waits 1 s at the model: the videos are still running when the brokers die.
    set_faults(fake_vlm, [{"kind": "slow", "delay_s": 1, "count": 100_000}])
    env = {
        "VIDLOC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "VIDLOC_VIDEO_BUCKET": bucket,
        "VIDLOC_VLM_BASE_URL": fake_vlm,
        "VIDLOC_VLM_API_KEY": "test-key-not-secret",
        "VIDLOC_VLM_CONCURRENCY": "2",
        "VIDLOC_WORKER_SESSION_TIMEOUT_MS": str(SESSION_MS),
        "VIDLOC_SAMPLE_FPS": "1",
        "VIDLOC_SPAN_S": "0",
        "VIDLOC_METRICS_PORT": "0",
        "VIDLOC_WORK_DIR": str(tmp_path / "work"),
    }
    workers = Workers(settings, env, tmp_path)
    watcher = Watcher(settings)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap.split(","))
    offsets = OffsetWatch(settings.kafka_bootstrap, workers.group)
    arrivals: list[float] = []
    seen_ids: set[str] = set()

    def drain(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            watcher.drain(0.5)
            for vid in set(watcher.seen.results) - seen_ids:
                seen_ids.add(vid)
                arrivals.append(time.monotonic())

    def next_result_within(limit_s: float) -> float:
        before, started = len(seen_ids), time.monotonic()
        while len(seen_ids) == before and time.monotonic() - started < limit_s:
            drain(0.5)
        return time.monotonic() - started

    wall_start = time.monotonic()
    figures: dict[str, float] = {}
    try:
        procs = workers.start(2)
        wait_group_stable(tmp_path, 2)
        events = [
            upload(store, bucket, f"faults/{i:03d}-{uuid.uuid4().hex[:6]}.mp4", short)
            for i in range(VIDEOS)
        ]
        long_event = upload(store, bucket, f"faults/long-{uuid.uuid4().hex[:6]}.mp4", long)
        with Ingest(settings) as ingest:
            ingest.send_at_once(events)
        wanted = {e.effective_video_id for e in events}

        # 1. The leader of video.results-0, SIGKILLed once results flow; back after the
        #    session timeout.
        drain(8)
        for fault, node in (
            ("results_leader", _leader(admin, names.TOPIC_RESULTS, 0)),
            (
                "txn_coordinator",
                _leader(
                    admin,
                    "__transaction_state",
                    _txn_partition(f"{workers.group}-{socket.gethostname()}-{procs[0].pid}"),
                ),
            ),
        ):
            killed = time.monotonic()
            _kill_node(settings, node)
            drain(SESSION_MS / 1000 + 2)
            assert stack_command("up", settings, "kafka") == 0

            if len(seen_ids & wanted) < len(wanted):
                waited = next_result_within(BACK_WITHIN_S)
                assert waited < BACK_WITHIN_S, (
                    f"{fault}: stuck after the broker came back\n{workers.logs()}"
                )
                figures[f"{fault}_first_result_after_back_s"] = round(waited, 1)
            drain(5)
            figures[f"{fault}_stall_s"] = round(_stall(arrivals, killed, time.monotonic()), 1)
            figures[f"{fault}_node"] = node

        seen = watcher.wait_results(wanted, timeout_s=600, settle_s=5)

        # 3. A worker frozen past its session timeout while it runs the long job.
        with Ingest(settings) as ingest:
            long_id = ingest.send(long_event)
        deadline = time.monotonic() + 120
        runner = None
        while runner is None and time.monotonic() < deadline:
            drain(1)
            progress = watcher.seen.progress.get(long_id, [])
            if [p for p in progress if p.stage == "localizing"]:
                logs = sorted(tmp_path.glob("worker-*.log"))
                hits = [i for i, p in enumerate(logs) if long_id in p.read_text(errors="replace")]
                runner = hits[0] if hits else 0
        assert runner is not None, f"the long job never started\n{workers.logs()}"
        frozen = procs[runner]
        frozen.send_signal(signal.SIGSTOP)
        froze_at = time.monotonic()
        try:
            seen = watcher.wait_results([long_id], timeout_s=600, settle_s=0)
        finally:
            frozen.send_signal(signal.SIGCONT)
        figures["frozen_takeover_s"] = round(time.monotonic() - froze_at, 1)
        drain(SESSION_MS / 1000 + 10)  # the thawed worker notices its eviction and rejoins
        seen = watcher.seen

        lost = [v for v in [*wanted, long_id] if v not in seen.results]
        doubled = [v for v in [*wanted, long_id] if len(seen.results.get(v, [])) > 1]
        figures["wall_s"] = round(time.monotonic() - wall_start, 1)
        record(
            "kafka_faults",
            "three_brokers",
            videos=VIDEOS + 1,
            lost=len(lost),
            doubled=len(doubled),
            backwards=len(offsets.backwards),
            **figures,
        )
        print("kafka_faults figures:", figures, "lost", lost, "doubled", doubled)
        assert not lost, lost
        assert not doubled, {v: seen.results[v] for v in doubled}
        for vid in [*wanted, long_id]:
            assert_one_outcome(seen, vid)
            (result,) = seen.results[vid]
            assert result.status == "succeeded", f"{vid}: {result.error}"
            assert result.timeline is not None
            assert store.get_bytes(result.timeline.bucket, result.timeline.key)
        assert not offsets.backwards, offsets.backwards
        assert all(p.poll() is None for p in procs), f"a worker died\n{workers.logs()}"
    finally:
        offsets.close()
        workers.stop()
        watcher.close()
        admin.close()
