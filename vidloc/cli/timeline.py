"""``vidloc timeline ID [--json | --html FILE]``: show, dump or export a stored timeline."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from contracts import Timeline, encode
from contracts.common import SAFE_ID_PATTERN
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.timelines import TimelineReader
from vidloc.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from vidloc.errors import VidlocError
from vidloc.settings import Settings
from vidloc.viewer.render import render_viewer

# SigV4 presigned URLs live at most 7 days.
MAX_EXPIRY_S = 7 * 24 * 3600


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "timeline",
        help="show a video's timeline (table, --json, or --html viewer page)",
        description="Exit codes: 0 ok, 1 not found or unreadable, 2 usage.",
    )
    parser.add_argument("video_id", metavar="ID", help="the video id (from submit or a result)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the timeline JSON")
    out.add_argument("--html", type=Path, metavar="FILE", help="write a self-contained viewer page")
    parser.add_argument(
        "--expires",
        type=int,
        default=MAX_EXPIRY_S,
        help="seconds the exported page's video link stays valid (max 7 days)",
    )
    parser.add_argument(
        "--tenant", default=None, help="the video's tenant (default: VIDLOC_TENANT)"
    )
    parser.add_argument(
        "--analysis",
        default=None,
        metavar="AID",
        help="one of the video's analyses (from vidloc ask; default: its first)",
    )
    parser.set_defaults(func=run)


def timeline_table(timeline: Timeline) -> Table:
    """The events as a rich table, captioned with what made them."""
    model = timeline.model.name if timeline.model is not None else timeline.localizer
    usage = timeline.usage
    table = Table(
        "label",
        "start",
        "end",
        "conf.",
        "description",
        title=f"{timeline.source.bucket}/{timeline.source.key} ({timeline.video_id})",
        caption=(
            f"{len(timeline.events)} events · {timeline.video.duration_s:.1f} s · {model} · "
            f"{usage.cost:.4f} {usage.currency}"
        ),
        title_justify="left",
    )
    for e in sorted(timeline.events, key=lambda e: (e.start_s, e.end_s, e.label)):
        conf = "" if e.confidence is None else f"{e.confidence:.2f}"
        table.add_row(e.label, f"{e.start_s:.1f}s", f"{e.end_s:.1f}s", conf, e.description)
    return table


def run(args: argparse.Namespace, settings: Settings) -> int:
    return show_timeline(
        settings,
        args.video_id,
        as_json=args.json,
        html=args.html,
        expires_s=args.expires,
        tenant=args.tenant or settings.tenant,
        analysis_id=args.analysis,
    )


def show_timeline(
    settings: Settings,
    video_id: str,
    *,
    as_json: bool,
    html: Path | None,
    expires_s: int,
    tenant: str | None = None,
    analysis_id: str | None = None,
) -> int:
    err = Console(stderr=True)
    if not re.fullmatch(SAFE_ID_PATTERN, video_id):
        err.print(f"vidloc timeline: {video_id!r} is not a video id")
        return EXIT_USAGE
    if tenant is not None and not re.fullmatch(SAFE_ID_PATTERN, tenant):
        err.print(f"vidloc timeline: {tenant!r} is not a tenant name")
        return EXIT_USAGE
    if analysis_id is not None and not re.fullmatch(SAFE_ID_PATTERN, analysis_id):
        err.print(f"vidloc timeline: {analysis_id!r} is not an analysis id")
        return EXIT_USAGE
    if not 1 <= expires_s <= MAX_EXPIRY_S:
        err.print(f"vidloc timeline: --expires must be 1..{MAX_EXPIRY_S} seconds")
        return EXIT_USAGE
    store = ObjectStore(settings)
    try:
        reader = TimelineReader(store, settings.timeline_bucket)
        timeline = reader.load(video_id, tenant, analysis_id)
    except VidlocError as exc:
        err.print(f"vidloc timeline: {exc.code}: {exc}")
        return EXIT_FAILED
    if timeline is None:
        of = f" analysis {analysis_id!r} of" if analysis_id is not None else ""
        err.print(f"vidloc timeline: no timeline for{of} video {video_id!r}")
        return EXIT_FAILED
    if as_json:
        sys.stdout.write(encode(timeline).decode("utf-8") + "\n")
        return EXIT_OK
    if html is not None:
        url = store.presigned_get_url(timeline.source.bucket, timeline.source.key, expires_s)
        until = datetime.now(UTC) + timedelta(seconds=expires_s)
        page = render_viewer(
            timeline, url, note=f"video link valid until {until:%Y-%m-%d %H:%M} UTC"
        )
        try:
            html.write_text(page, encoding="utf-8")
        except OSError as exc:
            err.print(f"vidloc timeline: cannot write {html}: {exc}")
            return EXIT_FAILED
        err.print(f"wrote {html}")
        return EXIT_OK
    Console().print(timeline_table(timeline))
    return EXIT_OK
