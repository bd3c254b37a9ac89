"""Issue 23: the matrix of Kafka's own transactions_test.py, through a real three-broker cluster.

Two real workers and, in each round, four batches of videos (``VIDLOC_FAULT_VIDEOS``, 32): one
without a fault (the baseline wall time); one during which the leader of ``video.results``
partition 0 is SIGKILLed mid-run and restarted after the session timeout; one during which the
transaction coordinator of a worker's transactional id is; one queued behind a long job whose
worker is frozen (SIGSTOP) past its session timeout and thawed (SIGCONT) once the other worker
finished that job. ``VIDLOC_FAULT_RUNS`` rounds (``make fault-matrix``: 5). A read_committed
reader must see every video exactly once, every timeline must exist, the group's committed
offsets must never go backwards, and results must flow again within 60 s of the broker's return.

Marked ``kafka_faults`` and left out of ``make test`` (minutes of wall time, three JVMs):
``make fault-test`` runs it. Figures go to the reliability report (``suite`` "kafka_faults").
"""

from __future__ import annotations

import gc
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
# Rounds of the whole matrix (each fault once per round); `make fault-matrix` runs 5.
RUNS = int(os.environ.get("VIDLOC_FAULT_RUNS", "1"))
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
    set_faults(fake_vlm, [{"kind": "slow", "delay_s": 1, "count": 1_000_000}])
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
    everything: list[str] = []

    def drain(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            watcher.drain(0.5)
            for vid in set(watcher.seen.results) - seen_ids:
                seen_ids.add(vid)
                arrivals.append(time.monotonic())

    def next_result_within(limit_s: float, wanted: set[str]) -> float:
        before, started = len(seen_ids), time.monotonic()
        while (
            len(seen_ids) == before
            and len(seen_ids & wanted) < len(wanted)
            and time.monotonic() - started < limit_s
        ):
            drain(0.5)
        return time.monotonic() - started

    def publish_batch(tag: str) -> set[str]:
        events = [
            upload(store, bucket, f"faults/{tag}-{i:03d}-{uuid.uuid4().hex[:6]}.mp4", short)
            for i in range(VIDEOS)
        ]
        with Ingest(settings) as ingest:
            ingest.send_at_once(events)
        wanted = {e.effective_video_id for e in events}
        everything.extend(wanted)
        return wanted

    def wait_all(wanted: set[str], what: str) -> None:
        deadline = time.monotonic() + 600
        while len(seen_ids & wanted) < len(wanted) and time.monotonic() < deadline:
            drain(1)
        missing = wanted - seen_ids
        assert not missing, f"{what}: {len(missing)} results missing\n{workers.logs()}"

    def kill_and_return(fault: str, node: int, wanted: set[str], figures: dict[str, float]) -> None:
        """Kill ``node`` once the batch is under way, bring it back after the session
        timeout, and time the batch and the result stream's longest stall."""
        started = time.monotonic()
        while len(seen_ids & wanted) < 2 and time.monotonic() - started < 120:
            drain(0.5)  # mid-run: some results out, most pending
        pending = len(wanted - seen_ids)
        assert pending > VIDEOS // 2, f"{fault}: the batch finished before the kill"
        killed = time.monotonic()
        _kill_node(settings, node)
        drain(SESSION_MS / 1000 + 2)
        assert stack_command("up", settings, "kafka") == 0
        back = time.monotonic()
        if len(seen_ids & wanted) < len(wanted):
            waited = next_result_within(BACK_WITHIN_S, wanted)
            assert waited < BACK_WITHIN_S, f"{fault}: stuck after the broker came back\n" + (
                workers.logs()
            )
            figures[f"{fault}_first_result_after_back_s"] = round(waited, 1)
        wait_all(wanted, fault)
        figures[f"{fault}_pending_at_kill"] = pending
        figures[f"{fault}_stall_s"] = round(_stall(arrivals, killed, time.monotonic()), 1)
        figures[f"{fault}_back_to_done_s"] = round(time.monotonic() - back, 1)
        figures[f"{fault}_wall_s"] = round(time.monotonic() - started, 1)
        figures[f"{fault}_node"] = node

    wall_start = time.monotonic()
    try:
        procs = workers.start(2)
        wait_group_stable(tmp_path, 2)
        coordinator_of = f"{workers.group}-{socket.gethostname()}-{procs[0].pid}"
        for run in range(RUNS):
            figures: dict[str, float] = {}
            # 0. The same batch without a fault: what the faults' wall times compare to.
            started = time.monotonic()
            wait_all(publish_batch(f"r{run}-none"), "no fault")
            figures["baseline_wall_s"] = round(time.monotonic() - started, 1)

            # 1. The leader of video.results-0; 2. the transaction coordinator of a worker's
            #    transactional id: each SIGKILLed while its own batch is pending.
            for fault, node in (
                ("results_leader", lambda: _leader(admin, names.TOPIC_RESULTS, 0)),
                (
                    "txn_coordinator",
                    lambda: _leader(admin, "__transaction_state", _txn_partition(coordinator_of)),
                ),
            ):
                wanted = publish_batch(f"r{run}-{fault}")
                kill_and_return(fault, node(), wanted, figures)

            # 3. A worker frozen past its session timeout while it runs the long job, with a
            #    batch of short videos queued behind it.
            long_event = upload(
                store, bucket, f"faults/r{run}-long-{uuid.uuid4().hex[:6]}.mp4", long
            )
            with Ingest(settings) as ingest:
                long_id = ingest.send(long_event)
            everything.append(long_id)
            wanted = publish_batch(f"r{run}-frozen")
            started = time.monotonic()
            deadline = started + 120
            runner = None
            while runner is None and time.monotonic() < deadline:
                drain(1)
                progress = watcher.seen.progress.get(long_id, [])
                if [p for p in progress if p.stage == "localizing"]:
                    logs = sorted(tmp_path.glob("worker-*.log"))
                    hits = [
                        i for i, p in enumerate(logs) if long_id in p.read_text(errors="replace")
                    ]
                    runner = hits[0] if hits else 0
            assert runner is not None, f"the long job never started\n{workers.logs()}"
            frozen = procs[runner]
            frozen.send_signal(signal.SIGSTOP)
            froze_at = time.monotonic()
            try:
                wait_all({long_id}, "frozen worker's long job")
            finally:
                frozen.send_signal(signal.SIGCONT)
            figures["frozen_takeover_s"] = round(time.monotonic() - froze_at, 1)
            wait_all(wanted, "frozen worker's batch")
            figures["frozen_stall_s"] = round(_stall(arrivals, froze_at, time.monotonic()), 1)
            figures["frozen_wall_s"] = round(time.monotonic() - started, 1)
            drain(SESSION_MS / 1000 + 10)  # the thawed worker notices its eviction and rejoins

            seen = watcher.seen
            lost = [v for v in everything if v not in seen.results]
            doubled = [v for v in everything if len(seen.results.get(v, [])) > 1]
            record(
                "kafka_faults",
                f"three_brokers_run_{run + 1}_of_{RUNS}",
                videos=len(everything),
                lost=len(lost),
                doubled=len(doubled),
                backwards=len(offsets.backwards),
                **figures,
            )
            print(f"kafka_faults run {run + 1}/{RUNS}:", figures, "lost", lost, "doubled", doubled)
            assert not lost, lost
            assert not doubled, {v: seen.results[v] for v in doubled}
            assert all(p.poll() is None for p in procs), f"a worker died\n{workers.logs()}"

        seen = watcher.seen
        for vid in everything:
            assert_one_outcome(seen, vid)
            (result,) = seen.results[vid]
            assert result.status == "succeeded", f"{vid}: {result.error}"
            assert result.timeline is not None
            assert store.get_bytes(result.timeline.bucket, result.timeline.key)
        assert not offsets.backwards, offsets.backwards
        print("kafka_faults wall:", round(time.monotonic() - wall_start, 1), "s")
    finally:
        offsets.close()
        workers.stop()
        watcher.close()
        admin.close()
        # kafka-python leaves sockets to the killed brokers for the collector; collect them
        # here, under this test's warning filters, not at the session's end where every
        # unraisable warning is an error.
        gc.collect()
