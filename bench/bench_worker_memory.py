"""Peak memory of a real ``vidloc worker`` on a 1-minute and a 30-minute 1080p video.

    .venv/bin/python bench/bench_worker_memory.py [--minutes 1 30] [--localizer vlm|cv]

Needs the local stack (``vidloc stack up``). Renders the videos once into .cache/bench/
(1920x1080, 10 fps, H.264), starts one worker process per video on a fresh consumer group,
submits the video, and samples the resident memory of the worker's whole process tree (the worker
plus any decoder child) from /proc every 100 ms until the result arrives. The vlm localizer talks
to the in-repo fake model server started here. Target: peak under 300 MB whatever the length.
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


def measure(minutes: int, localizer: str, fake_url: str) -> tuple[float, float, float, int]:
    from pipeline import Watcher, Workers

    from producers.submit import submit_files
    from vidloc.adapters.kafka import EventPublisher
    from vidloc.adapters.object_store import ObjectStore
    from vidloc.settings import load_settings

    path = render(minutes)
    settings = load_settings(vlm_base_url=fake_url)
    env = {"VIDLOC_VLM_BASE_URL": fake_url, "VIDLOC_LOCALIZER": localizer}
    logs = ROOT / ".cache" / "bench" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    workers = Workers(settings, env, logs)
    watcher = Watcher(settings)
    (proc,) = workers.start(1)
    peak = peak_pss = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, peak_pss
        while not done.is_set():
            rss, pss = tree_memory(proc.pid)
            peak, peak_pss = max(peak, rss), max(peak_pss, pss)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
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
        raise SystemExit(f"{minutes} min: no result within an hour\n{workers.logs()}")
    workers.stop()
    watcher.close()
    if result.status != "succeeded":
        raise SystemExit(f"{minutes} min: job failed: {result.error}\n{workers.logs()}")
    return peak / 1e6, peak_pss / 1e6, elapsed, result.summary.events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, nargs="+", default=[1, 30])
    parser.add_argument("--localizer", choices=["vlm", "cv"], default="vlm")
    args = parser.parse_args()

    from devkit.fake_vlm.server import serve_in_thread

    for minutes in args.minutes:  # render first, so the timings below are the worker's alone
        render(minutes)
    fake_url, stop_fake = serve_in_thread()
    rows = []
    try:
        for minutes in args.minutes:
            rows.append((minutes, *measure(minutes, args.localizer, fake_url)))
    finally:
        stop_fake()
    print(f"\nworker peak memory (process tree), localizer {args.localizer}, 1080p H.264 10 fps")
    print(f"{'video':>8} {'peak RSS':>10} {'peak PSS':>10} {'job time':>9} {'events':>7}")
    for minutes, peak_mb, pss_mb, elapsed, events in rows:
        print(f"{minutes:>5} min {peak_mb:>7.0f} MB {pss_mb:>7.0f} MB {elapsed:>8.1f}s {events:>7}")
    if len(rows) > 1:
        print(f"ratio longest/shortest peak RSS: {rows[-1][1] / rows[0][1]:.2f}x (flat = 1.0)")
    for name, column in (("RSS", 1), ("PSS", 2)):
        worst = max(float(r[column]) for r in rows)
        verdict = "met" if worst < 300 else "NOT met"
        print(f"target < 300 MB by tree {name}: {verdict} (worst {worst:.0f} MB)")


if __name__ == "__main__":
    main()
