"""``vidloc submit``: upload local videos to the video bucket and publish their ingest events.

Uploads are tagged with :data:`producers.notifications.SUBMITTED_META` so the bridge does not
publish a second, option-less event for the same object when the store notifies it.
"""

from __future__ import annotations

import argparse
import logging
import mimetypes
import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console

from contracts import (
    ContractError,
    IngestEvent,
    IngestOptions,
    SourceObject,
    check_key,
    derive_video_id,
    encode,
)
from producers.notifications import SUBMITTED_META
from vidloc import names
from vidloc.adapters.kafka import EventPublisher
from vidloc.adapters.object_store import ObjectStore
from vidloc.errors import InputError
from vidloc.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_KEY_PREFIX = "uploads/"

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3


def check_files(paths: Sequence[Path]) -> list[Path]:
    """Every path must be a readable regular file; raises InputError naming all that are not."""
    problems = []
    for path in paths:
        if not path.exists():
            problems.append(f"{path}: no such file")
        elif not path.is_file():
            problems.append(f"{path}: not a regular file")
        elif not os.access(path, os.R_OK):
            problems.append(f"{path}: not readable")
    if not paths:
        problems.append("no files given")
    if problems:
        raise InputError("; ".join(problems))
    return list(paths)


def object_key_for(path: Path, key_prefix: str = DEFAULT_KEY_PREFIX) -> str:
    prefix = key_prefix.strip("/")
    key = f"{prefix}/{path.name}" if prefix else path.name
    try:
        return check_key(key)
    except ValueError as exc:
        raise InputError(f"{path}: cannot be stored as {key!r}: {exc}") from exc


def ingest_options(options: Mapping[str, Any]) -> IngestOptions:
    """The submitter's options, dropping unset ones; a bad value is a usage error."""
    given = {k: v for k, v in options.items() if v is not None and v != []}
    try:
        return IngestOptions(**given)
    except ValidationError as exc:
        raise InputError(f"bad option: {ContractError.from_validation(exc)}") from exc


def submit_files(
    paths: Sequence[Path],
    options: Mapping[str, Any],
    settings: Settings,
    store: ObjectStore,
    publisher: EventPublisher,
    *,
    key_prefix: str = DEFAULT_KEY_PREFIX,
) -> list[IngestEvent]:
    """Upload each file, then publish its ingest event (acked) keyed by video id.

    All files and options are checked before the first upload, so a typo fails fast.
    """
    files = check_files(paths)
    opts = ingest_options(options)
    keys = [object_key_for(path, key_prefix) for path in files]
    events = []
    for path, key in zip(files, keys, strict=True):
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        info = store.upload_file(
            settings.video_bucket,
            key,
            path,
            content_type=content_type,
            metadata={SUBMITTED_META: "1"},
        )
        event = IngestEvent(
            # Each submission is its own request (and job), even for a file sent before.
            event_id=f"submit-{uuid.uuid4()}",
            video_id=derive_video_id(info.bucket, info.key, info.etag),
            source=SourceObject(bucket=info.bucket, key=info.key, etag=info.etag, size=info.size),
            options=opts,
            submitted_at=datetime.now(UTC),
        )
        publisher.publish(names.TOPIC_INGEST, event.effective_video_id, encode(event))
        log.info(
            "submitted %s as %s/%s",
            path,
            info.bucket,
            info.key,
            extra={"video_id": event.effective_video_id, "job_id": event.job_id},
        )
        events.append(event)
    return events


def add_submit_parser(subparsers: Any) -> None:
    """Register ``vidloc submit`` on the CLI's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "submit", help="upload videos and queue them for localization"
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--prompt", help="what to look for, in words")
    parser.add_argument("--labels", help="comma-separated event labels, e.g. goal,foul")
    parser.add_argument("--localizer", choices=["vlm", "cv"])
    parser.add_argument("--sample-fps", type=float, help="frames per second to sample")
    parser.add_argument("--chunk-s", type=float, help="seconds of video per model call")
    parser.add_argument("--key-prefix", default=DEFAULT_KEY_PREFIX, help="object key prefix")
    parser.add_argument("--wait", action="store_true", help="follow the jobs until they finish")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds --wait waits")
    parser.set_defaults(func=run_submit)


def _options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    labels = [part.strip() for part in (args.labels or "").split(",") if part.strip()]
    return {
        "localizer": args.localizer,
        "prompt": args.prompt,
        "labels": labels,
        "sample_fps": args.sample_fps,
        "chunk_s": args.chunk_s,
    }


def run_submit(args: argparse.Namespace, settings: Settings) -> int:
    """Exit codes: 0 all ok, 1 some job failed, 2 usage error, 3 --wait timed out."""
    from producers.follow import Follower, print_result

    console = Console()
    try:
        check_files(args.files)
        ingest_options(_options_from_args(args))
        for path in args.files:
            object_key_for(path, args.key_prefix)
    except InputError as exc:
        console.print(f"[red]vidloc submit: {exc}[/red]")
        return EXIT_USAGE
    store = ObjectStore(settings)
    follower = Follower(settings, console=Console(stderr=True)) if args.wait else None
    try:
        if follower is not None:
            follower.start()  # before publishing, so no fast result is missed
        with EventPublisher(settings) as publisher:
            events = submit_files(
                args.files,
                _options_from_args(args),
                settings,
                store,
                publisher,
                key_prefix=args.key_prefix,
            )
        for path, event in zip(args.files, events, strict=True):
            console.print(
                f"queued {path} as s3://{event.source.bucket}/{event.source.key} "
                f"(video {event.effective_video_id}, job {event.job_id})"
            )
        if follower is None:
            return EXIT_OK
        for path, event in zip(args.files, events, strict=True):
            follower.expect(event.effective_video_id, path.name, job_id=event.job_id)
        results = follower.wait(args.timeout)
    finally:
        if follower is not None:
            follower.close()
    for path, event in zip(args.files, events, strict=True):
        result = results.get(event.effective_video_id)
        if result is not None:
            print_result(console, store, path.name, result)
        else:
            console.print(f"[yellow]{path.name}: no result within {args.timeout:.0f}s[/yellow]")
    if len(results) < len(events):
        return EXIT_TIMEOUT
    return EXIT_OK if all(r.status == "succeeded" for r in results.values()) else EXIT_FAILED
