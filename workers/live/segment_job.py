"""One segment of a live stream: localize it as a chunk of its stream, grow the stream timeline.

The handler sends ingest events with a ``stream`` part here instead of to the plain job. The
segment is localized by the plain ``JobRunner`` (download, probe, sample, localize, merge; its
checkpoints make a redelivery free), as a video of its own (``<stream>.<seq>.<version>``); its
events are then folded into the stream's one timeline (workers/live/fold.py), stored under the
stream id, and a result marked ``partial`` (or the final one) announces the update.

No lost updates by single-writer ordering, not conditional writes (docs/streams.md): segments
are keyed by stream id, so they share a partition, and the consumer never runs two records of
one key at once, so the read-fold-write below never races another writer of the same stream.
A redelivered segment is recognised by its sequence number and re-announced, not re-folded.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from contracts import IngestEvent, Timeline, decode_timeline, encode
from contracts.result import ResultEvent
from contracts.stream import StreamSegment
from vidloc import names
from vidloc.errors import InputError, ObjectMissing
from vidloc.metrics import Metrics
from vidloc.tenancy import tenant_of_key
from workers.live.fold import Fold, fold_segment
from workers.pipeline.job import JobRunner, JobStore, ProgressFn
from workers.pipeline.outcomes import progress_event, result_event_id

log = logging.getLogger(__name__)

Publish = Any  # Callable[[str, str, bytes], None]; kept loose to match the handler's
# skip_to_live's lag limit when the stream does not say: three segments behind live. One
# segment of lag is normal (a segment is announced when it ends); three means falling behind.
DEFAULT_LAG_SEGMENTS = 3.0
# Join slack on top of one sample period: the decoder's frame may sit a frame off the plan.
JOIN_SLACK_S = 0.25

_GAUGES: weakref.WeakKeyDictionary[CollectorRegistry, Gauge] = weakref.WeakKeyDictionary()
_GAUGES_LOCK = threading.Lock()


def _lag_gauge(metrics: Metrics) -> Gauge:
    """``vidloc_stream_lag_seconds{stream}``: one per registry, however many handlers share it."""
    with _GAUGES_LOCK:
        gauge = _GAUGES.get(metrics.registry)
        if gauge is None:
            gauge = Gauge(
                "vidloc_stream_lag_seconds",
                "Wall-clock age of a live stream's segment when the worker reached it",
                ["stream"],
                registry=metrics.registry,
            )
            _GAUGES[metrics.registry] = gauge
        return gauge


def lag_limit_s(segment: StreamSegment) -> float:
    if segment.max_lag_s is not None:
        return segment.max_lag_s
    return max(segment.duration_s, 1.0) * DEFAULT_LAG_SEGMENTS


def should_skip(segment: StreamSegment, lag_s: float) -> bool:
    """skip_to_live drops a segment that is too old; the end marker is never skipped."""
    return (
        segment.policy == "skip_to_live"
        and segment.duration_s > 0
        and segment.seq > 0  # the first segment makes the timeline: always localized
        and lag_s > lag_limit_s(segment)
    )


class StreamJob:
    """Folds segments into stream timelines; shares the plain job's runner and store."""

    def __init__(
        self,
        runner: JobRunner,
        store: JobStore,
        publish: Publish,
        *,
        timeline_bucket: str,
        metrics: Metrics | None = None,
        wall_clock: Any = time.time,
    ) -> None:
        self._runner = runner
        self._store = store
        self._publish = publish
        self._bucket = timeline_bucket
        self._metrics = metrics or Metrics()
        self._now = wall_clock

    @classmethod
    def from_runner(
        cls, runner: JobRunner, publish: Publish, metrics: Metrics | None = None
    ) -> StreamJob:
        # The runner already holds the store and settings the worker built at its entrypoint.
        return cls(
            runner,
            runner.store,
            publish,
            timeline_bucket=runner.settings.timeline_bucket,
            metrics=metrics,
        )

    def run(self, event: IngestEvent, job_id: str, progress: ProgressFn) -> ResultEvent:
        segment = event.stream
        assert segment is not None, "StreamJob.run is for stream segments"
        tenant = tenant_of_key(event.source.key)
        key = names.timeline_key(segment.stream_id, tenant)
        current = self._load(key)
        state = current.stream if current is not None else None
        ids = {"video_id": segment.stream_id, "job_id": job_id}
        if current is not None and state is not None and segment.seq <= state.last_seq:
            log.info("segment %d was folded in before; re-announcing", segment.seq, extra=ids)
            result = self._result(event, job_id, current, key, Fold(tuple(current.events), state))
            self._publish(names.TOPIC_RESULTS, segment.stream_id, encode(result))
            return result

        end_wall = segment.wall_clock.timestamp() + segment.duration_s
        lag = max(0.0, self._now() - end_wall)
        _lag_gauge(self._metrics).labels(segment.stream_id).set(lag)
        skip = should_skip(segment, lag)
        progress(
            "localizing",
            0,
            1,
            f"stream {segment.stream_id} segment {segment.seq}: lag {lag:.1f} s"
            + (f", over {lag_limit_s(segment):.1f} s: skipped to live" if skip else ""),
        )
        pieces: list[Any] = []
        seg_timeline: Timeline | None = None
        if segment.duration_s > 0 and not skip:
            # The segment as a short video of its own: own checkpoints, own timeline object.
            as_video = event.model_copy(
                update={"video_id": segment_video_id(event), "stream": None}
            )
            outcome = self._runner.run(as_video, job_id, progress)
            seg_timeline = outcome.timeline
            pieces = list(seg_timeline.events)
        if current is None and seg_timeline is None:
            raise InputError(
                f"stream {segment.stream_id}: segment {segment.seq} has no timeline to join",
                code="stream_not_started",
            )
        base = seg_timeline or current
        assert base is not None
        fps = base.sampling.sample_fps
        fold = fold_segment(
            current.events if current is not None else (),
            state,
            segment,
            pieces,
            join_s=1.0 / fps + JOIN_SLACK_S,
            lag_s=lag,
            skipped=skip,
            source=event.source,
        )
        timeline = self._timeline(event, job_id, base, current, fold)
        # Last look before writing: a worker whose partition moved away stops here (the
        # progress callback raises once the loop cancels), so it cannot overwrite the fold of
        # a later segment that the partition's new owner already stored (docs/streams.md).
        progress("storing", 1, 1, f"storing {key}")
        self._store.put_bytes(self._bucket, key, encode(timeline))
        result = self._result(event, job_id, timeline, key, fold, skipped=skip)
        self._publish(names.TOPIC_RESULTS, segment.stream_id, encode(result))
        self._publish(
            names.TOPIC_PROGRESS,
            segment.stream_id,
            encode(
                progress_event(
                    segment.stream_id,
                    job_id,
                    "done",
                    1,
                    1,
                    f"stream {segment.stream_id} segment {segment.seq} folded: "
                    f"{len(fold.new_ids)} new, {len(fold.extended_ids)} extended, lag {lag:.1f} s",
                    tenant,
                )
            ),
        )
        log.info(
            "stream segment %d folded: %d new, %d extended, lag %.1f s%s%s",
            segment.seq,
            len(fold.new_ids),
            len(fold.extended_ids),
            lag,
            ", skipped" if skip else "",
            ", stream ended" if segment.end_of_stream else "",
            extra=ids,
        )
        return result

    def _load(self, key: str) -> Timeline | None:
        try:
            return decode_timeline(self._store.get_bytes(self._bucket, key))
        except ObjectMissing:
            return None

    def _timeline(
        self, event: IngestEvent, job_id: str, base: Timeline, current: Timeline | None, fold: Fold
    ) -> Timeline:
        """The stream timeline: ``base`` (this segment's, or the stream's when nothing was
        localized) with the stream's events, state and running totals."""
        sampling, usage = base.sampling, base.usage
        if current is not None and base is not current:
            sampling = sampling.model_copy(
                update={
                    "frames": current.sampling.frames + base.sampling.frames,
                    "chunks": current.sampling.chunks + base.sampling.chunks,
                }
            )
            usage = current.usage.model_copy(
                update={
                    "prompt_tokens": current.usage.prompt_tokens + base.usage.prompt_tokens,
                    "completion_tokens": current.usage.completion_tokens
                    + base.usage.completion_tokens,
                    "cost": current.usage.cost + base.usage.cost,
                    "requests": (current.usage.requests or 0) + (base.usage.requests or 0),
                    "refine": None,
                }
            )
        return base.model_copy(
            update={
                "video_id": fold.state.stream_id,
                "job_id": job_id,
                "source": event.source,
                "video": base.video.model_copy(update={"duration_s": fold.state.covered_s}),
                "sampling": sampling,
                "events": list(fold.events),
                "usage": usage,
                "stream": fold.state,
                "created_at": datetime.now(UTC),
            }
        )

    def _result(
        self,
        event: IngestEvent,
        job_id: str,
        timeline: Timeline,
        key: str,
        fold: Fold,
        *,
        skipped: bool = False,
    ) -> ResultEvent:
        state = fold.state
        # The segment this answers (a re-announcement names the redelivered one).
        seq = event.stream.seq if event.stream is not None else state.last_seq
        changed = set(fold.new_ids) | set(fold.extended_ids)
        return ResultEvent.model_validate(
            {
                "schema": "vidloc.result.v1",
                "event_id": result_event_id(job_id, "succeeded"),
                "video_id": state.stream_id,
                "job_id": job_id,
                "status": "succeeded",
                "tenant": tenant_of_key(event.source.key),
                "source": {"bucket": event.source.bucket, "key": event.source.key},
                "timeline": {"bucket": self._bucket, "key": key},
                "summary": {"events": len(timeline.events), "duration_s": state.covered_s},
                "usage": timeline.usage.model_dump(mode="json", exclude_none=True),
                "localizer": timeline.localizer,
                "created_at": datetime.now(UTC).isoformat(),
                "partial": not state.ended,
                "stream": {
                    "stream_id": state.stream_id,
                    "seq": seq,
                    "lag_s": state.lag_s,
                    "skipped": skipped,
                    "ended": state.ended,
                    "new_events": list(fold.new_ids),
                    "extended_events": list(fold.extended_ids),
                    "events": [
                        e.model_dump(mode="json", exclude_none=True)
                        for e in timeline.events
                        if e.id in changed
                    ],
                },
            }
        )


def segment_video_id(event: IngestEvent) -> str:
    """``<stream-id>.<seq>.<version tag>``: the segment as a video of its own, one per object
    version, so another tenant's stream of the same id (or a sequence number reused with other
    content) never resumes this one's checkpoints or overwrites its timeline."""
    assert event.stream is not None
    tail = f".{event.stream.seq}.{event.version_tag}"
    # SafeId allows 128 characters; the sequence number and tag must survive a long stream id.
    return event.stream.stream_id[: 128 - len(tail)] + tail
