"""What the worker does with one ``video.ingest`` message, independent of the consumer loop.

The handler decides; the loop only polls, commits and seeks. Every path ends in one of three
dispositions: COMMIT (a final result was announced), RETRY (transient, same offset again later)
or HAND_BACK (shutting down; another group member picks the message up, checkpoints intact).
"""

from __future__ import annotations

import contextvars
import enum
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from contracts import (
    ContractError,
    IngestEvent,
    decode_ingest,
    derive_job_id,
    encode,
)
from vidloc import names
from vidloc.errors import (
    BadIngestEvent,
    BusUnavailable,
    ConfigError,
    InputError,
    ModelAuthFailed,
    ModelRateLimited,
    ModelUnavailable,
    TransientError,
    VidlocError,
)
from vidloc.logs import bind_job
from vidloc.metrics import Metrics
from vidloc.settings import Settings
from workers.circuit import CircuitBreaker, CircuitState
from workers.job import JobRunner
from workers.outcomes import dlq_record, failed_result, progress_event, succeeded_result
from workers.refused import refused_ids

log = logging.getLogger(__name__)

# Failures that say the model endpoint is down (not that this input is bad): they feed the breaker.
MODEL_OUTAGES = (ModelRateLimited, ModelUnavailable, ModelAuthFailed)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# A dead-lettered original keeps at most this share of the message limit, so the DLQ record
# (original + error + envelope) always fits on the bus even when the original did not.
DLQ_ORIGINAL_SHARE = 4
# Attempts at a message whose failure cannot even be announced (a bug in the failure path)
# before the partition moves on without it.
MAX_CRASHES = 3


def _contract_code(exc: ContractError) -> str:
    """A specific code for why an ingest message was refused (see docs/errors.md)."""
    if exc.code is not None:
        return exc.code  # a parsing limit (message_too_deep, string_too_long, ...)
    if exc.field == "$":
        return "malformed_message"  # not UTF-8, not JSON, or not a JSON object
    if exc.field == "schema":
        return "unknown_schema"
    if exc.field == "source.key" and "'..'" in exc.reason:
        return "key_not_allowed"
    if exc.field == "source.bucket" and "URL" in exc.reason:
        return "url_not_allowed"
    return "bad_ingest_event"  # a field missing or mistyped; the message names it


class Disposition(enum.Enum):
    COMMIT = "commit"
    RETRY = "retry"
    HAND_BACK = "hand_back"


class JobCancelled(VidlocError):
    """The worker is shutting down; the job is handed back unfinished."""

    code = "cancelled"


@dataclass(frozen=True)
class Delivery:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class IngestHandler:
    def __init__(
        self,
        settings: Settings,
        runner: JobRunner,
        publish: Callable[[str, str, bytes], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        breaker: CircuitBreaker | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        self._localizer: str | None = None  # the current job's, for metrics labels
        self._settings = settings
        self._runner = runner
        self._publish = publish
        self._clock = clock
        self._first_failure: dict[tuple[str, int, int], float] = {}
        self._crashes: dict[tuple[str, int, int], int] = {}
        self.breaker = breaker or CircuitBreaker(
            settings.circuit_failure_threshold, settings.circuit_cooldown_s, clock=clock
        )
        # Set by the loop (shutdown, or the partition moved away); checked between chunks.
        self.cancel = threading.Event()
        # How long the loop should wait before offering a RETRY'd message again (0: its own).
        self.retry_hint_s = 0.0

    def handle(self, delivery: Delivery) -> Disposition:
        self._localizer = None
        with self._metrics.job_in_flight():
            # A fresh context per message: the job ids bound in _handle tag every log line of
            # this job, in every thread it fans out to, and vanish with it.
            disposition = contextvars.copy_context().run(self._guarded, delivery)
        if disposition is not Disposition.COMMIT:  # COMMITs are counted where they are decided
            self._metrics.job_finished(
                "retried" if disposition is Disposition.RETRY else "handed_back", self._localizer
            )
        return disposition

    def _guarded(self, delivery: Delivery) -> Disposition:
        try:
            return self._handle(delivery)
        except BusUnavailable:
            raise  # the outcome could not be announced: the loop offers the message again
        except Exception as exc:  # anything else is this message's fault or a bug: never retry
            try:
                return self.give_up(delivery, exc)
            except BusUnavailable:
                raise
            except Exception:  # even the failed result cannot be built: bounded retries
                return self._unannounceable(delivery)

    def _unannounceable(self, delivery: Delivery) -> Disposition:
        """The failure path itself crashed: retry a few times, then move the partition on."""
        where = (delivery.topic, delivery.partition, delivery.offset)
        crashes = self._crashes[where] = self._crashes.get(where, 0) + 1
        if crashes < MAX_CRASHES:
            log.exception("could not fail offset %d (attempt %d); will retry", where[2], crashes)
            return Disposition.RETRY
        del self._crashes[where]
        # Nothing can be announced for it, so holding the offset would stop the partition for
        # good; the log line (with the offset) is what is left of it.
        log.critical("dropping offset %d of %s/%d after %d attempts", where[2], *where[:2], crashes)
        self._metrics.error("internal")
        self._metrics.job_finished("failed", self._localizer)
        return Disposition.COMMIT

    def give_up(self, delivery: Delivery, exc: BaseException) -> Disposition:
        """Fail ``delivery`` for good after an unexpected error: failed result + DLQ, COMMIT.

        Raises only when publishing fails; the ids are read from the raw message, best effort.
        """
        ids = refused_ids(delivery.value, delivery.key)
        bind_job(ids.video_id, ids.job_id)
        log.error(
            "giving up on offset %d of %s/%d: %s: %s",
            delivery.offset,
            delivery.topic,
            delivery.partition,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        wrapped = VidlocError(f"internal error: {type(exc).__name__}", code="internal")
        return self._fail(delivery, wrapped, ids.video_id, ids.job_id, None, None)

    def _handle(self, delivery: Delivery) -> Disposition:
        where = (delivery.topic, delivery.partition, delivery.offset)
        try:
            event = self._decode(delivery)
        except BadIngestEvent as exc:
            # Announced under the ids its sender can match, read best effort from the bytes.
            sender = refused_ids(delivery.value, delivery.key)
            bind_job(sender.video_id, sender.job_id)
            log.warning("refused ingest message at %s: %s", where, exc)
            return self._fail(delivery, exc, sender.video_id, sender.job_id, None, None)

        video_id = event.effective_video_id
        job_id = derive_job_id(event.event_id)
        ids = {"video_id": video_id, "job_id": job_id}
        bind_job(video_id, job_id)
        self._localizer = event.options.localizer or self._settings.effective_localizer
        self.retry_hint_s = 0.0
        uses_model = self._localizer == "vlm"
        if uses_model and not self.breaker.allow():
            # The endpoint is known to be down: wait it out instead of failing the job.
            self.retry_hint_s = self.breaker.retry_in_s()
            log.info(
                "model circuit open; job waits %.1f s before a probe", self.retry_hint_s, extra=ids
            )
            return Disposition.RETRY
        try:
            outcome = self._runner.run(event, job_id, self._progress_fn(video_id, job_id))
            if uses_model:
                self.breaker.record_success()
            result = succeeded_result(event, job_id, outcome)
            chunks = outcome.timeline.sampling.chunks
            self._publish(
                names.TOPIC_PROGRESS,
                video_id,
                encode(progress_event(video_id, job_id, "done", chunks, chunks, "done")),
            )
            self._publish(names.TOPIC_RESULTS, video_id, encode(result))
            self._first_failure.pop(where, None)
            log.info(
                "job succeeded: %d events, %d tokens, cost %.6f %s",
                len(outcome.timeline.events),
                outcome.usage.prompt_tokens + outcome.usage.completion_tokens,
                outcome.cost,
                self._settings.currency,
                extra=ids,
            )
            self._metrics.job_finished("succeeded", self._localizer)
            return Disposition.COMMIT
        except JobCancelled:
            log.info("job handed back unfinished (shutting down)", extra=ids)
            return Disposition.HAND_BACK
        except InputError as exc:
            log.warning("job failed permanently: %s: %s", exc.code, exc, extra=ids)
            return self._fail(
                delivery, exc, video_id, job_id, event.source.bucket, event.source.key
            )
        except (TransientError, ConfigError) as exc:
            self._metrics.error(exc.code)
            # A wrong model key is fixed by an operator, not by the input: retry like an outage
            # until the deadline rather than burning the queue into the DLQ.
            if isinstance(exc, MODEL_OUTAGES) and self.breaker.record_failure() in (
                CircuitState.OPEN,
                CircuitState.HALF_OPEN,
            ):
                # An endpoint outage is nobody's input: the clock restarts after it, so a dead
                # model pauses the queue instead of dead-lettering it one job at a time.
                self._first_failure.pop(where, None)
                self.retry_hint_s = self.breaker.retry_in_s()
                log.warning(
                    "model endpoint failing (%s); circuit open for %.1f s: %s",
                    exc.code,
                    self.retry_hint_s,
                    exc,
                    extra=ids,
                )
                return Disposition.RETRY
            first = self._first_failure.setdefault(where, self._clock())
            if self._clock() - first < self._settings.job_retry_deadline_s:
                log.warning(
                    "job hit a transient error, will retry: %s: %s", exc.code, exc, extra=ids
                )
                return Disposition.RETRY
            log.error("job gave up after the retry deadline: %s: %s", exc.code, exc, extra=ids)
            self._first_failure.pop(where, None)
            return self._fail(
                delivery, exc, video_id, job_id, event.source.bucket, event.source.key
            )
        except Exception as exc:  # a bug must not take the partition down with it
            log.exception("job crashed", extra=ids)
            wrapped = VidlocError(f"internal error: {type(exc).__name__}", code="internal")
            return self._fail(
                delivery, wrapped, video_id, job_id, event.source.bucket, event.source.key
            )

    def _decode(self, delivery: Delivery) -> IngestEvent:
        s = self._settings
        if len(delivery.value) > s.max_message_bytes:
            raise BadIngestEvent(
                f"ingest message is {len(delivery.value)} bytes; the limit is "
                f"{s.max_message_bytes}",
                code="message_too_large",
            )
        try:
            event = decode_ingest(delivery.value)
        except ContractError as exc:
            raise BadIngestEvent(str(exc), code=_contract_code(exc)) from exc
        if event.source.bucket != s.video_bucket:
            raise BadIngestEvent(
                f"bucket {event.source.bucket!r} is not the configured video bucket",
                code="bucket_not_allowed",
            )
        if _URL.match(event.source.key):
            # Workers fetch objects from their own bucket only, never from a URL a user names.
            raise BadIngestEvent(
                "source.key is a URL; name an object in the video bucket", code="url_not_allowed"
            )
        return event

    def _fail(
        self,
        delivery: Delivery,
        exc: VidlocError,
        video_id: str,
        job_id: str,
        bucket: str | None,
        key: str | None,
    ) -> Disposition:
        """Announce a failed result and keep the original in the DLQ; both must be acked."""
        self._metrics.error(exc.code)
        self._metrics.job_finished("failed", self._localizer)
        message = str(exc)
        if self._settings.work_dir is not None:
            # Where this worker keeps its downloads is nobody's business, and would make two
            # workers' reports of the same failure differ.
            message = message.replace(str(self._settings.work_dir), "<work_dir>")
        message = message[:2000]
        result = failed_result(
            video_id=video_id,
            job_id=job_id,
            bucket=bucket,
            key=key,
            code=exc.code,
            message=message,
        )
        record = dlq_record(
            raw=delivery.value,
            topic=delivery.topic,
            partition=delivery.partition,
            offset=delivery.offset,
            code=exc.code,
            message=message,
            video_id=video_id,
            job_id=job_id,
            max_original_bytes=max(1024, self._settings.max_message_bytes // DLQ_ORIGINAL_SHARE),
        )
        self._publish(names.TOPIC_DLQ, video_id, encode(record))
        self._publish(
            names.TOPIC_PROGRESS,
            video_id,
            encode(progress_event(video_id, job_id, "failed", 0, 0, message)),
        )
        self._publish(names.TOPIC_RESULTS, video_id, encode(result))
        return Disposition.COMMIT

    def _progress_fn(self, video_id: str, job_id: str) -> Callable[[str, int, int, str], None]:
        def report(stage: str, done: int, total: int, message: str) -> None:
            if self.cancel.is_set():
                raise JobCancelled("worker is shutting down")
            try:
                self._publish(
                    names.TOPIC_PROGRESS,
                    video_id,
                    encode(progress_event(video_id, job_id, stage, done, total, message)),
                )
            except TransientError as exc:  # progress is best effort; results are not
                log.warning("progress event not sent: %s", exc)

        return report
