"""A second analysis of an analysed video: what it costs against the first (issue 24).

    .venv/bin/python bench/bench_reask.py [--videos 1080p-10min 360p-60min] [--timeout-s 1800]

Needs the local stack (``vidloc stack up``). Renders once (.cache/bench/, shared with
bench_sampling.py and bench_long_video.py) a 10-minute 1920x1080 25 fps H.264 video and a
60-minute 640x360 10 fps one. For each, on one fresh ``vidloc worker`` with default sampling
(1 fps, 448 px long side, refinement on, spans of VIDLOC_SPAN_S) and the in-repo fake model
answering at once:

1. the first analysis (a ``vidloc.ingest.v1`` event), from sent to its final result;
2. a second analysis of the same object version (``vidloc.ingest.v2``: ``analysis.id`` derived
   from the event id, another prompt and labels), likewise.

Printed per video, each a ratio measured in this one run: wall time second / first (target
<= 0.25), frames decoded by the second (the worker's ``vidloc_frames_decoded_total``, target
0), worker CPU seconds second / first (the worker's process tree from /proc: utime + stime of
the live processes plus the reaped children's, target <= 0.15), the share of the second's
prompt tokens that repeat a prefix the model server had already seen (the fake's prefix cache:
``cached_tokens`` / ``prompt_tokens``, target >= 0.9), and the frame cache's bytes per
video-minute (the objects under ``vidloc.names.frame_cache_prefix``).

The fake runs in this process: its CPU is not the worker's. Its prefix cache holds
``--prefix-cache-blocks`` 16-token blocks (default about an H200's KV cache for an 8B model).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_worker_memory import tree_pids  # noqa: E402

CACHE = ROOT / ".cache" / "bench"
TICK = os.sysconf("SC_CLK_TCK")
SECOND_PROMPT = "When does anyone stand up?"
SECOND_LABELS = ["red circle", "blue triangle"]


def render(name: str) -> tuple[Path, float]:
    """The video's path and duration, rendered once into .cache/bench/."""
    if name == "1080p-10min":
        from bench_sampling import BENCH_FILE
        from bench_sampling import render as render_1080p

        render_1080p(CACHE)
        return CACHE / BENCH_FILE, 600.0
    if name == "360p-60min":
        from bench_long_video import render as render_long

        long_path, _, spec = render_long(3600.0, 640, 360, 10.0)
        return long_path, float(spec.duration_s)
    if name == "clip":  # the test suite's short clip: a quick check of the bench itself
        from devkit.synth.catalogue import spec_named
        from devkit.synth.render import ensure_rendered

        spec = spec_named("h264_mp4")
        return ensure_rendered(spec, ROOT / ".cache" / "test-media"), float(spec.duration_s)
    raise SystemExit(f"unknown video {name!r}")


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of ``pid``'s process tree so far: each live process's user + system time and
    what its reaped children used (a decoder child that exited is counted by its parent)."""
    ticks = 0
    for current in tree_pids(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            # After the command: state(0) ppid ... utime(11) stime(12) cutime(13) cstime(14)
            ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / TICK


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Measure:
    wall_s: float
    cpu_s: float
    decoded: float
    prompt_tokens: int
    cached_tokens: int
    requests: int
    status: str
    warnings: list[str]


class Rig:
    """One worker on a bucket of its own, its /metrics on a port, and the fake model's stats."""

    def __init__(self, fake: str, log_root: Path, env: dict[str, str]) -> None:
        from reliability import WorkerGroup

        from vidloc.settings import load_settings

        self.fake = fake
        self.port = free_port()
        self.group = WorkerGroup(
            load_settings(),
            fake,
            log_root,
            "bench-reask",
            VIDLOC_METRICS_PORT=str(self.port),
            VIDLOC_LOCALIZER="vlm",
            **env,
        )

    def start(self) -> int:
        from reliability import wait_group_stable

        (proc,) = self.group.workers.start(1)
        wait_group_stable(self.group.log_dir, 1)
        return proc.pid

    def metric(self, name: str) -> float:
        import httpx

        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10).text
        return sum(
            float(line.rpartition(" ")[2])
            for line in text.splitlines()
            if re.match(rf"{name}(\{{| )", line)
        )

    def measure(self, event: Any, pid: int, timeout_s: float) -> Measure:
        from reliability import Ingest, fake_stats

        before = fake_stats(self.fake)
        decoded, cpu = self.metric("vidloc_frames_decoded_total"), tree_cpu_s(pid)
        started = time.monotonic()
        with Ingest(self.group.settings) as ingest:
            ingest.send(event)
        result = self._final(event, started + timeout_s)
        wall = time.monotonic() - started
        cpu = tree_cpu_s(pid) - cpu
        decoded = self.metric("vidloc_frames_decoded_total") - decoded
        after = fake_stats(self.fake)
        warnings: list[str] = []
        if result is not None and result.status == "succeeded":
            timeline = self._timeline(event)
            warnings = [w.code for w in timeline.warnings] if timeline is not None else []
        return Measure(
            wall_s=wall,
            cpu_s=cpu,
            decoded=decoded,
            prompt_tokens=int(after["prompt_tokens"]) - int(before["prompt_tokens"]),
            cached_tokens=int(after["cached_tokens"]) - int(before["cached_tokens"]),
            requests=int(after["requests"]) - int(before["requests"]),
            status="timed out" if result is None else _status(result),
            warnings=warnings,
        )

    def _final(self, event: Any, deadline: float) -> Any:
        while time.monotonic() < deadline:
            self.group.watcher.drain(0.2)
            for result in self.group.watcher.seen.results.get(event.effective_video_id, []):
                # Other groups' workers on a shared stack refuse our bucket: not ours.
                theirs = result.error is not None and result.error.code == "bucket_not_allowed"
                if result.job_id == event.job_id and not result.partial and not theirs:
                    return result
        return None

    def _timeline(self, event: Any) -> Any:
        from contracts import decode_timeline
        from vidloc import names
        from vidloc.tenancy import tenant_of_key

        tenant = tenant_of_key(event.source.key)
        video_id = event.effective_video_id
        key = (
            names.timeline_key(video_id, tenant)
            if event.analysis is None
            else names.analysis_timeline_key(video_id, event.analysis.id, tenant)
        )
        with contextlib.suppress(Exception):
            return decode_timeline(
                self.group.store.get_bytes(self.group.settings.timeline_bucket, key)
            )
        return None

    def frame_cache_bytes(self, event: Any) -> int:
        from vidloc import names
        from vidloc.tenancy import tenant_of_key

        prefix = names.frame_cache_prefix(
            event.effective_video_id, event.version_tag, tenant_of_key(event.source.key)
        )
        bucket = self.group.settings.timeline_bucket
        return sum(info.size for info in self.group.store.list_objects(bucket, prefix))

    def close(self) -> None:
        self.group.close()


def _status(result: Any) -> str:
    error = result.error
    return (
        str(result.status) if error is None else f"{result.status} ({error.code}: {error.message})"
    )


def second_analysis(first: Any) -> Any:
    """A v2 event asking a new question of ``first``'s video and object version."""
    from contracts import INGEST_V2, AnalysisRequest, IngestEvent, derive_analysis_id

    event_id = f"bench-reask-{uuid.uuid4().hex}"
    # "schema" is the field's alias, the one name its constructor takes (BaseModel owns schema).
    return IngestEvent(
        **{"schema": INGEST_V2},
        event_id=event_id,
        video_id=first.effective_video_id,
        source=first.source,
        options=first.options.model_copy(update={"prompt": SECOND_PROMPT, "labels": SECOND_LABELS}),
        analysis=AnalysisRequest(id=derive_analysis_id(event_id)),
        submitted_at=first.submitted_at,
    )


def run_video(name: str, fake: str, timeout_s: float, env: dict[str, str]) -> dict[str, Any]:
    path, duration_s = render(name)
    with tempfile.TemporaryDirectory(prefix="bench-reask-") as tmp:
        rig = Rig(fake, Path(tmp), env)
        try:
            pid = rig.start()
            first = rig.group.upload(path)
            one = rig.measure(first, pid, timeout_s)
            print(f"{name}: first analysis {one}", flush=True)
            second = second_analysis(first)
            two = rig.measure(second, pid, timeout_s)
            print(f"{name}: second analysis {two}", flush=True)
            cache_bytes = rig.frame_cache_bytes(first)
        finally:
            rig.close()
    return {
        "video": name,
        "minutes": duration_s / 60.0,
        "first": one,
        "second": two,
        "cache_bytes": cache_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--videos",
        nargs="+",
        default=["1080p-10min", "360p-60min"],
        choices=["1080p-10min", "360p-60min", "clip"],
    )
    parser.add_argument("--timeout-s", type=float, default=1800.0)
    parser.add_argument("--prefix-cache-blocks", type=int, default=None)
    parser.add_argument(
        "--span-s",
        type=float,
        default=None,
        help="VIDLOC_SPAN_S for the worker (default: the worker's, 300; 0: no spans)",
    )
    args = parser.parse_args()
    env = {} if args.span_s is None else {"VIDLOC_SPAN_S": f"{args.span_s:g}"}

    from devkit.fake_vlm.prefix import DEFAULT_CAPACITY_BLOCKS
    from devkit.fake_vlm.server import FakeConfig, serve_in_thread

    blocks = args.prefix_cache_blocks or DEFAULT_CAPACITY_BLOCKS
    rows = []
    for name in args.videos:
        # A fresh fake per video: its prefix cache starts empty, as a server new to the video.
        url, stop = serve_in_thread(config=FakeConfig(prefix_cache_blocks=blocks))
        try:
            rows.append(run_video(name, url, args.timeout_s, env))
        finally:
            stop()
    print(
        f"\nfake model at 0 s latency, prefix cache of {blocks} blocks of 16 tokens; one worker, "
        f"default sampling, VIDLOC_SPAN_S={env.get('VIDLOC_SPAN_S', 'default')}; "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    print(
        "| video | first: wall / worker CPU | second: wall / worker CPU | wall 2nd/1st "
        "| frames decoded by 2nd | CPU 2nd/1st | 2nd prompt tokens from a seen prefix "
        "| frame cache per video-minute | statuses, 2nd warnings |"
    )
    print("| --- " * 9 + "|")
    for r in rows:
        one, two = r["first"], r["second"]
        share = two.cached_tokens / two.prompt_tokens if two.prompt_tokens else float("nan")
        print(
            f"| {r['video']} | {one.wall_s:.1f} s / {one.cpu_s:.1f} s "
            f"| {two.wall_s:.1f} s / {two.cpu_s:.1f} s | {two.wall_s / one.wall_s:.3f} "
            f"| {two.decoded:.0f} | {two.cpu_s / one.cpu_s if one.cpu_s else float('nan'):.3f} "
            f"| {share:.3f} ({two.cached_tokens}/{two.prompt_tokens}, {two.requests} requests) "
            f"| {r['cache_bytes'] / r['minutes'] / 1e6:.2f} MB "
            f"| {one.status}, {two.status}; {','.join(two.warnings) or 'none'} |"
        )
    for r in rows:
        one, two = r["first"], r["second"]
        share = two.cached_tokens / two.prompt_tokens if two.prompt_tokens else float("nan")
        print(
            f"{r['video']}: wall 2nd/1st {two.wall_s / one.wall_s:.3f} (target <= 0.25); "
            f"decoded by 2nd {two.decoded:.0f} (target 0); CPU 2nd/1st "
            f"{two.cpu_s / one.cpu_s if one.cpu_s else float('nan'):.3f} (target <= 0.15); "
            f"cached share {share:.3f} (target >= 0.9); frame cache "
            f"{r['cache_bytes'] / r['minutes'] / 1e6:.2f} MB per video-minute"
        )


if __name__ == "__main__":
    main()
