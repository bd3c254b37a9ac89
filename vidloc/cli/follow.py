"""Follow jobs to the end: progress bars from ``video.progress``, results from ``video.results``.

The tail is opened (every partition assigned, positioned at the end) *before* the caller
publishes its ingest events, so a result that arrives milliseconds later is not missed:
``Follower.start()`` -> publish -> ``Follower.wait()``.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from contracts import (
    ContractError,
    ProgressEvent,
    ResultEvent,
    decode_progress,
    decode_result,
    decode_timeline,
)
from vidloc import names
from vidloc.adapters.kafka import BusRecord, TopicReader
from vidloc.adapters.object_store import ObjectStore
from vidloc.errors import VidlocError
from vidloc.settings import Settings

log = logging.getLogger(__name__)


class Follower:
    """Watches progress and results of a set of videos; start it before publishing."""

    def __init__(self, settings: Settings, *, console: Console | None = None) -> None:
        self._settings = settings
        self._console = console or Console(stderr=True)
        self._stream: TopicReader | None = None
        self._labels: dict[str, str] = {}
        self._results: dict[str, ResultEvent] = {}
        self._jobs: dict[str, str] = {}

    def start(self) -> None:
        self._stream = TopicReader.tail(self._settings, [names.TOPIC_PROGRESS, names.TOPIC_RESULTS])

    def expect(self, video_id: str, label: str | None = None, *, job_id: str | None = None) -> None:
        """Wait for ``video_id``; with ``job_id``, only that job's result counts (not a replay
        of an earlier submission of the same file)."""
        self._labels[video_id] = label or video_id
        if job_id is not None:
            self._jobs[video_id] = job_id

    def wait(self, timeout_s: float) -> dict[str, ResultEvent]:
        """Results of the expected videos that arrived within ``timeout_s`` (others absent)."""
        if self._stream is None:
            raise RuntimeError("Follower.start() must run before the ingest events are published")
        deadline = time.monotonic() + timeout_s
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("chunks  [dim]{task.fields[stage]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self._console, transient=False) as bars:
            tasks = {
                vid: bars.add_task(label, total=None, stage="queued")
                for vid, label in self._labels.items()
            }
            while self._pending() and time.monotonic() < deadline:
                remaining = deadline - time.monotonic()
                records = self._stream.poll(timeout_s=max(0.05, min(0.5, remaining)))
                for record in records:
                    self._handle(record, bars, tasks)
        return {vid: self._results[vid] for vid in self._labels if vid in self._results}

    def _pending(self) -> list[str]:
        return [vid for vid in self._labels if vid not in self._results]

    def _handle(self, record: BusRecord, bars: Progress, tasks: dict[str, TaskID]) -> None:
        if record.key not in self._labels:
            return  # someone else's job: cheap to skip before decoding
        try:
            if record.topic == names.TOPIC_RESULTS:
                self._on_result(decode_result(record.value), bars, tasks)
            else:
                progress = decode_progress(record.value)
                # Another job of the video (e.g. another analysis of it) is not this one's news.
                if self._jobs.get(progress.video_id, progress.job_id) == progress.job_id:
                    _show_progress(bars, tasks, progress)
        except ContractError as exc:
            log.warning("ignoring unreadable %s message: %s", record.topic, exc)

    def _on_result(self, result: ResultEvent, bars: Progress, tasks: dict[str, TaskID]) -> None:
        task = tasks.get(result.video_id)
        if task is None or self._jobs.get(result.video_id, result.job_id) != result.job_id:
            return
        if result.partial and result.stream is None:
            # A long video's timeline so far (its spans still run): news, not the end.
            bars.update(task, stage=f"partial: {result.summary.events} events so far")
            return
        self._results[result.video_id] = result
        total = bars.tasks[task].total
        done = total if result.status == "succeeded" and total else None
        bars.update(task, completed=done, stage=result.status)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def __enter__(self) -> Follower:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _show_progress(bars: Progress, tasks: dict[str, TaskID], event: ProgressEvent) -> None:
    task = tasks.get(event.video_id)
    if task is not None:
        total = event.chunks_total or None
        bars.update(task, total=total, completed=event.chunks_done, stage=event.stage)


def print_warnings(console: Console, result: ResultEvent) -> None:
    """What the job could not do as asked (ignored labels, unusable model answers, ...)."""
    for warning in result.warnings:
        times = f" (x{warning.count})" if warning.count else ""
        # Messages quote labels in brackets; escaped, rich prints them instead of reading markup.
        console.print(
            f"  [yellow]warning[/yellow] {warning.code}{times}: {escape(warning.message)}"
        )


def print_result(console: Console, store: ObjectStore, label: str, result: ResultEvent) -> None:
    """One job's outcome: where its timeline is and its events, or why it failed."""
    if result.status != "succeeded" or result.timeline is None:
        error = result.error
        reason = f"{error.code}: {error.message}" if error is not None else "no reason given"
        console.print(f"[red]{label}: failed[/red] ({reason})")
        print_warnings(console, result)
        return
    where = f"s3://{result.timeline.bucket}/{result.timeline.key}"
    console.print(f"[green]{label}[/green]: {result.summary.events} events -> {where}")
    print_warnings(console, result)
    try:
        timeline = decode_timeline(store.get_bytes(result.timeline.bucket, result.timeline.key))
    except (VidlocError, ContractError) as exc:
        console.print(f"  [yellow]cannot show the timeline: {exc}[/yellow]")
        return
    table = Table("label", "start", "end", "description", title=label, title_justify="left")
    for event in sorted(timeline.events, key=lambda e: (e.start_s, e.end_s)):
        table.add_row(
            event.label, f"{event.start_s:.1f}s", f"{event.end_s:.1f}s", event.description
        )
    console.print(table)
