"""The API's reader of ``video.results`` and ``video.progress``: a background thread that
replays results from the beginning and the recent tail of progress into a StatusBook, then
follows both. Kafka errors become BusUnavailable and only delay the feed: the API keeps
serving timelines from S3 and says so on /readyz.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from contracts import ContractError, ResultEvent, decode_progress, decode_result
from vidloc import names
from vidloc.adapters.kafka import BusRecord, Start, TopicReader
from vidloc.api.status import StatusBook
from vidloc.errors import BusUnavailable
from vidloc.settings import Settings

log = logging.getLogger(__name__)

# Progress is chatty and only its newest event per video matters: replay a bounded tail.
PROGRESS_TAIL_PER_PARTITION = 2000


def open_replay(settings: Settings, *, progress_tail: int) -> TopicReader:
    """A group-less stream: results from their first offset, progress from end - tail."""
    return TopicReader.replay(
        settings,
        {names.TOPIC_RESULTS: Start.beginning(), names.TOPIC_PROGRESS: Start.last(progress_tail)},
    )


def apply_record(
    book: StatusBook,
    record: BusRecord,
    on_result: Callable[[ResultEvent], None] | None = None,
) -> bool:
    """Fold one record into ``book`` (and hand a result to ``on_result``: the search index);
    False (and a log line) for an unreadable one."""
    try:
        if record.topic == names.TOPIC_RESULTS:
            result = decode_result(record.value)
            book.apply_result(result)
            if on_result is not None:
                on_result(result)
        elif record.topic == names.TOPIC_PROGRESS:
            book.apply_progress(decode_progress(record.value))
        else:
            return False
    except ContractError as exc:
        log.warning(
            "skipping unreadable %s[%d]@%d: %s", record.topic, record.partition, record.offset, exc
        )
        return False
    return True


class StatusFeed:
    """Runs the replay-then-follow loop in a daemon thread until ``stop()``."""

    def __init__(
        self,
        settings: Settings,
        book: StatusBook,
        *,
        progress_tail: int = PROGRESS_TAIL_PER_PARTITION,
        retry_s: float = 5.0,
    ) -> None:
        self._settings = settings
        self._book = book
        self._progress_tail = progress_tail
        self._retry_s = retry_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.records_applied = 0
        self.last_error: str | None = None
        # Called with each result read (the search indexer queues its video; must not block).
        self.on_result: Callable[[ResultEvent], None] | None = None
        # Set once the replay has reached the end of the topics (an empty poll).
        self.caught_up = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="vidloc-status-feed", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                stream = open_replay(self._settings, progress_tail=self._progress_tail)
            except BusUnavailable as exc:
                self.last_error = str(exc)
                log.warning("status feed: %s; retrying in %.0f s", exc, self._retry_s)
                self._stop.wait(self._retry_s)
                continue
            self.last_error = None
            try:
                self._follow(stream)
            except BusUnavailable as exc:
                self.last_error = str(exc)
                log.warning("status feed lost Kafka: %s", exc)
                self._stop.wait(self._retry_s)
            finally:
                stream.close()

    def _follow(self, stream: TopicReader) -> None:
        while not self._stop.is_set():
            records = stream.poll(timeout_s=0.5)
            for record in records:
                if apply_record(self._book, record, self.on_result):
                    self.records_applied += 1
            if not records and not self.caught_up.is_set():
                log.info("status feed caught up (%d events applied)", self.records_applied)
                self.caught_up.set()
