"""``vidloc stream URL --stream-id ID``: localize events in a live source while it runs."""

from __future__ import annotations

import argparse
import re
import signal
import threading
from types import FrameType
from typing import Any

from rich.console import Console

from contracts.common import LOCALIZER_NAMES, SAFE_ID_PATTERN
from producers.submit import ingest_options
from vidloc.cli.exits import EXIT_OK, EXIT_USAGE
from vidloc.errors import InputError
from vidloc.settings import Settings
from vidloc.tenancy import check_tenant


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "stream", help="cut a live source into segments and localize them as they arrive"
    )
    parser.add_argument("url", metavar="URL", help="anything FFmpeg opens: rtsp://, srt://, ...")
    parser.add_argument("--stream-id", required=True, help="the stream's id (resumes if known)")
    parser.add_argument(
        "--segment-s", type=float, default=4.0, help="seconds per segment (cut at keyframes)"
    )
    parser.add_argument("--prompt", help="what to look for, in words")
    parser.add_argument("--labels", help="comma-separated event labels, e.g. goal,foul")
    parser.add_argument("--localizer", choices=LOCALIZER_NAMES)
    parser.add_argument("--sample-fps", type=float, help="frames per second to sample")
    parser.add_argument(
        "--policy",
        choices=["catch_up", "skip_to_live"],
        default="catch_up",
        help="when the model falls behind: localize every segment late, or skip to live",
    )
    parser.add_argument(
        "--max-lag-s", type=float, help="skip_to_live: skip segments older than this"
    )
    parser.add_argument(
        "--tenant", default=None, help="stream under tenants/<T>/ (default: VIDLOC_TENANT)"
    )
    parser.add_argument(
        "--reconnect-for",
        type=float,
        default=30.0,
        help="seconds to keep reconnecting to a dropped source before ending the stream",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: kafka and minio clients are heavy for every other command.
    from producers.stream import StreamConfig, StreamProducer
    from vidloc.adapters.kafka import EventPublisher
    from vidloc.adapters.object_store import ObjectStore

    console = Console(stderr=True)
    labels = [part.strip() for part in (args.labels or "").split(",") if part.strip()]
    try:
        options = ingest_options(
            {
                "prompt": args.prompt,
                "labels": labels,
                "localizer": args.localizer,
                "sample_fps": args.sample_fps,
            }
        )
        config = StreamConfig(
            url=args.url,
            stream_id=_stream_id(args.stream_id),
            segment_s=_positive(args.segment_s, "--segment-s"),
            options=options,
            policy=args.policy,
            max_lag_s=None if args.max_lag_s is None else _positive(args.max_lag_s, "--max-lag-s"),
            reconnect_for_s=max(0.0, args.reconnect_for),
            tenant=_tenant(args.tenant or settings.tenant),
        )
    except InputError as exc:
        console.print(f"[red]vidloc stream: {exc}[/red]")
        return EXIT_USAGE
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()  # FFmpeg flushes its last segment, then the end is announced

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with EventPublisher(settings) as publisher:
        producer = StreamProducer(settings, ObjectStore(settings), publisher, config, stop)
        sent = producer.run()
    console.print(f"stream {config.stream_id}: {sent} segments sent, end announced")
    return EXIT_OK


def _stream_id(value: str) -> str:
    if not re.fullmatch(SAFE_ID_PATTERN, value):
        raise InputError(f"--stream-id {value!r}: letters, digits, '.', '_', '-' only")
    return value


def _tenant(value: str | None) -> str | None:
    try:
        return None if value is None else check_tenant(value)
    except ValueError as exc:
        raise InputError(f"--tenant: {exc}") from exc


def _positive(value: float, name: str) -> float:
    if not value > 0:
        raise InputError(f"{name} must be > 0, got {value}")
    return value
