"""``vidloc clip VIDEO EVENT -o out.mp4 [--pad-s S] [--analysis A]``: an MP4 of one event of a
timeline (of the video's first analysis, or of a later one).

The same clip the API serves: cut once (stream copy from a keyframe within one frame of the
start, else re-encoded), cached beside the timeline, then downloaded to ``-o``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from contracts import DEFAULT_ANALYSIS_ID
from contracts.common import SAFE_ID_PATTERN
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.timelines import TimelineReader
from vidloc.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from vidloc.settings import Settings


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "clip",
        help="write an MP4 of one event of a video's timeline",
        description="Exit codes: 0 ok, 1 not found or cannot be cut, 2 usage.",
    )
    parser.add_argument("video_id", metavar="VIDEO", help="the video id")
    parser.add_argument("event_id", metavar="EVENT", help="the event id (from the timeline)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the MP4 to write")
    parser.add_argument("--pad-s", type=float, default=0.0, help="seconds before and after")
    parser.add_argument(
        "--tenant", default=None, help="the video's tenant (default: VIDLOC_TENANT)"
    )
    parser.add_argument(
        "--analysis",
        default=DEFAULT_ANALYSIS_ID,
        help="the analysis the event belongs to (default: the video's first, 'default')",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: every process the command line starts (a worker too) builds this parser,
    # and the clip cutter brings FastAPI and PyAV.
    from vidloc.api.clips import MAX_PAD_S, find_or_cut_clip
    from vidloc.api.errors import ApiError

    if not 0.0 <= args.pad_s <= MAX_PAD_S:
        print(f"vidloc clip: --pad-s must be within 0..{MAX_PAD_S:g}", file=sys.stderr)
        return EXIT_USAGE
    if not re.fullmatch(SAFE_ID_PATTERN, args.analysis):
        print(f"vidloc clip: {args.analysis!r} is not an analysis id", file=sys.stderr)
        return EXIT_USAGE
    tenant = args.tenant or settings.tenant
    store = ObjectStore(settings)
    reader = TimelineReader(store, settings.timeline_bucket)
    timeline = reader.load(args.video_id, tenant, args.analysis)
    if timeline is None:
        which = "" if args.analysis == DEFAULT_ANALYSIS_ID else f" analysis {args.analysis!r}"
        print(f"vidloc clip: no timeline for video {args.video_id!r}{which}", file=sys.stderr)
        return EXIT_FAILED
    event = next((e for e in timeline.events if e.id == args.event_id), None)
    if event is None:
        print(
            f"vidloc clip: video {args.video_id!r} has no event {args.event_id!r}", file=sys.stderr
        )
        return EXIT_FAILED
    try:
        clip = find_or_cut_clip(
            store,
            settings,
            timeline,
            event,
            tenant=tenant,
            pad_s=args.pad_s,
            analysis_id=args.analysis,
        )
    except ApiError as exc:
        print(f"vidloc clip: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    store.download(clip.bucket, clip.key, args.output, max_bytes=settings.max_object_bytes)
    print(
        f"{args.output}: {event.label} {event.start_s:g}-{event.end_s:g} s, {clip.mode} "
        f"(first frame at {clip.first_frame_s:.3f} s){' from cache' if clip.cached else ''}"
    )
    return EXIT_OK
