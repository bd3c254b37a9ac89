"""``vidloc submit``: upload local videos to the video bucket and publish their ingest events.

Uploads are tagged with :data:`producers.notifications.SUBMITTED_META` so the bridge does not
publish a second, option-less event for the same object when the store notifies it.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

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
from vidloc.tenancy import tenant_of_key

log = logging.getLogger(__name__)

DEFAULT_KEY_PREFIX = "uploads/"


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
            tenant=tenant_of_key(info.key),
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
