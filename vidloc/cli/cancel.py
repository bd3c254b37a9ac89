"""``vidloc cancel VIDEO``: stop a running video's job (a long video's spans too).

The same transports as ``vidloc ask``: whether the video's job runs, and its job id, are read
from the recent tail of ``video.results``/``video.progress``; the cancel marker is written to
the timeline bucket (``producers/cancels.py``, as the API's ``POST /videos/{id}/cancel``
does). The workers stop between chunks and the job ends with one failed result ``cancelled``.

Exit codes: 0 cancel asked, 1 no such video for the tenant (another tenant's answers the
same), or no job of it is running (it succeeded or failed), 2 usage (a bad id).
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime
from typing import Any, Protocol

from rich.console import Console
from rich.markup import escape

from contracts.common import SAFE_ID_PATTERN
from producers.cancels import cancel_refusal, request_cancel
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.models import VideoState
from vidloc.api.timelines import TimelineReader
from vidloc.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from vidloc.errors import VidlocError
from vidloc.settings import Settings


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "cancel",
        help="cancel a running video's job (it ends with a failed result 'cancelled')",
        description=(
            "Ask the workers to stop the video's running job: each stops between chunks, and "
            "the job ends with one failed result 'cancelled' (the chunks already paid stay in "
            "its usage). Exit codes: 0 cancel asked, 1 no such video for the tenant or no job "
            "of it running, 2 usage."
        ),
    )
    parser.add_argument("video_id", metavar="VIDEO", help="the video id (from submit)")
    parser.add_argument(
        "--tenant", default=None, help="the video's tenant (default: VIDLOC_TENANT)"
    )
    parser.set_defaults(func=run)


class StateReader(Protocol):
    """Where the video stands, from the bus (tests pass a fake)."""

    def video_state(
        self, video_id: str, tenant: str | None, has_timeline: bool
    ) -> VideoState | None: ...


def run(args: argparse.Namespace, settings: Settings) -> int:
    from vidloc.cli.ask import KafkaBus  # reads the bus tail the way ask does

    err = Console(stderr=True)
    return cancel(
        settings,
        args.video_id,
        tenant=args.tenant or settings.tenant,
        store=None,
        bus=KafkaBus(settings, err),
    )


def cancel(
    settings: Settings,
    video_id: str,
    *,
    tenant: str | None,
    store: ObjectStore | None,
    bus: StateReader,
) -> int:
    """Check the video and write its job's cancel marker; the exit code."""
    out, err = Console(), Console(stderr=True)

    def fail(code: int, message: str) -> int:
        err.print(f"[red]vidloc cancel: {escape(message)}[/red]")
        return code

    if not re.fullmatch(SAFE_ID_PATTERN, video_id):
        return fail(EXIT_USAGE, f"{video_id!r} is not a video id")
    if tenant is not None and not re.fullmatch(SAFE_ID_PATTERN, tenant):
        return fail(EXIT_USAGE, f"{tenant!r} is not a tenant name")
    store = store or ObjectStore(settings)
    bucket = settings.timeline_bucket
    try:
        has_timeline = TimelineReader(store, bucket).exists(video_id, tenant)
        state = bus.video_state(video_id, tenant, has_timeline)
        refused = cancel_refusal(
            video_id,
            state.status if state is not None else None,
            state.job_id if state is not None else None,
        )
        if refused is not None:
            return fail(EXIT_FAILED, f"{refused.code}: {refused.message}")
        assert state is not None and state.job_id is not None
        record = request_cancel(
            store,
            bucket,
            video_id=video_id,
            job_id=state.job_id,
            tenant=tenant,
            key_id=None,
            now=datetime.now(UTC),
        )
    except VidlocError as exc:
        return fail(EXIT_FAILED, f"{exc.code}: {exc}")
    out.print(
        f"cancel asked for job {record.job_id} of video {video_id}: its workers stop between "
        "chunks, and it ends with a failed result 'cancelled'"
    )
    return EXIT_OK
