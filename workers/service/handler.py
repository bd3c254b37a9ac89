"""What the worker does with one ``video.ingest`` message, independent of the consumer loop.

The handler decides; the loop only polls, commits and seeks. Every path ends in one of three
dispositions: COMMIT (a final result was announced), RETRY (transient, same offset again later)
or HAND_BACK (shutting down; another group member picks the message up, checkpoints intact).
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from contracts import (
    ContractError,
    IngestEvent,
    ResultEvent,
    Usage,
    decode_ingest,
    derive_job_id,
    encode,
)
from contracts.span import VideoSpan
from vidloc import names
from vidloc.adapters.kafka import partition_for_key
from vidloc.errors import (
    BadIngestEvent,
    BusUnavailable,
    ObjectMissing,
    TransientError,
    VidlocError,
)
from vidloc.logs import bind_job
from vidloc.metrics import Metrics
from vidloc.settings import Settings
from vidloc.tenancy import tenant_of_key
from workers.live.segment_job import StreamJob
from workers.localizers.registry import localizer_kind
from workers.model.circuit import CircuitBreaker
from workers.model.cost import Prices, price_usage
from workers.pipeline.job import HandOff, JobOutcome, JobRunner
from workers.pipeline.outcomes import (
    dlq_record,
    failed_result,
    progress_event,
    result_event_id,
    succeeded_result,
)
from workers.pipeline.spans import runs_at_merge
from workers.priority import in_background
from workers.service import policy
from workers.service.cancels import CANCELLED_MESSAGE, CancelWatch, marker_present, paid_so_far
from workers.service.dedup import SETTLING_WAIT_S, WAIT_S, Verdict, answer_from
from workers.service.outbox import after_commit
from workers.service.policy import CancelledByUser, JobCancelled
from workers.service.refused import refused_ids
from workers.service.spans import SpanLedger, span_key, span_orders, span_report
from workers.service.work_markers import Lease, WorkMarkers

log = logging.getLogger(__name__)

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


# The span part each topic's messages carry (none on video.ingest); the reports topic also
# carries the lead-in order its merging member runs (workers/pipeline/spans.runs_at_merge).
_SPAN_ROLES = {names.TOPIC_SPANS: {"order"}, names.TOPIC_SPANS_DONE: {"report", "order"}}


def _runs_at_merge(span: VideoSpan) -> bool:
    return runs_at_merge(span.index, span.end_chunk - span.first_chunk)


class Disposition(enum.Enum):
    COMMIT = "commit"
    RETRY = "retry"
    HAND_BACK = "hand_back"


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
        publish_progress: Callable[[str, str, bytes], None] | None = None,
        markers: WorkMarkers | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        # Idempotent work (workers/service/dedup.py); None: every message runs its job.
        self._markers = markers
        self._work: str | None = None  # the marker key of the job running now
        self._lease: Lease | None = None  # its hold on that marker, renewed while it runs
        self._localizer: str | None = None  # the current job's, for metrics labels
        self._uses_model = False
        self._settings = settings
        self._runner = runner
        # Outcomes (result, final progress, DLQ) go through ``publish``, which the worker may
        # hold back for one transaction with the offset; in-flight progress is advisory and
        # leaves at once through ``publish_progress``.
        self._publish = publish
        self._publish_progress = publish_progress or publish
        # Live-stream segments (ingest events with a ``stream`` part) take their own path;
        # built on first use, from the runner's store.
        self._streams: StreamJob | None = None
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
        self._work = None
        with self._metrics.job_in_flight(), self._lease_scope():
            # A fresh context per message: the job ids bound in _handle tag every log line of
            # this job, in every thread it fans out to, and vanish with it.
            disposition = contextvars.copy_context().run(self._guarded, delivery)
        if disposition is not Disposition.COMMIT:  # COMMITs are counted where they are decided
            self._metrics.job_finished(
                "retried" if disposition is Disposition.RETRY else "handed_back", self._localizer
            )
        return disposition

    @contextlib.contextmanager
    def _lease_scope(self) -> Iterator[None]:
        """A work marker's lease that the job did not hand to its commit (a retry, a hand-back,
        a hand-off, a crash) ends with it: renewed no more, it runs out."""
        self._lease = None
        try:
            yield
        finally:
            if self._lease is not None:
                self._lease.stop()
                self._lease = None

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
        bind_job(video_id, job_id)
        kind = localizer_kind(event.options.localizer or self._settings.effective_localizer)
        self._localizer = kind.name
        self._uses_model = kind.asks_model
        self.retry_hint_s = 0.0
        waiting = policy.admit(
            uses_model=self._uses_model,
            circuit_allows=self.breaker.allow(),
            circuit_retry_in_s=self.breaker.retry_in_s(),
        )
        if waiting is not None:
            return self._act(waiting, delivery, event, job_id, None)
        if delivery.topic == names.TOPIC_SPANS:
            return self._span_order(delivery, event, job_id, where)
        if delivery.topic == names.TOPIC_SPANS_DONE:
            return self._span_report(delivery, event, job_id, where)
        if event.stream is not None:
            return self._stream_segment(delivery, event, job_id, where)
        if self._markers is not None:
            settled = self._check_work(self._markers, event, job_id)
            if settled is not None:
                return settled
        try:
            tenant = tenant_of_key(event.source.key)
            progress = self._progress_fn(
                video_id, job_id, tenant, _analysis(event), self._cancel_watch(event, job_id)
            )
            outcome = self._runner.run_or_hand_off(event, job_id, progress)
        except Exception as exc:  # every failure is the policy's to judge; a bug must not
            # take the partition down with it
            return self._act(self._judge(exc, where), delivery, event, job_id, exc)
        self._first_failure.pop(where, None)
        if isinstance(outcome, HandOff):
            # The orders leave with this offset's commit; the work marker stays "running"
            # until its lease ends (the merge answers duplicates from then on by its result).
            partitions = self._settings.span_partitions
            for order in span_orders(event, outcome.spans, outcome.info, outcome.chunks_total):
                assert order.span is not None
                if _runs_at_merge(order.span):
                    # Keyed by the video, like its reports: the merging member runs it first.
                    self._publish(names.TOPIC_SPANS_DONE, video_id, encode(order))
                    continue
                key = span_key(
                    order.span, video_id, partitions, lambda k: partition_for_key(k, partitions)
                )
                self._publish(names.TOPIC_SPANS, key, encode(order))
            progress("localizing", 0, outcome.chunks_total, f"{len(outcome.spans)} spans queued")
            self._work = None
            return Disposition.COMMIT
        if self._uses_model:
            self.breaker.record_success()
        announced = self._succeed(event, job_id, outcome)
        if self._lease is not None and self._work is not None:
            lease, self._lease = self._lease, None
            done = encode(announced)  # a copy of the event is answered with this very event
            # "done" only once the result is committed with the offset; until then the lease
            # is renewed, and a result that never leaves leaves no "done" (outbox.after_commit).
            after_commit(lease.after_commit(done))
        return Disposition.COMMIT

    def _span_order(
        self, delivery: Delivery, event: IngestEvent, job_id: str, where: tuple[str, int, int]
    ) -> Disposition:
        """Localize one span's chunks and report; a permanent failure is reported too (the
        merging member fails the video, naming the span)."""
        # A span yields the worker's shared slots to short videos, lead-ins and merges.
        with in_background():
            report = self._run_span(delivery, event, job_id, where)
        if isinstance(report, Disposition):
            return report
        self._publish(names.TOPIC_SPANS_DONE, event.effective_video_id, encode(report))
        return Disposition.COMMIT

    def _run_span(
        self, delivery: Delivery, event: IngestEvent, job_id: str, where: tuple[str, int, int]
    ) -> IngestEvent | Disposition:
        """The order's report (its tokens, or its permanent failure), or RETRY/HAND_BACK."""
        video_id = event.effective_video_id
        tenant = tenant_of_key(event.source.key)
        assert event.span is not None
        log.info(
            "%s: chunks %d-%d of %d",
            event.span.label,
            event.span.first_chunk,
            event.span.end_chunk - 1,
            event.span.chunks_total,
            extra={"video_id": video_id, "job_id": job_id},
        )
        watch = self._cancel_watch(event, job_id)
        if watch.cancelled(now=True):
            # A span not started yet when the user cancelled: no decoding, no model request.
            log.info(
                "%s cancelled by the user before it started",
                event.span.label,
                extra={"video_id": video_id, "job_id": job_id},
            )
            return span_report(event, error=(CancelledByUser.code, CANCELLED_MESSAGE))
        try:
            done = self._runner.run_span(
                event,
                job_id,
                self._progress_fn(video_id, job_id, tenant, _analysis(event), watch),
            )
        except Exception as exc:
            decision = self._judge(exc, where)
            if decision.action is not policy.Action.FAIL:
                return self._act(decision, delivery, event, job_id, exc)
            if decision.reason is policy.Reason.USER_CANCELLED:
                log.info(
                    "%s cancelled by the user between its chunks",
                    event.span.label,
                    extra={"video_id": video_id, "job_id": job_id},
                )
            else:
                _log_decision(decision, exc, {"video_id": video_id, "job_id": job_id})
            if decision.reason is policy.Reason.CRASHED or not isinstance(exc, VidlocError):
                exc = VidlocError(f"internal error: {type(exc).__name__}", code="internal")
            return span_report(event, error=(exc.code, str(exc)))
        if self._uses_model:
            self.breaker.record_success()
        self._first_failure.pop(where, None)
        # A redone span pays only what its predecessor did not checkpoint (docs/delivery.md).
        log.info(
            "%s done: %d chunks, %d of them from checkpoints",
            event.span.label,
            done.chunks,
            done.chunks_from_checkpoint,
            extra={"video_id": video_id, "job_id": job_id},
        )
        return span_report(event, done.tokens)

    def _span_report(
        self, delivery: Delivery, event: IngestEvent, job_id: str, where: tuple[str, int, int]
    ) -> Disposition:
        """Count a span in; merge on the report that completes the video, else publish the
        timeline so far as a partial result. A lead-in order is run here first, and counted in
        as its own report in the same transaction."""
        if event.span is not None and event.span.role == "order":
            report = self._run_span(delivery, event, job_id, where)
            if isinstance(report, Disposition):
                return report
            event = report
        span = event.span
        assert span is not None
        video_id = event.effective_video_id
        tenant = tenant_of_key(event.source.key)
        kind_name = self._localizer or ""
        store = self._runner.store
        bucket = self._settings.timeline_bucket
        state_key = names.span_state_key(video_id, job_id, tenant)
        try:
            ledger = SpanLedger.decode(store.get_bytes(bucket, state_key), span.count)
        except ObjectMissing:
            ledger = SpanLedger(span.count)
        error = (span.error.code, span.error.message) if span.error is not None else None
        watch = self._cancel_watch(event, job_id)
        if (
            error is None
            and ledger.failed is None
            and ledger.completed_by in (None, span.index)  # not merged and committed yet
            and watch.cancelled(now=True)
        ):
            # The user cancelled: no partial, no merge; the video fails on this report.
            error = (CancelledByUser.code, CANCELLED_MESSAGE)
        if error is not None:
            ledger.fail(span.index, *error)
        else:
            ledger.add(span.index)
        store.put_bytes(bucket, state_key, ledger.encode())
        whole = event.model_copy(update={"span": None})
        failed = ledger.failed
        if failed is not None and failed.get("index") == span.index:
            # This report failed the video: announce it, and announce it again when this is
            # the same report delivered again (a crash after the ledger's write, before the
            # commit, left nothing announced): the same result event, so one for readers.
            if failed.get("code") == CancelledByUser.code:
                return self._cancelled(delivery, whole, job_id)
            failure = VidlocError(f"{span.label}: {failed['message']}", code=failed["code"])
            return self._fail(
                delivery,
                failure,
                video_id,
                job_id,
                event.source.bucket,
                event.source.key,
                _analysis(event),
            )
        if ledger.failed is not None:
            return Disposition.COMMIT  # the video already failed; later spans change nothing
        progress = self._progress_fn(video_id, job_id, tenant, _analysis(event), watch)
        try:
            if ledger.merges_on(span.index):
                outcome = self._runner.merge(whole, job_id, progress)
            elif ledger.completed_by is None:
                outcome = self._runner.partial(event, job_id, len(ledger.reported))
            else:
                return Disposition.COMMIT  # a report after the merge (a replay): nothing new
        except CancelledByUser:
            # Cancelled while merging: the video fails once, as on a report (the ledger says
            # so to a replay of this report).
            ledger.fail(span.index, CancelledByUser.code, CANCELLED_MESSAGE)
            store.put_bytes(bucket, state_key, ledger.encode())
            return self._cancelled(delivery, whole, job_id)
        except Exception as exc:
            return self._act(self._judge(exc, where), delivery, whole, job_id, exc)
        self._first_failure.pop(where, None)
        if ledger.completed_by is None:
            partial = succeeded_result(whole, job_id, outcome).model_copy(
                update={
                    "event_id": result_event_id(job_id, f"partial-{len(ledger.reported)}"),
                    "partial": True,
                }
            )
            self._publish(names.TOPIC_RESULTS, video_id, encode(partial))
            return Disposition.COMMIT
        if self._uses_model:
            self.breaker.record_success()
        announced = self._succeed(whole, job_id, outcome)
        if self._markers is not None:
            # The hand-off left the work marker "running" under this job id; the merge makes it
            # "done", once its result is committed, so a copy of the video is answered.
            markers, key = self._markers, self._markers.check(whole, job_id, kind_name).key
            done = encode(announced)

            def settle(committed: bool) -> None:
                if committed:
                    markers.finish(key, job_id, done)

            after_commit(settle)
        return Disposition.COMMIT

    def _check_work(
        self, markers: WorkMarkers, event: IngestEvent, job_id: str
    ) -> Disposition | None:
        """RETRY or COMMIT when identical work is running or done; None: run it (marked)."""
        check = markers.check(event, job_id, self._localizer or "")
        ids = {"video_id": event.effective_video_id, "job_id": job_id}
        if check.verdict is Verdict.WAIT:
            self.retry_hint_s = SETTLING_WAIT_S if check.settling else WAIT_S
            log.info("identical work runs as job %s; waiting", check.running_job, extra=ids)
            return Disposition.RETRY
        if check.verdict is Verdict.ANSWER and check.stored is not None:
            answer = answer_from(check.stored, job_id)
            self._publish(names.TOPIC_RESULTS, event.effective_video_id, encode(answer))
            log.info(
                "identical work was done by job %s; answered from its result",
                check.stored.job_id,
                extra=ids,
            )
            self._metrics.job_finished("deduplicated", self._localizer)
            return Disposition.COMMIT
        lease = markers.claim(check, job_id)
        if lease is None:  # another job marked it between the check and the claim
            self.retry_hint_s = WAIT_S
            log.info("identical work was claimed just now by another job; waiting", extra=ids)
            return Disposition.RETRY
        self._lease = lease
        self._work = check.key
        return None

    def _stream_segment(
        self, delivery: Delivery, event: IngestEvent, job_id: str, where: tuple[str, int, int]
    ) -> Disposition:
        """Fold one live-stream segment into its stream's timeline (workers/live/segment_job.py)."""
        tenant = tenant_of_key(event.source.key)
        if self._streams is None:
            self._streams = StreamJob.from_runner(self._runner, self._publish, self._metrics)
        try:
            self._streams.run(
                event, job_id, self._progress_fn(event.effective_video_id, job_id, tenant)
            )
        except Exception as exc:
            return self._act(self._judge(exc, where), delivery, event, job_id, exc)
        if self._uses_model:
            self.breaker.record_success()
        self._first_failure.pop(where, None)
        self._metrics.job_finished("succeeded", self._localizer)
        return Disposition.COMMIT

    def _judge(self, exc: Exception, where: tuple[str, int, int]) -> policy.Decision:
        """Count the failure where it counts (metrics, breaker, retry clock) and ask the policy."""
        kind = policy.classify(exc)
        code = exc.code if isinstance(exc, VidlocError) else "internal"
        circuit = None
        elapsed = 0.0
        if kind in (policy.FailureKind.TRANSIENT, policy.FailureKind.MODEL_OUTAGE):
            self._metrics.error(code)
            if kind is policy.FailureKind.MODEL_OUTAGE:
                circuit = self.breaker.record_failure()
            elapsed = self._clock() - self._first_failure.setdefault(where, self._clock())
        decision = policy.decide(
            kind,
            code=code,
            elapsed_s=elapsed,
            deadline_s=self._settings.job_retry_deadline_s,
            circuit=circuit,
            circuit_retry_in_s=self.breaker.retry_in_s(),
        )
        if decision.reset_clock:
            self._first_failure.pop(where, None)
        return decision

    def _act(
        self,
        decision: policy.Decision,
        delivery: Delivery,
        event: IngestEvent,
        job_id: str,
        exc: Exception | None,
    ) -> Disposition:
        ids = {"video_id": event.effective_video_id, "job_id": job_id}
        _log_decision(decision, exc, ids)
        if decision.action is policy.Action.HAND_BACK:
            return Disposition.HAND_BACK
        if decision.action is policy.Action.RETRY:
            self.retry_hint_s = decision.retry_after_s
            return Disposition.RETRY
        if decision.reason is policy.Reason.USER_CANCELLED:
            return self._cancelled(delivery, event, job_id)
        if decision.reason is policy.Reason.CRASHED or not isinstance(exc, VidlocError):
            # A bug's message may say anything; the result says only what kind of bug.
            exc = VidlocError(f"internal error: {type(exc).__name__}", code="internal")
        return self._fail(
            delivery,
            exc,
            ids["video_id"],
            job_id,
            event.source.bucket,
            event.source.key,
            _analysis(event),
            dead_letter=decision.dead_letter,
        )

    def _cancel_watch(self, event: IngestEvent, job_id: str) -> CancelWatch:
        """The user's cancel marker of this job (docs/delivery.md "Cancelling")."""
        bucket = self._settings.timeline_bucket
        key = names.cancel_key(event.effective_video_id, job_id, tenant_of_key(event.source.key))
        return CancelWatch(
            lambda: marker_present(self._runner.store, bucket, key), clock=self._clock
        )

    def _cancelled(self, delivery: Delivery, event: IngestEvent, job_id: str) -> Disposition:
        """Fail a job the user cancelled: a failed result ``cancelled`` billed with every chunk
        checkpointed so far (paid, on whichever member), and no DLQ record: nothing is wrong
        with the message, and replaying it would undo what the user asked."""
        video_id = event.effective_video_id
        tenant = tenant_of_key(event.source.key)
        usage = None
        try:
            tally = paid_so_far(
                self._runner.store, self._settings.timeline_bucket, video_id, job_id, tenant
            )
        except VidlocError as exc:  # the bill stays at zero rather than the cancel undone
            log.warning("cancelled job's usage not read: %s", exc)
        else:
            s = self._settings
            prices = Prices(s.price_input_per_1k, s.price_output_per_1k, s.currency)
            usage = Usage.model_validate(
                {
                    "prompt_tokens": tally.prompt_tokens,
                    "completion_tokens": tally.completion_tokens,
                    "requests": tally.requests,
                    "cost": price_usage(tally, prices),
                    "currency": s.currency,
                }
            )
        if self._markers is not None and self._lease is None:
            # A long video's hand-off left its work marker "running" (the merge would have made
            # it "done"): it goes once this failure is committed, so the same video submitted
            # again runs at once instead of waiting for the hand-off's lease to run out.
            markers = self._markers
            marker_key = markers.check(event, job_id, self._localizer or "").key

            def settle(committed: bool) -> None:
                if committed:
                    markers.release(marker_key, job_id)

            after_commit(settle)
        paid = usage.requests if usage is not None and usage.requests is not None else 0
        log.info(
            "job cancelled by the user: %d model requests paid before it stopped",
            paid,
            extra={"video_id": video_id, "job_id": job_id},
        )
        return self._fail(
            delivery,
            CancelledByUser(CANCELLED_MESSAGE),
            video_id,
            job_id,
            event.source.bucket,
            event.source.key,
            _analysis(event),
            dead_letter=False,
            usage=usage,
        )

    def _succeed(self, event: IngestEvent, job_id: str, outcome: JobOutcome) -> ResultEvent:
        """Announce the job's result (held for its commit); returns the result announced."""
        video_id = event.effective_video_id
        result = succeeded_result(event, job_id, outcome)
        chunks = outcome.timeline.sampling.chunks
        self._publish(
            names.TOPIC_PROGRESS,
            video_id,
            encode(
                progress_event(
                    video_id,
                    job_id,
                    "done",
                    chunks,
                    chunks,
                    "done",
                    result.tenant,
                    result.analysis_id,
                )
            ),
        )
        self._publish(names.TOPIC_RESULTS, video_id, encode(result))
        log.info(
            "job succeeded: %d events, %d tokens, cost %.6f %s",
            len(outcome.timeline.events),
            outcome.usage.prompt_tokens + outcome.usage.completion_tokens,
            outcome.cost,
            self._settings.currency,
            extra={"video_id": video_id, "job_id": job_id},
        )
        self._metrics.job_finished("succeeded", self._localizer)
        return result

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
        wanted_roles = _SPAN_ROLES.get(delivery.topic, {None})
        role = event.span.role if event.span is not None else None
        lead_in = event.span is not None and _runs_at_merge(event.span)
        if role not in wanted_roles or (
            role == "order" and lead_in != (delivery.topic == names.TOPIC_SPANS_DONE)
        ):
            # Orders and reports are the workers' own: an ingest event never carries one, the
            # span topics carry nothing else, and a lead-in order goes to its merging member.
            said = f"a span {role}" if role else "no span part"
            if role == "order":
                said = f"a {'lead-in' if lead_in else 'span'} order"
            raise BadIngestEvent(
                f"a message on {delivery.topic} with {said}", code="span_not_allowed"
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
        analysis_id: str | None = None,
        *,
        dead_letter: bool = True,
        usage: Usage | None = None,
    ) -> Disposition:
        """Announce a failed result and keep the original in the DLQ (unless not
        ``dead_letter``: a user's cancel); all must be acked. ``usage``: what was paid."""
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
            analysis_id=analysis_id,
        )
        if usage is not None:
            result = result.model_copy(update={"usage": usage})
        if dead_letter:
            record = dlq_record(
                raw=delivery.value,
                topic=delivery.topic,
                partition=delivery.partition,
                offset=delivery.offset,
                code=exc.code,
                message=message,
                video_id=video_id,
                job_id=job_id,
                max_original_bytes=max(
                    1024, self._settings.max_message_bytes // DLQ_ORIGINAL_SHARE
                ),
            )
            self._publish(names.TOPIC_DLQ, video_id, encode(record))
        self._publish(
            names.TOPIC_PROGRESS,
            video_id,
            encode(
                progress_event(
                    video_id, job_id, "failed", 0, 0, message, result.tenant, analysis_id
                )
            ),
        )
        self._publish(names.TOPIC_RESULTS, video_id, encode(result))
        if self._lease is not None:
            # Failed for good: a duplicate may try again; only this job's own marker goes.
            self._lease.release()
            self._lease = self._work = None
        return Disposition.COMMIT

    def _progress_fn(
        self,
        video_id: str,
        job_id: str,
        tenant: str | None = None,
        analysis_id: str | None = None,
        watch: CancelWatch | None = None,
    ) -> Callable[[str, int, int, str], None]:
        """Reports progress, and is where a job stops between chunks: handed back when the
        worker shuts down, failed when ``watch`` finds the user's cancel marker."""

        def report(stage: str, done: int, total: int, message: str) -> None:
            if self.cancel.is_set():
                raise JobCancelled("worker is shutting down")
            if watch is not None and watch.cancelled():
                raise CancelledByUser(CANCELLED_MESSAGE)
            try:
                self._publish_progress(
                    names.TOPIC_PROGRESS,
                    video_id,
                    encode(
                        progress_event(
                            video_id, job_id, stage, done, total, message, tenant, analysis_id
                        )
                    ),
                )
            except TransientError as exc:  # progress is best effort; results are not
                log.warning("progress event not sent: %s", exc)

        return report


def _analysis(event: IngestEvent) -> str | None:
    """The later analysis an event asks for, as results and progress name it (None: the
    video's first analysis)."""
    return None if event.analysis is None else event.analysis.id


def _log_decision(
    decision: policy.Decision, exc: BaseException | None, ids: dict[str, str]
) -> None:
    reason = policy.Reason
    code = getattr(exc, "code", None)
    if decision.reason is reason.CIRCUIT_OPEN:
        log.info(
            "model circuit open; job waits %.1f s before a probe", decision.retry_after_s, extra=ids
        )
    elif decision.reason is reason.CANCELLED:
        log.info("job handed back unfinished (shutting down)", extra=ids)
    elif decision.reason is reason.USER_CANCELLED:
        log.info("job cancelled by the user", extra=ids)
    elif decision.reason is reason.BAD_INPUT:
        log.warning("job failed permanently: %s: %s", code, exc, extra=ids)
    elif decision.reason is reason.OUTAGE:
        log.warning(
            "model endpoint failing (%s); circuit open for %.1f s: %s",
            code,
            decision.retry_after_s,
            exc,
            extra=ids,
        )
    elif decision.reason is reason.TRANSIENT:
        log.warning("job hit a transient error, will retry: %s: %s", code, exc, extra=ids)
    elif decision.reason is reason.DEADLINE_PASSED:
        log.error("job gave up after the retry deadline: %s: %s", code, exc, extra=ids)
    else:
        log.error("job crashed", exc_info=exc, extra=ids)
