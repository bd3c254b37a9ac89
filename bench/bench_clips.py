"""Clip benchmark: request to first byte of a 60 s event's clip, stream copy vs re-encode.

    .venv/bin/python bench/bench_clips.py [--video PATH] [--at 900] [--length 60]

Needs the local stack (S3). Uploads ``--video`` (default: bench_worker_memory's 1080p file in
.cache/bench/) to fresh buckets, stores a timeline with two ``--length`` s events near ``--at``:
one starting on a keyframe (cut by stream copy) and one starting half a GOP later (re-encoded),
serves the real API app, and for each prints: the time from the clip request to its 302 (the
cut, the first time), the time from the redirect to the first byte of the MP4, the clip's size,
and the same for a second request (cached). One run; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import av
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contracts import decode_timeline, encode  # noqa: E402
from devkit.serve_api import serve_in_thread  # noqa: E402
from vidloc import names  # noqa: E402
from vidloc.adapters.object_store import ObjectStore  # noqa: E402
from vidloc.api.app import create_app  # noqa: E402
from vidloc.settings import load_settings  # noqa: E402

DEFAULT_VIDEO = ROOT / ".cache" / "bench" / "bench_worker_1080p_30min.mp4"


def keyframes_near(video: Path, at: float) -> tuple[float, float, float, str]:
    """(a keyframe at or after ``at``, the next one, duration, 'WxH fps codec')."""
    with av.open(str(video)) as src:
        vs = src.streams.video[0]
        tb = vs.time_base
        assert tb is not None
        src.seek(int(at / tb), stream=vs, backward=True)
        found = []
        for packet in src.demux(vs):
            if packet.is_keyframe and packet.pts is not None and packet.pts * tb >= at:
                found.append(float(packet.pts * tb))
                if len(found) == 2:
                    break
        duration = float(src.duration or 0) / 1e6
        ctx = vs.codec_context
        fps = float(vs.average_rate or 0)
        info = f"{ctx.width}x{ctx.height} {fps:g} fps {ctx.name}"
    return found[0], found[1], duration, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--at", type=float, default=900.0)
    parser.add_argument("--length", type=float, default=60.0)
    args = parser.parse_args()
    if not args.video.exists():
        sys.exit(f"{args.video} is missing: run bench/bench_worker_memory.py once, or pass --video")
    first_key, next_key, duration, info = keyframes_near(args.video, args.at)
    between = first_key + (next_key - first_key) / 2
    print(
        f"{args.video.name}: {duration / 60:.1f} min, {info}; "
        f"keyframes at {first_key:g} s and {next_key:g} s"
    )

    suffix = uuid.uuid4().hex[:8]
    settings = load_settings().model_copy(
        update={
            "video_bucket": f"bench-clips-v-{suffix}",
            "timeline_bucket": f"bench-clips-t-{suffix}",
            "search_index_path": Path(f"/tmp/bench-clips-{suffix}.sqlite"),
        }
    )
    store = ObjectStore(settings)
    store.ensure_bucket(settings.video_bucket)
    store.ensure_bucket(settings.timeline_bucket)
    started = time.perf_counter()
    uploaded = store.upload_file(settings.video_bucket, "uploads/bench.mp4", args.video)
    print(f"uploaded {uploaded.size / 1e6:.0f} MB in {time.perf_counter() - started:.1f} s")
    events = [("copy", first_key), ("reencode", between)]
    doc = {
        "schema": "vidloc.timeline.v1", "video_id": "bench", "job_id": "job-bench",
        "source": {"bucket": settings.video_bucket, "key": "uploads/bench.mp4",
                   "etag": uploaded.etag, "size": uploaded.size},
        "video": {"duration_s": duration, "fps": 25, "width": 1920, "height": 1080,
                  "codec": "h264"},
        "localizer": "cv", "sampling": {"sample_fps": 1, "chunk_s": 30, "frames": 1, "chunks": 1},
        "events": [
            {"id": name, "label": name, "start_s": start, "end_s": start + args.length}
            for name, start in events
        ],
        "created_at": datetime.now(UTC).isoformat(),
    }  # fmt: skip
    store.put_bytes(
        settings.timeline_bucket, names.timeline_key("bench"), encode(decode_timeline(doc))
    )
    base_url, stop = serve_in_thread(create_app(settings, follow_bus=False))
    try:
        with httpx.Client(base_url=base_url, timeout=900.0) as api:
            print(
                f"\n{'event':<9} {'request':<7} {'to 302':>8} {'302 to 1st byte':>16} "
                f"{'total':>8} {'mode':>9} {'size':>8}"
            )
            for name, _ in events:
                for attempt in ("first", "cached"):
                    t0 = time.perf_counter()
                    answer = api.get(f"/videos/bench/events/{name}/clip")
                    t1 = time.perf_counter()
                    assert answer.status_code == 302, answer.text
                    with httpx.stream("GET", answer.headers["location"], timeout=60.0) as body:
                        chunks = body.iter_bytes()
                        next(chunks)
                        t2 = time.perf_counter()
                        size = int(body.headers.get("content-length", 0))
                    print(
                        f"{name:<9} {attempt:<7} {t1 - t0:7.2f}s {t2 - t1:15.3f}s {t2 - t0:7.2f}s "
                        f"{answer.headers['x-vidloc-clip-mode']:>9} {size / 1e6:6.1f}MB"
                    )
    finally:
        stop()


if __name__ == "__main__":
    main()
