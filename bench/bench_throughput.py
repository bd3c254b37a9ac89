"""Throughput of real workers against a model that answers in a set time: is the model the bound?

    .venv/bin/python bench/bench_throughput.py [--videos 16] [--duration 30] [--latency 2.0]
        [--workers 2] [--jobs 1 4 16] [--concurrency 4]

Needs the local stack (``vidloc stack up``). Renders one short video once (.cache/bench/), uploads
``--videos`` copies under distinct keys, starts ``--workers`` ``vidloc worker`` processes on a
fresh consumer group for each ``--jobs`` value (``VIDLOC_WORKER_JOBS``), sends every ingest event
at once and waits for every result. The model is the in-repo fake server, every answer delayed by
``--latency`` seconds; it counts requests and the most it held at once.

Prints, per jobs-per-worker value: wall time (first ingest event sent to last result read), the
model-bound floor (requests x latency / (workers x concurrency)), their ratio, the peak number of
requests the model saw at once, the peak RSS of any worker's process tree, and where the jobs' own
time went (the workers' ``job timings`` log lines, averaged). Results are read read_committed and
checked: exactly one succeeded result per video. Issue 10's target, 16 x 30 s videos, 2 workers,
2.0 s latency: wall <= 1.5x the floor.
"""

from __future__ import annotations

import argparse
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

from bench_worker_memory import tree_rss_bytes  # noqa: E402

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")

_TIMINGS = re.compile(r"job timings: (.*?) \[")
_STAGE = re.compile(r"(\w+)=([0-9.]+)")


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


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used by ``pid``'s process tree so far, reaped children included.

    Each live process counts its own time plus that of the children it reaped (cutime/cstime),
    so the sum only grows while the tree reaps its own (decoder children, the fork server).
    """
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        stats[int(stat.parent.name)] = fields
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        mine = stats.get(current)
        if mine is not None:  # utime, stime, cutime, cstime are fields 14-17 of stat
            total += sum(int(v) for v in mine[11:15]) * _TICK_S
        stack.extend(children.get(current, []))
    return total


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
    events = [upload(store, bucket, f"v{i:03d}/{clip.name}", clip) for i in range(args.videos)]
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
    peak_rss = 0
    cpu_at: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_rss
        while not done.is_set():
            peak_rss = max([peak_rss, *(tree_rss_bytes(p.pid) for p in procs)])
            for p in procs:
                cpu_at[p.pid] = max(cpu_at.get(p.pid, 0.0), tree_cpu_s(p.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        wait_group_stable(log_dir, args.workers)
        idle_cpu = sum(tree_cpu_s(p.pid) for p in procs)
        set_faults(fake_url, [{"kind": "slow", "delay_s": args.latency, "count": 1_000_000}])
        video_ids = [e.effective_video_id for e in events]
        started = time.monotonic()
        with Ingest(settings) as ingest:
            for event in events:
                ingest.send(event)
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
        busy_cpu = sum(cpu_at.values()) - idle_cpu
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
    return {
        "jobs": jobs,
        "wall": wall,
        "floor": floor,
        "requests": requests,
        "peak": int(stats["peak_in_flight"]),
        "rss_mb": peak_rss / 1e6,
        "lost": len(lost),
        "duplicated": len(duplicated),
        "failed": len(failed),
        "stages": stage_times(log_dir),
        "cpu_per_job": busy_cpu / max(1, args.videos),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--concurrency", type=int, default=4)
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
        f"{args.latency:g} s, VIDLOC_VLM_CONCURRENCY={args.concurrency}"
    )
    print(
        "| jobs/worker | wall | model floor | wall/floor | requests | peak at model "
        "| peak worker RSS | lost | duplicated | failed |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['jobs']} | {r['wall']:.1f} s | {r['floor']:.1f} s "
            f"| {float(r['wall']) / float(r['floor']):.2f}x | {r['requests']} | {r['peak']} "
            f"| {r['rss_mb']:.0f} MB | {r['lost']} | {r['duplicated']} | {r['failed']} |"
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
            f"  jobs/worker {r['jobs']}: {cpu:.2f} CPU s per job; all {args.videos} jobs need "
            f">= {cpu * args.videos / cores:.1f} s of {cores} idle cores"
        )
    print("\nmean seconds per job and stage (the workers' 'job timings' lines):")
    for r in rows:
        stages = r["stages"]
        text = ", ".join(f"{k} {v:.2f}" for k, v in stages.items()) or "none logged"
        print(f"  jobs/worker {r['jobs']}: {text}")


if __name__ == "__main__":
    main()
