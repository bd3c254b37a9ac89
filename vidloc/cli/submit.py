"""``vidloc submit FILE...``: upload videos, queue them, and with ``--wait`` follow them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from contracts.common import LOCALIZER_NAMES
from producers.submit import (
    DEFAULT_KEY_PREFIX,
    check_files,
    ingest_options,
    object_key_for,
    submit_files,
)
from vidloc.adapters.kafka import EventPublisher
from vidloc.adapters.object_store import ObjectStore
from vidloc.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE
from vidloc.cli.follow import Follower, print_result
from vidloc.errors import InputError
from vidloc.settings import Settings
from vidloc.tenancy import tenant_key


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "submit", help="upload videos and queue them for localization"
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--prompt", help="what to look for, in words")
    parser.add_argument("--labels", help="comma-separated event labels, e.g. goal,foul")
    parser.add_argument("--localizer", choices=LOCALIZER_NAMES)
    parser.add_argument("--sample-fps", type=float, help="frames per second to sample")
    parser.add_argument("--chunk-s", type=float, help="seconds of video per model call")
    parser.add_argument("--key-prefix", default=DEFAULT_KEY_PREFIX, help="object key prefix")
    parser.add_argument(
        "--tenant", default=None, help="upload under tenants/<T>/ (default: VIDLOC_TENANT)"
    )
    parser.add_argument("--wait", action="store_true", help="follow the jobs until they finish")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds --wait waits")
    parser.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The ingest options as plain values (unset ones are None or empty)."""
    labels = [part.strip() for part in (args.labels or "").split(",") if part.strip()]
    return {
        "localizer": args.localizer,
        "prompt": args.prompt,
        "labels": labels,
        "sample_fps": args.sample_fps,
        "chunk_s": args.chunk_s,
    }


def run(args: argparse.Namespace, settings: Settings) -> int:
    tenant = args.tenant or settings.tenant
    try:
        key_prefix = tenant_key(tenant, args.key_prefix.lstrip("/"))
    except ValueError as exc:
        Console().print(f"[red]vidloc submit: {exc}[/red]")
        return EXIT_USAGE
    return submit(
        args.files,
        options_from_args(args),
        settings,
        key_prefix=key_prefix,
        wait_s=args.timeout if args.wait else None,
    )


def submit(
    files: list[Path],
    options: dict[str, Any],
    settings: Settings,
    *,
    key_prefix: str,
    wait_s: float | None,
) -> int:
    """Exit codes: 0 all ok, 1 some job failed, 2 usage error, 3 --wait timed out."""
    console = Console()
    try:
        check_files(files)
        ingest_options(options)
        for path in files:
            object_key_for(path, key_prefix)
    except InputError as exc:
        console.print(f"[red]vidloc submit: {exc}[/red]")
        return EXIT_USAGE
    store = ObjectStore(settings)
    follower = Follower(settings, console=Console(stderr=True)) if wait_s is not None else None
    try:
        if follower is not None:
            follower.start()  # before publishing, so no fast result is missed
        with EventPublisher(settings) as publisher:
            events = submit_files(files, options, settings, store, publisher, key_prefix=key_prefix)
        for path, event in zip(files, events, strict=True):
            console.print(
                f"queued {path} as s3://{event.source.bucket}/{event.source.key} "
                f"(video {event.effective_video_id}, job {event.job_id})"
            )
        if follower is None or wait_s is None:
            return EXIT_OK
        for path, event in zip(files, events, strict=True):
            follower.expect(event.effective_video_id, path.name, job_id=event.job_id)
        results = follower.wait(wait_s)
    finally:
        if follower is not None:
            follower.close()
    for path, event in zip(files, events, strict=True):
        result = results.get(event.effective_video_id)
        if result is not None:
            print_result(console, store, path.name, result)
        else:
            console.print(f"[yellow]{path.name}: no result within {wait_s:.0f}s[/yellow]")
    if len(results) < len(events):
        return EXIT_TIMEOUT
    return EXIT_OK if all(r.status == "succeeded" for r in results.values()) else EXIT_FAILED
