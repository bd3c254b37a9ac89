"""Throughput of real workers against a model that answers in a set time: is the model the bound?

    .venv/bin/python bench/bench_throughput.py [--videos 16] [--duration 30] [--latency 2.0]
        [--workers 2] [--jobs 1 4 16] [--concurrency 4] [--keys random|balanced]

Needs the local stack (``vidloc stack up``). Renders one short video once (.cache/bench/), uploads
``--videos`` copies under distinct keys, starts ``--workers`` ``vidloc worker`` processes on a
fresh consumer group for each ``--jobs`` value (``VIDLOC_WORKER_JOBS``), sends every ingest event
at once and waits for every result. The model is the in-repo fake server, every answer delayed by
``--latency`` seconds; it counts requests and the most it held at once.

Prints, per jobs-per-worker value: wall time (first ingest event sent to last result read), the
model-bound floor (requests x latency / (workers x concurrency)), their ratio, how the videos
split between the workers (ingest is keyed by video id, so the split is chance; ``--keys
balanced`` picks keys that split evenly) and the floor for that split (each worker's requests
over its own slots), the peak number of requests the model saw at once, the peak RSS and PSS of
the worker process trees (RSS counts pages a forked decoder child shares with the decoder server
once per process; PSS shares them out), the CPU per job, and where the jobs' own time went (the
workers' ``job timings`` log lines, averaged). Results are read read_committed and
checked: exactly one succeeded result per video. Issue 10's target, 16 x 30 s videos, 2 workers,
2.0 s latency: wall <= 1.5x the floor.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import re
import statistics
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_worker_memory import tree_memory, tree_pids  # noqa: E402

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")

_TIMINGS = re.compile(r"job timings: (.*?) \[")
_STAGE = re.compile(r"(\w+)=([0-9.]+)")
_STOPPED = re.compile(r"worker stopped after (\d+) jobs")


def render(duration_s: float) -> Path:
    from devkit.synth.render import ensure_rendered
    from devkit.synth.spec import SyntheticEvent, VideoSpec

    spec = VideoSpec(
        name=f"bench_throughput_{int(duration_s)}s",
        duration_s=duration_s,
        fps=10.0,
        width=320,
        height=180,
        codec="h264",
        cuts=(duration_s / 2,),
        events=(SyntheticEvent("red circle", 5.0, 10.0),),
        gop=50,
    )
    return ensure_rendered(spec, ROOT / ".cache" / "bench")


def tree_cpu_split(pid: int) -> tuple[float, float]:
    """CPU seconds of ``pid`` itself (its threads) and of everything below it (decoders).

    Each live process counts its own time plus that of the children it reaped (cutime/cstime),
    so the sums only grow while the tree reaps its own (decoder children, the decoder server).
    """
    own = below = 0.0
    for current in tree_pids(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if current == pid:  # utime stime are fields 14-15; cutime cstime 16-17
            own += (int(fields[11]) + int(fields[12])) * _TICK_S
            below += (int(fields[13]) + int(fields[14])) * _TICK_S
        else:
            below += sum(int(v) for v in fields[11:15]) * _TICK_S
    return own, below


def jobs_per_worker(log_dir: Path) -> list[int]:
    """How many jobs each worker ran (its 'worker stopped after N jobs' line)."""
    counts = []
    for path in sorted(log_dir.glob("worker-*.log")):
        found = _STOPPED.findall(path.read_text(errors="replace"))
        counts.append(int(found[-1]) if found else 0)
    return counts


def balanced_keys(videos: int, name: str, bucket: str, etag: str, partitions: int) -> list[str]:
    """Object keys whose video ids fall evenly on the ingest partitions (Kafka's own hash).

    Ingest events are keyed by video id, so which worker gets a video is chance: 16 random keys
    split 8/8 between two workers about one time in five. These keys split evenly: the case the
    model-bound floor (requests x latency / all slots) describes.
    """
    from contracts.ingest import derive_video_id
    from vidloc.adapters.kafka import partition_for_key

    per_partition = -(-videos // partitions)
    taken: dict[int, int] = defaultdict(int)
    keys: list[str] = []
    candidate = 0
    while len(keys) < videos:
        key = f"v{candidate:04d}/{name}"
        candidate += 1
        partition = partition_for_key(derive_video_id(bucket, key, etag), partitions)
        if taken[partition] < per_partition:
            taken[partition] += 1
            keys.append(key)
    return keys


def stage_times(log_dir: Path) -> dict[str, float]:
    """Mean seconds per stage over every job the workers logged timings for."""
    stages: dict[str, list[float]] = defaultdict(list)
    for path in log_dir.glob("worker-*.log"):
        for match in _TIMINGS.finditer(path.read_text(errors="replace")):
            for name, value in _STAGE.findall(match.group(1)):
                stages[name].append(float(value))
    return {name: statistics.fmean(values) for name, values in sorted(stages.items())}


def run_once(args: argparse.Namespace, jobs: int, clip: Path, fake_url: str) -> dict[str, Any]:
    from pipeline import Watcher, Workers
    from reliability import Ingest, fake_stats, set_faults, upload, wait_group_stable

    from vidloc.adapters.object_store import ObjectStore
    from vidloc.settings import load_settings

    bucket = f"bench-tput-{uuid.uuid4().hex[:8]}"
    settings = load_settings(vlm_base_url=fake_url, video_bucket=bucket)
    store = ObjectStore(settings)
    store.ensure_bucket(bucket)
    keys = [f"v{i:03d}/{clip.name}" for i in range(args.videos)]
    if args.keys == "balanced":
        etag = hashlib.md5(clip.read_bytes()).hexdigest()  # a single-part upload's ETag
        keys = balanced_keys(args.videos, clip.name, bucket, etag, settings.ingest_partitions)
    events = [upload(store, bucket, key, clip) for key in keys]
    log_dir = ROOT / ".cache" / "bench" / f"throughput-logs-{jobs}-{uuid.uuid4().hex[:6]}"
    log_dir.mkdir(parents=True)
    env = {
        "VIDLOC_VIDEO_BUCKET": bucket,
        "VIDLOC_VLM_BASE_URL": fake_url,
        "VIDLOC_VLM_API_KEY": "bench-key",
        "VIDLOC_LOCALIZER": "vlm",
        "VIDLOC_SAMPLE_FPS": "1",
        "VIDLOC_CHUNK_S": str(args.duration),
        "VIDLOC_VLM_CONCURRENCY": str(args.concurrency),
        "VIDLOC_WORKER_JOBS": str(jobs),
        "VIDLOC_METRICS_PORT": "0",
        "VIDLOC_LOG_LEVEL": "INFO",
    }
    workers = Workers(settings, env, log_dir)
    watcher = Watcher(settings)
    procs = workers.start(args.workers)
    peak_rss = peak_pss = 0
    cpu_at: dict[int, tuple[float, float]] = {}
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_rss, peak_pss
        while not done.is_set():
            for p in procs:
                rss, pss = tree_memory(p.pid)
                peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
                own, below = tree_cpu_split(p.pid)
                was = cpu_at.get(p.pid, (0.0, 0.0))
                cpu_at[p.pid] = (max(was[0], own), max(was[1], below))
            time.sleep(0.25)  # every /proc walk costs the cores being measured

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        wait_group_stable(log_dir, args.workers)
        idle = [tree_cpu_split(p.pid) for p in procs]
        set_faults(fake_url, [{"kind": "slow", "delay_s": args.latency, "count": 1_000_000}])
        video_ids = [e.effective_video_id for e in events]
        started = time.monotonic()
        with Ingest(settings) as ingest:
            ingest.send_at_once(events)
        last = started
        wanted = set(video_ids)
        deadline = started + 600
        own: dict[str, list[str]] = defaultdict(list)
        while time.monotonic() < deadline and not wanted <= set(own):
            watcher.drain(0.2)
            for video_id in wanted:
                statuses = [
                    r.status
                    for r in watcher.seen.results.get(video_id, [])
                    # other groups' workers on a shared stack refuse our bucket; not ours
                    if r.error is None or r.error.code != "bucket_not_allowed"
                ]
                if statuses and video_id not in own:
                    last = time.monotonic()
                own[video_id] = statuses
                if not statuses:
                    own.pop(video_id)
        wall = last - started
        settle = time.monotonic() + 3.0
        while time.monotonic() < settle:
            watcher.drain(0.5)
        counts = {
            v: [
                r.status
                for r in watcher.seen.results.get(v, [])
                if r.error is None or r.error.code != "bucket_not_allowed"
            ]
            for v in video_ids
        }
        stats = fake_stats(fake_url)
        busy_own = sum(c[0] for c in cpu_at.values()) - sum(c[0] for c in idle)
        busy_below = sum(c[1] for c in cpu_at.values()) - sum(c[1] for c in idle)
    finally:
        done.set()
        sampler.join()
        workers.stop()
        watcher.close()
    lost = [v for v, s in counts.items() if not s]
    duplicated = [v for v, s in counts.items() if len(s) > 1]
    failed = [v for v, s in counts.items() if s and s != ["succeeded"]]
    requests = int(stats["requests"])
    floor = requests * args.latency / (args.workers * args.concurrency)
    split = jobs_per_worker(log_dir)
    # The floor for the split the partitions gave: each worker's requests over its own slots.
    per_job = requests / max(1, args.videos)
    split_floor = max(
        (math.ceil(n * per_job / args.concurrency) * args.latency for n in split), default=0.0
    )
    return {
        "jobs": jobs,
        "wall": wall,
        "floor": floor,
        "requests": requests,
        "peak": int(stats["peak_in_flight"]),
        "rss_mb": peak_rss / 1e6,
        "pss_mb": peak_pss / 1e6,
        "split": split,
        "split_floor": split_floor,
        "lost": len(lost),
        "duplicated": len(duplicated),
        "failed": len(failed),
        "stages": stage_times(log_dir),
        "cpu_per_job": (busy_own + busy_below) / max(1, args.videos),
        "cpu_worker_per_job": busy_own / max(1, args.videos),
        "cpu_decoders_per_job": busy_below / max(1, args.videos),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--keys",
        choices=["random", "balanced"],
        default="random",
        help="object keys as they come, or chosen so the videos split evenly on the partitions",
    )
    args = parser.parse_args()

    from devkit.fake_vlm.server import serve_in_thread

    clip = render(args.duration)  # before any timing
    fake_url, stop_fake = serve_in_thread()
    rows = []
    try:
        for jobs in args.jobs:  # set_faults resets the fake's counters for each run
            rows.append(run_once(args, jobs, clip, fake_url))
    finally:
        stop_fake()
    print(
        f"\n{args.videos} x {args.duration:g} s videos, {args.workers} workers, model latency "
        f"{args.latency:g} s, VIDLOC_VLM_CONCURRENCY={args.concurrency}, {args.keys} keys"
    )
    print(
        "| jobs/worker | wall | model floor | wall/floor | jobs per worker | floor for that split "
        "| requests | peak at model | peak worker tree RSS / PSS | lost | duplicated | failed |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['jobs']} | {r['wall']:.1f} s | {r['floor']:.1f} s "
            f"| {float(r['wall']) / float(r['floor']):.2f}x "
            f"| {'/'.join(str(n) for n in r['split'])} | {r['split_floor']:.1f} s "
            f"| {r['requests']} | {r['peak']} "
            f"| {r['rss_mb']:.0f} / {r['pss_mb']:.0f} MB | {r['lost']} | {r['duplicated']} "
            f"| {r['failed']} |"
        )
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    print(
        f"\nworker CPU per job (process trees, decoder children included), {cores} cores, "
        f"load average {load:.1f}:"
    )
    for r in rows:
        cpu = float(r["cpu_per_job"])
        print(
            f"  jobs/worker {r['jobs']}: {cpu:.2f} CPU s per job (worker process "
            f"{r['cpu_worker_per_job']:.2f}, decoder server and children "
            f"{r['cpu_decoders_per_job']:.2f}); all {args.videos} jobs need "
            f">= {cpu * args.videos / cores:.1f} s of {cores} idle cores"
        )
    print("\nmean seconds per job and stage (the workers' 'job timings' lines):")
    for r in rows:
        stages = r["stages"]
        text = ", ".join(f"{k} {v:.2f}" for k, v in stages.items()) or "none logged"
        print(f"  jobs/worker {r['jobs']}: {text}")


if __name__ == "__main__":
    main()
