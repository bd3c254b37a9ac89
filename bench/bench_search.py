"""Search benchmark: an index of generated timelines, its build time, size and query latency.

    .venv/bin/python bench/bench_search.py [--videos 10000] [--events 50] [--tenants 10]

Generates ``--videos`` timelines of ``--events`` events each (labels and descriptions drawn from
a fixed vocabulary with a seeded RNG, so every run indexes the same words), spread over
``--tenants`` tenants, and builds a fresh SQLite FTS5 index from them the way a replica's sync
does (batches of 200 timelines per transaction, then FTS5's ``optimize``). The S3 listing and
GETs of a real sync are not in the build time: only what the index itself costs.

Then it runs a mix of queries (a common word, two words, a rare word, a phrase-like three words,
``match=any``, a label filter, a video filter, a confidence filter) for one tenant and for a
deployment with every video in one tenant, and prints p50/p95/max per query kind and overall.
Target: p95 <= 50 ms. Figures are from one run; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contracts import Timeline, decode_timeline  # noqa: E402
from vidloc.search import SearchIndex, make_request  # noqa: E402

COLOURS = ["red", "green", "blue", "white", "black", "yellow", "silver", "grey", "orange"]
THINGS = ["car", "truck", "bus", "bicycle", "person", "dog", "cat", "van", "motorbike", "forklift"]
ACTIONS = ["enters", "leaves", "parks", "stops", "turns left", "turns right", "crosses", "waits"]
PLACES = ["the gate", "the crossing", "the loading bay", "the car park", "the entrance", "lane 2"]
RARE = ["ambulance", "fire engine", "horse", "tractor", "helicopter"]


def generate(i: int, events: int, rng: random.Random, base: datetime) -> Timeline:
    made = []
    t = 0.0
    for n in range(events):
        thing = rng.choice(RARE) if rng.random() < 0.002 else rng.choice(THINGS)
        colour = rng.choice(COLOURS)
        start = t + rng.uniform(0.5, 20.0)
        end = start + rng.uniform(0.5, 30.0)
        t = start
        made.append(
            {
                "id": f"ev{n}",
                "label": f"{colour} {thing}" if rng.random() < 0.5 else thing,
                "start_s": round(start, 2),
                "end_s": round(end, 2),
                "description": f"a {colour} {thing} {rng.choice(ACTIONS)} {rng.choice(PLACES)}",
                "confidence": round(rng.uniform(0.3, 1.0), 2),
            }
        )
    return decode_timeline(
        {
            "schema": "vidloc.timeline.v1",
            "video_id": f"cam-{i:05d}",
            "job_id": f"job-{i:05d}",
            "source": {
                "bucket": "videos",
                "key": f"uploads/cam-{i:05d}.mp4",
                "etag": "e",
                "size": 1,
            },
            "video": {
                "duration_s": t + 60,
                "fps": 25,
                "width": 1920,
                "height": 1080,
                "codec": "h264",
            },
            "localizer": "cv",
            "sampling": {"sample_fps": 1, "chunk_s": 30, "frames": 1, "chunks": 1},
            "events": made,
            "created_at": (base + timedelta(minutes=i)).isoformat(),
        }
    )


QUERIES: list[tuple[str, dict[str, object]]] = [
    ("common word", {"text": "car"}),
    ("two words", {"text": "red car"}),
    ("three words", {"text": "white van parks"}),
    ("rare word", {"text": "ambulance"}),
    ("any of two", {"text": "helicopter tractor", "mode": "any"}),
    ("label filter", {"text": "gate", "labels": ("red truck",)}),
    ("confidence filter", {"text": "person crosses", "min_confidence": 0.9}),
    ("second page", {"text": "bus", "offset": 20}),
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(index: SearchIndex, tenant: str, videos: list[str], rounds: int) -> None:
    rng = random.Random(7)
    overall: list[float] = []
    print(f"  {'query':<18} {'p50':>8} {'p95':>8} {'max':>8}  hits")
    for name, spec in [*QUERIES, ("video filter", {"text": "car", "video_ids": "pick"})]:
        times = []
        hits = 0
        for _ in range(rounds):
            args = dict(spec)
            offset = int(args.pop("offset", 0))  # type: ignore[call-overload]
            if args.get("video_ids") == "pick":
                args["video_ids"] = (rng.choice(videos),)
            request = make_request(**args)  # type: ignore[arg-type]
            if offset:
                # A next page as a cursor asks it: the first page's window (not timed), then
                # this page within it.
                first = index.search(tenant, replace(request, limit=offset))
                request = replace(request, offset=offset, window=first.window)
            started = time.perf_counter()
            hits = len(index.search(tenant, request).hits)
            times.append((time.perf_counter() - started) * 1000)
        overall += times
        print(
            f"  {name:<18} {percentile(times, 0.5):7.2f}ms {percentile(times, 0.95):7.2f}ms "
            f"{max(times):7.2f}ms  {hits}"
        )
    print(
        f"  {'ALL':<18} {percentile(overall, 0.5):7.2f}ms {percentile(overall, 0.95):7.2f}ms "
        f"{max(overall):7.2f}ms  (target p95 <= 50 ms)"
    )


def build(path: Path, timelines: list[Timeline], tenant_of: list[str]) -> float:
    index = SearchIndex(path)
    started = time.perf_counter()
    for at in range(0, len(timelines), 200):
        index.put_many(
            [(tenant_of[i], timelines[i], "etag") for i in range(at, min(at + 200, len(timelines)))]
        )
    index.optimize()
    seconds = time.perf_counter() - started
    index.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=60, help="runs of each query kind")
    args = parser.parse_args()

    rng = random.Random(25)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    started = time.perf_counter()
    timelines = [generate(i, args.events, rng, base) for i in range(args.videos)]
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(
        f"generated {len(timelines)} timelines x {args.events} events "
        f"in {time.perf_counter() - started:.1f} s"
    )
    with tempfile.TemporaryDirectory(prefix="vidloc-bench-search-") as tmp:
        for label, tenant_of in (
            (f"{args.tenants} tenants", [f"t{i % args.tenants}" for i in range(args.videos)]),
            ("one tenant", ["t0"] * args.videos),
        ):
            path = Path(tmp) / f"{label.replace(' ', '-')}.sqlite"
            seconds = build(path, timelines, tenant_of)
            size = sum(p.stat().st_size for p in Path(tmp).glob(f"{path.name}*"))
            events = args.videos * args.events
            print(
                f"\n{label}: index built from scratch in {seconds:.1f} s "
                f"({events / seconds:,.0f} events/s), {size / 1e6:.1f} MB "
                f"({size / events:.0f} bytes/event)"
            )
            index = SearchIndex(path)
            mine = [
                t.video_id for t, owner in zip(timelines, tenant_of, strict=True) if owner == "t0"
            ]
            measure(index, "t0", mine, args.rounds)
            print(f"  load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
            index.close()


if __name__ == "__main__":
    main()
