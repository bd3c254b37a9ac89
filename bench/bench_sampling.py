"""Frame sampling benchmark: our samplers against the full-decode floor, time and peak RSS.

    .venv/bin/python bench/bench_sampling.py            # generates the file once, then measures

Generates (once, cached in .cache/bench/) a 10-minute 1080p H.264 file with GOP 250, then runs
each contender in its own subprocess and reads its peak RSS from ``os.wait4``'s rusage (which
includes the grandchild decord decodes in):

* decord sampler, 1 fps to 448x256, 1 thread
* PyAV sequential sampler, 1 fps to 448x256, 1 and 2 threads
* the floor: ``ffmpeg -threads N -i f -f null -`` (decode every frame, no scaling), 1 and 2 threads

Target: a sampler within 1.15x of the floor at the same thread count, peak RSS under 300 MB.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidloc.synth.render import ensure_rendered  # noqa: E402
from vidloc.synth.spec import SyntheticEvent, VideoSpec  # noqa: E402

SIZE = (448, 256)
SAMPLE_FPS = 1.0

BENCH_SPEC = VideoSpec(
    name="bench_1080p_10min",
    duration_s=600.0,
    fps=25.0,
    width=1920,
    height=1080,
    codec="h264",
    cuts=tuple(float(t) for t in range(60, 600, 60)),
    events=(
        SyntheticEvent("red circle", 30.0, 45.0),
        SyntheticEvent("green square", 200.0, 260.0),
        SyntheticEvent("blue triangle", 410.0, 420.0),
    ),
    gop=250,
)


def sample(source_name: str, threads: int, path: str) -> None:
    """Child mode: run one sampler over the whole file and print how many frames it gave."""
    from workers.frames.decord_source import DecordSource
    from workers.frames.plan import plan_sample_times
    from workers.frames.pyav_source import PyAVSource
    from workers.types import FrameSource

    source: FrameSource = (
        DecordSource(threads=threads) if source_name == "decord" else PyAVSource(threads=threads)
    )
    info = source.probe(path)
    times = plan_sample_times(info.duration_s, SAMPLE_FPS)
    count = sum(1 for _ in source.frames(path, times, SIZE))
    print(f"{count} frames", flush=True)


def measure(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd``; return wall seconds, peak RSS in MB (ru_maxrss is KiB on Linux), stdout."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    out = proc.stdout.read().decode().strip()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed with {proc.returncode}")
    return elapsed, usage.ru_maxrss / 1024, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "bench")
    parser.add_argument("--sample", choices=("decord", "pyav"), help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sample:
        sample(args.sample, args.threads, args.path)
        return

    started = time.perf_counter()
    path = ensure_rendered(BENCH_SPEC, args.cache)
    print(
        f"input: {path} ({path.stat().st_size / 1e6:.0f} MB, ready in "
        f"{time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    me = [sys.executable, str(Path(__file__).resolve())]
    runs = {
        ("decord", 1): [*me, "--sample", "decord", "--threads", "1", "--path", str(path)],
        ("pyav", 1): [*me, "--sample", "pyav", "--threads", "1", "--path", str(path)],
        ("pyav", 2): [*me, "--sample", "pyav", "--threads", "2", "--path", str(path)],
        ("ffmpeg", 1): [
            "ffmpeg",
            "-v",
            "error",
            "-threads",
            "1",
            "-i",
            str(path),
            "-f",
            "null",
            "-",
        ],
        ("ffmpeg", 2): [
            "ffmpeg",
            "-v",
            "error",
            "-threads",
            "2",
            "-i",
            str(path),
            "-f",
            "null",
            "-",
        ],
    }
    results: dict[tuple[str, int], tuple[float, float]] = {}
    for (name, threads), cmd in runs.items():
        elapsed, rss_mb, out = measure(cmd)
        results[name, threads] = (elapsed, rss_mb)
        print(
            f"{name:7s} threads={threads}  {elapsed:7.1f} s  peak RSS {rss_mb:6.0f} MB  {out}",
            flush=True,
        )
    print("ratios to the full-decode floor at the same thread count (target <= 1.15):")
    for (name, threads), (elapsed, rss_mb) in results.items():
        if name == "ffmpeg":
            continue
        floor = results["ffmpeg", threads][0]
        verdict = "ok" if elapsed <= 1.15 * floor and rss_mb < 300 else "MISSES TARGET"
        print(
            f"  {name:7s} threads={threads}  {elapsed / floor:5.2f}x  {rss_mb:5.0f} MB  {verdict}"
        )


if __name__ == "__main__":
    main()
