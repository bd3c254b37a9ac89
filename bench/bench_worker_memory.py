"""Peak memory of a real ``vidloc worker`` on a 1-minute and a 30-minute (or 2-hour) 1080p video.

    .venv/bin/python bench/bench_worker_memory.py [--minutes 1 30 120] [--localizer vlm|cv]
        [--env VIDLOC_SPAN_JOBS=1 ...]

Needs the local stack (``vidloc stack up``). Renders the videos once into .cache/bench/
(1920x1080, H.264: up to 30 minutes the synthetic clips at 10 fps, longer ones ffmpeg's test
pattern at 5 fps, :func:`render_pattern`), starts one worker process per video on a fresh
consumer group, submits the video, and samples the resident memory of the worker's whole
process tree (the worker plus any decoder child) from /proc every 100 ms until the result
arrives; prints the peak in each tenth of the run and what each process held at the peak. A
video longer than VIDLOC_SPAN_S runs as spans, all on this one worker (VIDLOC_SPAN_JOBS at
once). The vlm localizer talks to the in-repo fake model server started here.
Target: peak under 300 MB whatever the length.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

PAGE = 4096


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants (children of children included), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def process_rss(pid: int) -> tuple[str, int]:
    """One process's name (its role: worker, decoder server, decoder child) and RSS in bytes."""
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return "gone", 0
    return name, rss


def tree_memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes of ``pid``'s process tree (vanished processes count 0).

    RSS adds every process's resident pages, so pages that processes share (a forked decoder
    child's with the decoder server it was forked from, libraries) count once per process; PSS
    shares each page among the processes mapping it, so the tree's PSS is the memory it holds.
    """
    rss = pss = 0
    for current in tree_pids(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            rss += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * PAGE
            for line in Path(f"/proc/{current}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
                    break
    return rss, pss


def render(minutes: int) -> Path:
    from devkit.synth.render import ensure_rendered
    from devkit.synth.spec import SyntheticEvent, VideoSpec

    duration = minutes * 60.0
    spec = VideoSpec(
        name=f"bench_worker_1080p_{minutes}min",
        duration_s=duration,
        fps=10.0,
        width=1920,
        height=1080,
        codec="h264",
        cuts=tuple(float(t) for t in range(45, int(duration), 45)),
        events=tuple(
            SyntheticEvent("red circle", t + 5.0, t + 15.0) for t in range(0, int(duration), 60)
        ),
        gop=250,
    )
    return ensure_rendered(spec, ROOT / ".cache" / "bench")


# Above this length the OpenCV-drawn render would take too long on 2 cores (about 20 min for
# 30 min at 10 fps): longer videos are a cheap ffmpeg test pattern at 5 fps instead.
SYNTH_MAX_MINUTES = 30


def render_pattern(minutes: int) -> Path:
    """``minutes`` of 1920x1080 H.264 at 5 fps from ffmpeg's ``testsrc2`` (drawn small and
    scaled up: a few MB a minute), with a red square for 10 s of every minute; cached.

    Two hours render in about 3 minutes on 2 cores (``-preset ultrafast``)."""
    import subprocess

    where = ROOT / ".cache" / "bench"
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"bench_worker_1080p_{minutes}min_pattern.mp4"
    if path.exists():
        return path
    partial = path.with_name(path.name + ".part.mp4")
    square = "drawbox=x=200:y=600:w=300:h=300:color=red:t=fill:enable='lt(mod(t,60),10)'"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi",
         "-i", f"testsrc2=size=480x270:rate=5:duration={minutes * 60}",
         "-vf", f"scale=1920:1080:flags=neighbor,{square}",
         "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", "-g", "50",
         "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(partial)],
        check=True,
    )  # fmt: skip
    partial.rename(path)
    return path


def video_for(minutes: int) -> Path:
    return render(minutes) if minutes <= SYNTH_MAX_MINUTES else render_pattern(minutes)


def measure(
    minutes: int, localizer: str, fake_url: str, extra_env: dict[str, str]
) -> tuple[float, float, float, int]:
    from pipeline import Watcher, Workers

    from producers.submit import submit_files
    from vidloc.adapters.kafka import EventPublisher
    from vidloc.adapters.object_store import ObjectStore
    from vidloc.settings import load_settings

    path = video_for(minutes)
    settings = load_settings(vlm_base_url=fake_url)
    env = {"VIDLOC_VLM_BASE_URL": fake_url, "VIDLOC_LOCALIZER": localizer, **extra_env}
    logs = ROOT / ".cache" / "bench" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    workers = Workers(settings, env, logs)
    watcher = Watcher(settings)
    (proc,) = workers.start(1)
    peak = peak_pss = 0
    done = threading.Event()
    # (seconds, tree RSS, tree PSS) every sample, and each process's RSS at the peak.
    series: list[tuple[float, int, int]] = []
    at_peak: list[tuple[str, int]] = []

    def sample() -> None:
        nonlocal peak, peak_pss, at_peak
        while not done.is_set():
            rss, pss = tree_memory(proc.pid)
            series.append((time.monotonic() - started, rss, pss))
            if rss > peak:
                at_peak = [process_rss(p) for p in tree_pids(proc.pid)]
            peak, peak_pss = max(peak, rss), max(peak_pss, pss)
            time.sleep(0.1)

    started = time.monotonic()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with EventPublisher(settings) as publisher:
        (event,) = submit_files(
            [path],
            {"localizer": localizer},
            settings,
            ObjectStore(settings),
            publisher,
            key_prefix=f"bench/{int(time.time())}",
        )
    # The final result of this worker's group: partial ones (a long video's spans still run)
    # and refusals by other groups' workers sharing the stack (another video bucket) are not.
    result = None
    while result is None and time.monotonic() - started < 3600:
        watcher.drain()
        result = next(
            (
                r
                for r in watcher.seen.results.get(event.effective_video_id, [])
                if not r.partial and (r.error is None or r.error.code != "bucket_not_allowed")
            ),
            None,
        )
    elapsed = time.monotonic() - started
    done.set()
    sampler.join()
    if result is None:
        print_series(minutes, series, at_peak)
        workers.stop()
        raise SystemExit(f"{minutes} min: no result within an hour\n{workers.logs()}")
    workers.stop()
    watcher.close()
    if result.status != "succeeded":
        raise SystemExit(f"{minutes} min: job failed: {result.error}\n{workers.logs()}")
    print(f"\n{minutes} min, {' '.join(f'{k}={v}' for k, v in extra_env.items()) or 'defaults'}")
    print_series(minutes, series, at_peak)
    return peak / 1e6, peak_pss / 1e6, elapsed, result.summary.events


def print_series(
    minutes: int, series: list[tuple[float, int, int]], at_peak: list[tuple[str, int]]
) -> None:
    """The tree's peak RSS / PSS in each tenth of the run (flat when nothing grows with the
    length), and what each process held at the peak."""
    if not series:
        return
    end = series[-1][0] or 1.0
    print(f"\n{minutes} min: peak tree RSS / PSS (MB) per tenth of the run ({end:.0f} s)")
    for tenth in range(10):
        window = [r for r in series if tenth * end / 10 <= r[0] <= (tenth + 1) * end / 10]
        if window:
            rss = max(r[1] for r in window) / 1e6
            pss = max(r[2] for r in window) / 1e6
            since, until = tenth * end / 10, (tenth + 1) * end / 10
            print(f"  {since:6.0f}-{until:6.0f} s  {rss:5.0f} / {pss:5.0f}")
    print("  at the peak: " + ", ".join(f"{name} {rss / 1e6:.0f}" for name, rss in at_peak))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, nargs="+", default=[1, 30])
    parser.add_argument("--localizer", choices=["vlm", "cv"], default="vlm")
    parser.add_argument(
        "--env", nargs="*", default=[], help="NAME=VALUE for the worker (VIDLOC_SPAN_JOBS=1)"
    )
    parser.add_argument(
        "--span-jobs",
        type=int,
        nargs="+",
        default=[0],
        help="VIDLOC_SPAN_JOBS values to measure each video with (0: the worker's default)",
    )
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.env)

    from devkit.fake_vlm.server import serve_in_thread

    for minutes in args.minutes:  # render first, so the timings below are the worker's alone
        video_for(minutes)
    fake_url, stop_fake = serve_in_thread()
    env_text = " ".join(args.env) or "default settings"
    rows = []
    try:
        for minutes in args.minutes:
            for jobs in args.span_jobs:
                env = {**extra_env, **({"VIDLOC_SPAN_JOBS": str(jobs)} if jobs else {})}
                rows.append((minutes, *measure(minutes, args.localizer, fake_url, env), jobs))
    finally:
        stop_fake()
    print(
        f"\nworker peak memory (process tree), localizer {args.localizer}, 1080p H.264; {env_text}"
    )
    head = ("video", "span jobs", "peak RSS", "peak PSS", "job time", "events")
    print("{:>8} {:>9} {:>10} {:>10} {:>9} {:>7}".format(*head))
    for minutes, peak_mb, pss_mb, elapsed, events, jobs in rows:
        print(
            f"{minutes:>5} min {jobs or 'default':>9} {peak_mb:>7.0f} MB {pss_mb:>7.0f} MB "
            f"{elapsed:>8.1f}s {events:>7}"
        )
    if len(rows) > 1:
        print(f"ratio longest/shortest peak RSS: {rows[-1][1] / rows[0][1]:.2f}x (flat = 1.0)")
    for name, column in (("RSS", 1), ("PSS", 2)):
        worst = max(float(r[column]) for r in rows)
        verdict = "met" if worst < 300 else "NOT met"
        print(f"target < 300 MB by tree {name}: {verdict} (worst {worst:.0f} MB)")


if __name__ == "__main__":
    main()
