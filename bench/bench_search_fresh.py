"""Search freshness: from a result event on ``video.results`` to its events found by /search.

    .venv/bin/python bench/bench_search_fresh.py [--rounds 20]

Needs the local stack. Serves the real API app (its status feed follows the real topics) over
fresh buckets; each round stores a timeline with a word of its own, publishes its succeeded
result and polls ``GET /search`` every 20 ms until the word is found. Prints the median and the
worst over ``--rounds`` (target: median <= 2 s). One run; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contracts import decode_result, decode_timeline, encode  # noqa: E402
from devkit.serve_api import serve_in_thread  # noqa: E402
from vidloc import names  # noqa: E402
from vidloc.adapters.kafka import EventPublisher  # noqa: E402
from vidloc.adapters.object_store import ObjectStore  # noqa: E402
from vidloc.api.app import create_app  # noqa: E402
from vidloc.settings import load_settings  # noqa: E402


def now() -> str:
    return datetime.now(UTC).isoformat()


def timeline(video_id: str, bucket: str, word: str) -> bytes:
    return encode(
        decode_timeline(
            {
                "schema": "vidloc.timeline.v1",
                "video_id": video_id,
                "job_id": f"job-{video_id}",
                "source": {
                    "bucket": bucket,
                    "key": f"uploads/{video_id}.mp4",
                    "etag": "e",
                    "size": 1,
                },
                "video": {
                    "duration_s": 60,
                    "fps": 25,
                    "width": 640,
                    "height": 360,
                    "codec": "h264",
                },
                "localizer": "cv",
                "sampling": {"sample_fps": 1, "chunk_s": 30, "frames": 60, "chunks": 2},
                "events": [
                    {"id": "ev0", "label": "car", "start_s": 1, "end_s": 5, "description": word}
                ],
                "created_at": now(),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    suffix = uuid.uuid4().hex[:8]
    settings = load_settings().model_copy(
        update={
            "video_bucket": f"bench-fresh-v-{suffix}",
            "timeline_bucket": f"bench-fresh-t-{suffix}",
            "search_index_path": Path(f"/tmp/bench-fresh-{suffix}.sqlite"),
        }
    )
    store = ObjectStore(settings)
    store.ensure_bucket(settings.video_bucket)
    store.ensure_bucket(settings.timeline_bucket)
    app = create_app(settings)
    base_url, stop = serve_in_thread(app)
    delays = []
    try:
        assert app.state.search.indexer.ready.wait(60.0)
        assert app.state.feed.caught_up.wait(120.0), app.state.feed.last_error
        with EventPublisher(settings) as publisher, httpx.Client(base_url=base_url) as api:
            for n in range(args.rounds):
                vid, word = f"fresh-{suffix}-{n}", f"word{suffix}x{n}"
                key = names.timeline_key(vid)
                store.put_bytes(
                    settings.timeline_bucket, key, timeline(vid, settings.video_bucket, word)
                )
                result = decode_result(
                    {
                        "schema": "vidloc.result.v1",
                        "event_id": f"bench-{vid}",
                        "video_id": vid,
                        "job_id": f"job-{vid}",
                        "status": "succeeded",
                        "source": {"bucket": settings.video_bucket, "key": f"uploads/{vid}.mp4"},
                        "timeline": {"bucket": settings.timeline_bucket, "key": key},
                        "summary": {"events": 1, "duration_s": 60},
                        "created_at": now(),
                    }
                )
                publisher.publish(names.TOPIC_RESULTS, vid, encode(result))
                sent = time.perf_counter()
                while not api.get("/search", params={"q": word}).json()["results"]:
                    if time.perf_counter() - sent > 60:
                        sys.exit(f"round {n}: not searchable after 60 s")
                    time.sleep(0.02)
                delays.append(time.perf_counter() - sent)
    finally:
        stop()
    print(
        f"result event -> searchable, {len(delays)} rounds: "
        f"median {statistics.median(delays):.3f} s, "
        f"min {min(delays):.3f} s, max {max(delays):.3f} s (target: median <= 2 s)"
    )


if __name__ == "__main__":
    main()
