"""Idempotent work, not just idempotent output: should this job run at all? (pure)

A flood of ingest events for one object (500 distinct event ids, or one event id 20 times) used
to run as many full jobs. Now each job first looks up the *work* it would do, identified by what
determines its timeline: the video id it is stored under, the object version (bucket, key,
etag) and the options. A marker per work item, kept next to the timelines, says it is running
(and by which job) or done (with the result it announced). From that marker:

::

    no marker, or a stale "running" one (its worker died) ..... RUN (and mark it running)
    "running" by this same job (a retry, a hand-back) .......... RUN (its checkpoints resume it)
    "running" by another job, fresh ............................ WAIT (the loop retries later)
    "done" ..................................................... ANSWER from the stored result

WAIT is the per-object cap: one job per work item at a time, fleet-wide, so duplicates never
compute in parallel. An ANSWER announces a result of this job's own ids (its sender matches
``job_id``) pointing at the same timeline, with zero usage (nothing was spent) and a
``duplicate_work`` warning naming the job that did the work; for the same event id (same job id)
it is the stored result event itself, byte for byte the same ids, as the contract allows replays.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from contracts import IngestEvent, JobWarning, ResultEvent
from vidloc import names
from workers.pipeline.outcomes import result_event_id

MARKER_SCHEMA = "vidloc.work.v1"
MARKER_PREFIX = "work"
# A "running" marker older than this is taken for a dead worker's and run over. A job renews its
# marker every RENEW_FRACTION of it while it runs and until its result is committed, so only a
# worker that stopped (or cannot reach the store for that long) loses the work to a duplicate.
RUNNING_LEASE_S = 1800.0
RENEW_FRACTION = 1 / 3
# How long a duplicate waits before it looks again while the work is running elsewhere.
WAIT_S = 10.0
# ... and while the work is finished in this worker, its result waiting for its commit (then
# "done" is written): moments, not a job's length.
SETTLING_WAIT_S = 0.5

State = Literal["running", "done"]


class Verdict(enum.Enum):
    RUN = "run"
    WAIT = "wait"
    ANSWER = "answer"


@dataclass(frozen=True)
class WorkMarker:
    state: State
    job_id: str
    updated_at: float  # epoch seconds
    result: bytes | None = None  # the encoded result event, when done


def work_id(event: IngestEvent, localizer: str) -> str:
    """Same video id, object version, localizer and options -> same id; anything else differs."""
    doc = {
        "video_id": event.effective_video_id,
        "bucket": event.source.bucket,
        "key": event.source.key,
        "etag": event.source.etag.strip().strip('"').lower(),  # quoted or not: one version
        "localizer": localizer,
        "options": event.options.model_dump(mode="json", exclude_none=True),
    }
    if event.analysis is not None:
        # Two analyses asking the same question are still two timelines; the first analysis
        # keeps the ids it always had.
        doc["analysis"] = event.analysis.id
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "w-" + hashlib.sha256(blob.encode()).hexdigest()[:32]


def marker_key(video_id: str, work: str, tenant: str | None = None) -> str:
    """Under the tenant's prefix in the timeline bucket, beside its timelines."""
    return f"{names.tenant_root(tenant)}{MARKER_PREFIX}/{video_id}/{work}.json"


def may_write(marker: WorkMarker | None, job_id: str) -> bool:
    """Whether ``job_id`` may replace (renew, finish) or remove the marker it read: only while
    it is this job's own ``running`` lease, or none (a lost write, recreated). Never another
    job's lease, nor a ``done`` one: a job that lost its lease leaves the work to its holder."""
    return marker is None or (marker.state == "running" and marker.job_id == job_id)


def decide(marker: WorkMarker | None, *, job_id: str, now: float, lease_s: float) -> Verdict:
    if marker is None:
        return Verdict.RUN
    if marker.state == "done" and marker.result is not None:
        return Verdict.ANSWER
    if marker.job_id == job_id or now - marker.updated_at >= lease_s:
        return Verdict.RUN
    return Verdict.WAIT


def encode_marker(marker: WorkMarker) -> bytes:
    doc: dict[str, Any] = {
        "schema": MARKER_SCHEMA,
        "state": marker.state,
        "job_id": marker.job_id,
        "updated_at": marker.updated_at,
    }
    if marker.result is not None:
        doc["result"] = json.loads(marker.result)
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def decode_marker(data: bytes) -> WorkMarker | None:
    """The marker, or None for anything unreadable (then the work simply runs)."""
    try:
        doc = json.loads(data)
        if doc.get("schema") != MARKER_SCHEMA or doc.get("state") not in ("running", "done"):
            return None
        result = doc.get("result")
        return WorkMarker(
            state=doc["state"],
            job_id=str(doc["job_id"]),
            updated_at=float(doc["updated_at"]),
            result=None if result is None else json.dumps(result).encode(),
        )
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return None


def answer_from(stored: ResultEvent, job_id: str) -> ResultEvent:
    """The result a duplicate announces: its own ids, the stored timeline, nothing spent."""
    if stored.job_id == job_id:
        return stored  # the same event again: the identical event, as any replay
    warning = JobWarning(
        code="duplicate_work",
        message=(
            f"same object version and options as job {stored.job_id}; answered from its "
            "stored result, nothing was run again"
        ),
    )
    return stored.model_copy(
        update={
            "job_id": job_id,
            "event_id": result_event_id(job_id, stored.status),
            "usage": stored.usage.model_copy(
                update={
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "requests": 0,
                    "cost": 0.0,
                    "refine": None,
                }
            ),
            "warnings": [*stored.warnings, warning],
            "created_at": datetime.now(UTC),
        }
    )
