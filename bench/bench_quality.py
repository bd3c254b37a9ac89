"""Quality and cost benchmark: the generated corpus end to end through the real stack.

    make up                                   # Kafka + S3 (vidloc stack up)
    .venv/bin/python bench/bench_quality.py   # renders the corpus once (.cache/bench-corpus)

Real ``vidloc worker`` processes (the tests/integration/pipeline.py harness: a fresh consumer
group parked at the end of video.ingest) consume ingest events published by ``vidloc submit``'s
code, against the fake OpenAI-compatible model server (it reports only what it sees in each
frame). Every corpus video is submitted once per configuration, under a key prefix of its own
(so each gets its own video id and timeline); the timelines are then scored with the same code
as ``vidloc eval``. One run measures all three configurations:

* uniform 1 fps, uniform 2 fps (no refinement);
* adaptive sampling (cv pre-pass) + boundary refinement, default budget settings.

Targets for adaptive + refined: mIoU >= 0.90, R@1 IoU 0.7 >= 0.95, tokens per video-minute at
most half of uniform 2 fps.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

CONFIGS: dict[str, dict[str, Any]] = {
    "uniform 1 fps": {"sampling": "uniform", "sample_fps": 1.0, "refine": False},
    "uniform 2 fps": {"sampling": "uniform", "sample_fps": 2.0, "refine": False},
    "adaptive + refined": {"sampling": "adaptive", "refine": True},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--only", action="append", choices=sorted(CONFIGS), default=None)
    args = parser.parse_args(argv)

    from pipeline import Watcher, Workers

    from contracts import decode_timeline
    from devkit.fake_vlm.server import serve_in_thread
    from devkit.synth.corpus import write_corpus
    from producers.submit import submit_files
    from vidloc.adapters.kafka import EventPublisher
    from vidloc.adapters.object_store import ObjectStore
    from vidloc.evaluation.metrics import evaluate
    from vidloc.evaluation.sources import pair_timelines, read_truth
    from vidloc.settings import load_settings

    started = time.monotonic()
    paths, truth_path = write_corpus(ROOT / ".cache" / "bench-corpus")
    truth = read_truth(truth_path)
    print(f"corpus: {len(paths)} videos rendered/cached in {time.monotonic() - started:.1f} s")

    base_url, stop_fake = serve_in_thread()
    bucket = f"bench-videos-{uuid.uuid4().hex[:8]}"
    settings = load_settings().model_copy(update={"video_bucket": bucket})
    store = ObjectStore(settings)
    store.ensure_bucket(bucket)
    env = {
        "VIDLOC_VIDEO_BUCKET": bucket,
        "VIDLOC_VLM_BASE_URL": base_url,
        "VIDLOC_VLM_API_KEY": "bench-key-not-secret",
        "VIDLOC_LOCALIZER": "vlm",
        "VIDLOC_METRICS_PORT": "0",
        "VIDLOC_LOG_LEVEL": "WARNING",
    }
    run = uuid.uuid4().hex[:6]
    chosen = args.only or list(CONFIGS)
    watcher = Watcher(settings)
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as logs:
        workers = Workers(settings, env, Path(logs))
        workers.start(args.workers)
        try:
            submitted: dict[str, list[str]] = {}
            t0 = time.monotonic()
            with EventPublisher(settings) as publisher:
                for i, name in enumerate(chosen):
                    events = submit_files(
                        paths, CONFIGS[name], settings, store, publisher,
                        key_prefix=f"bench/{run}/c{i}",
                    )  # fmt: skip
                    submitted[name] = [e.effective_video_id for e in events]
            ids = [v for group in submitted.values() for v in group]
            try:
                seen = watcher.wait_results(ids, args.timeout, settle_s=1.0)
            except AssertionError:
                print(workers.logs(), file=sys.stderr)
                raise
            wall = time.monotonic() - t0
        finally:
            workers.stop()
            watcher.close()
            stop_fake()

    rows = []
    failed = 0
    for name in chosen:
        timelines = []
        for video_id in submitted[name]:
            result = seen.results[video_id][-1]
            if result.status != "succeeded" or result.timeline is None:
                print(f"{name}: {video_id} failed: {result.error}", file=sys.stderr)
                failed += 1
                continue
            data = store.get_bytes(result.timeline.bucket, result.timeline.key)
            timelines.append(decode_timeline(data))
        loaded = pair_timelines(truth, timelines)
        ev = evaluate(truth, loaded.predicted, loaded.usage, missing_videos=loaded.missing)
        rows.append((name, ev))
    print(f"\n{len(ids)} jobs through {args.workers} workers in {wall:.0f} s\n")
    print(render_table(rows))
    if failed:
        print(f"{failed} jobs failed (scored as misses); see above", file=sys.stderr)
    return 1 if failed else 0


def render_table(rows: list[tuple[str, Any]]) -> str:
    from vidloc.evaluation.report import table

    header = ["configuration", "mIoU", "R1@0.7", "F1@0.5", "boundary err s", "tokens/min"]
    header += ["CNY/min", "refine tokens/min"]
    body = []
    for name, ev in rows:
        o, c = ev.overall, ev.cost
        err = o.boundary_error_s
        body.append(
            [
                name,
                f"{o.miou:.3f}",
                f"{o.r1[0.7]:.3f}",
                f"{o.f1:.3f}",
                "-" if err is None else f"{err:.3f}",
                f"{c.tokens_per_minute:.0f}",
                f"{c.cost_per_minute:.5f}",
                f"{c.refine_tokens_per_minute:.0f}",
            ]
        )
    return table(body, header)


if __name__ == "__main__":
    sys.exit(main())
