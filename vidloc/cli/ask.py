"""``vidloc ask VIDEO_ID --prompt ... --labels ...``: a new question of an analysed video.

The same transports as ``vidloc submit``: the video's first timeline is read from the timeline
bucket, the ingest event (``vidloc.ingest.v2``) goes straight to Kafka, and ``--wait`` follows
``video.progress``/``video.results``. Whether the video's own job still runs is read from the
recent tail of those topics (the API's status book reads all of them; a command cannot).

Exit codes: 0 asked (with --wait: answered), 1 no such video for the tenant (another tenant's
answers the same), it has no timeline, or the analysis failed, 2 usage (an empty question, a
prompt over 8000 characters, a bad id or option), 3 --wait timed out, 4 the video's own job is
still running (ask again when it finishes). Nothing is published unless the answer is 0.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from rich.console import Console
from rich.markup import escape

from contracts import ContractError, ResultEvent, encode
from contracts.common import LOCALIZER_NAMES, SAFE_ID_PATTERN
from producers.analyses import (
    ask_event_id,
    new_analysis,
    question_options,
    question_problem,
    refusal,
    start_analysis,
)
from vidloc import names
from vidloc.adapters.kafka import EventPublisher, Start, TopicReader
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.feed import apply_record
from vidloc.api.models import VideoState
from vidloc.api.status import StatusBook, derive_state, final_job_id
from vidloc.api.timelines import TimelineReader
from vidloc.cli.exits import EXIT_BUSY, EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE
from vidloc.cli.follow import Follower, print_result
from vidloc.errors import VidlocError
from vidloc.settings import Settings

# Records per partition of video.results and video.progress read to tell whether the video's
# own job still runs: a running job reported progress recently, so its news is in the tail.
BUS_TAIL = 2000


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "ask",
        help="ask a new question of an analysed video (its frames are reused)",
        description=(
            "Exit codes: 0 asked (or answered, with --wait), 1 no such video for the tenant, "
            "no timeline yet, or the analysis failed, 2 usage (empty or oversized question), "
            "3 --wait timed out, 4 the video's own job is still running."
        ),
    )
    parser.add_argument("video_id", metavar="VIDEO_ID", help="the video id (from submit)")
    parser.add_argument("--prompt", help="what to look for, in words")
    parser.add_argument("--labels", help="comma-separated event labels, e.g. stand-up,wave")
    parser.add_argument("--localizer", choices=LOCALIZER_NAMES)
    parser.add_argument("--sample-fps", type=float, help="frames per second to sample")
    parser.add_argument("--chunk-s", type=float, help="seconds of video per model call")
    parser.add_argument(
        "--tenant", default=None, help="the video's tenant (default: VIDLOC_TENANT)"
    )
    parser.add_argument(
        "--idempotency-key",
        default=None,
        help="asking again with the same key (per video) starts no second analysis",
    )
    parser.add_argument("--wait", action="store_true", help="follow the analysis to its end")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds --wait waits")
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class Question:
    prompt: str | None
    labels: list[str]
    options: dict[str, Any]


class Bus(Protocol):
    """What ``ask`` needs of Kafka (tests pass a fake)."""

    def video_state(
        self, video_id: str, tenant: str | None, has_timeline: bool, final_job: str | None = None
    ) -> VideoState | None:
        """The video's own state from the bus (None: the bus has not heard of it);
        ``final_job`` wrote the stored final timeline (status.derive_state)."""

    def follower(self) -> Follower | None:
        """A started follower of progress and results (before publishing)."""

    def publish(self, video_id: str, value: bytes) -> None: ...


class KafkaBus:
    def __init__(self, settings: Settings, console: Console) -> None:
        self._settings = settings
        self._console = console

    def video_state(
        self, video_id: str, tenant: str | None, has_timeline: bool, final_job: str | None = None
    ) -> VideoState | None:
        book = StatusBook()
        starts = {
            names.TOPIC_RESULTS: Start.last(BUS_TAIL),
            names.TOPIC_PROGRESS: Start.last(BUS_TAIL),
        }
        with TopicReader.replay(self._settings, starts) as stream:
            while records := stream.poll(timeout_s=1.0):
                for record in records:
                    if record.key == video_id:  # both topics are keyed by video id
                        apply_record(book, record)
        return derive_state(
            video_id,
            book.get(video_id, tenant),
            has_timeline=has_timeline,
            now=datetime.now(UTC),
            stalled_after_s=self._settings.api_stalled_after_s,
            final_job=lambda: final_job,
        )

    def follower(self) -> Follower:
        follower = Follower(self._settings, console=self._console)
        follower.start()
        return follower

    def publish(self, video_id: str, value: bytes) -> None:
        with EventPublisher(self._settings) as publisher:
            publisher.publish(names.TOPIC_INGEST, video_id, value)


def labels_of(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def run(args: argparse.Namespace, settings: Settings) -> int:
    question = Question(
        prompt=args.prompt,
        labels=labels_of(args.labels),
        options={
            "localizer": args.localizer,
            "sample_fps": args.sample_fps,
            "chunk_s": args.chunk_s,
        },
    )
    err = Console(stderr=True)
    return ask(
        settings,
        args.video_id,
        question,
        tenant=args.tenant or settings.tenant,
        idempotency_key=args.idempotency_key,
        wait_s=args.timeout if args.wait else None,
        store=None,
        bus=KafkaBus(settings, err),
    )


def _usage(video_id: str, tenant: str | None, question: Question) -> str | None:
    if not re.fullmatch(SAFE_ID_PATTERN, video_id):
        return f"{video_id!r} is not a video id"
    if tenant is not None and not re.fullmatch(SAFE_ID_PATTERN, tenant):
        return f"{tenant!r} is not a tenant name"
    problem = question_problem(question.prompt, question.labels)
    return f"{problem.code}: {problem.message}" if problem is not None else None


def ask(
    settings: Settings,
    video_id: str,
    question: Question,
    *,
    tenant: str | None,
    idempotency_key: str | None,
    wait_s: float | None,
    store: ObjectStore | None,
    bus: Bus,
) -> int:
    """Check, record, publish and (with ``wait_s``) follow one ask; the exit code."""
    out, err = Console(), Console(stderr=True)

    def fail(code: int, message: str) -> int:
        err.print(f"[red]vidloc ask: {escape(message)}[/red]")
        return code

    usage = _usage(video_id, tenant, question)
    if usage is not None:
        return fail(EXIT_USAGE, usage)
    try:
        options = question_options(question.prompt, question.labels, question.options)
    except ContractError as exc:
        return fail(EXIT_USAGE, f"bad option: {exc}")
    store = store or ObjectStore(settings)
    bucket = settings.timeline_bucket
    try:
        timeline = TimelineReader(store, bucket).load(video_id, tenant)
        state = bus.video_state(video_id, tenant, timeline is not None, final_job_id(timeline))
    except VidlocError as exc:
        return fail(EXIT_FAILED, f"{exc.code}: {exc}")
    if state is None:
        whose = f" of tenant {tenant!r}" if tenant is not None else ""
        return fail(EXIT_FAILED, f"video_not_found: no video {video_id!r}{whose}")
    why = refusal(timeline, running=state.status in ("running", "stalled"))
    if why is not None:
        return fail(
            EXIT_BUSY if why.code == "video_running" else EXIT_FAILED, f"{why.code}: {why.message}"
        )
    assert timeline is not None
    event, record = new_analysis(
        timeline.source,
        video_id=video_id,
        tenant=tenant,
        options=options,
        event_id=ask_event_id(tenant, video_id, idempotency_key),
        now=datetime.now(UTC),
    )
    follower = None
    try:
        follower = bus.follower() if wait_s is not None else None  # before publishing
        if not start_analysis(store, bucket, record, lambda: bus.publish(video_id, encode(event))):
            out.print(f"analysis {event.analysis_id} of {video_id} was asked already (same key)")
            return EXIT_OK
        out.print(f"asked analysis {event.analysis_id} of video {video_id} (job {event.job_id})")
        if follower is None or wait_s is None:
            return EXIT_OK
        follower.expect(video_id, f"{video_id} {event.analysis_id}", job_id=event.job_id)
        results = follower.wait(wait_s)
    except VidlocError as exc:
        return fail(EXIT_FAILED, f"{exc.code}: {exc}")
    finally:
        if follower is not None:
            follower.close()
    return _outcome(out, store, results.get(video_id), event.analysis_id, wait_s)


def _outcome(
    console: Console,
    store: ObjectStore,
    result: ResultEvent | None,
    analysis_id: str,
    wait_s: float,
) -> int:
    if result is None:
        console.print(f"[yellow]{analysis_id}: no result within {wait_s:.0f}s[/yellow]")
        return EXIT_TIMEOUT
    print_result(console, store, analysis_id, result)
    return EXIT_OK if result.status == "succeeded" else EXIT_FAILED
