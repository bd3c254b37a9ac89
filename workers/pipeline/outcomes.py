"""Build the events a finished or failed job announces (pure)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from contracts import DlqRecord, IngestEvent, ProgressEvent, ResultEvent, wrap_original
from vidloc.tenancy import tenant_of_key
from workers.pipeline.job import JobOutcome


def result_event_id(job_id: str, status: str) -> str:
    """Deterministic, so a replayed job re-announces an identical event instead of a new one."""
    return f"res-{hashlib.sha256(f'{job_id}:{status}'.encode()).hexdigest()[:24]}"


def succeeded_result(event: IngestEvent, job_id: str, outcome: JobOutcome) -> ResultEvent:
    timeline = outcome.timeline
    doc: dict[str, Any] = {
        "schema": "vidloc.result.v1",
        "event_id": result_event_id(job_id, "succeeded"),
        "video_id": event.effective_video_id,
        "job_id": job_id,
        "status": "succeeded",
        "tenant": tenant_of_key(event.source.key),
        "analysis_id": None if event.analysis is None else event.analysis.id,
        "source": {"bucket": event.source.bucket, "key": event.source.key},
        "timeline": {"bucket": outcome.timeline_bucket, "key": outcome.timeline_key},
        "summary": {"events": len(timeline.events), "duration_s": timeline.video.duration_s},
        "usage": {
            "prompt_tokens": outcome.usage.prompt_tokens,
            "completion_tokens": outcome.usage.completion_tokens,
            "requests": outcome.usage.requests,
            "cost": outcome.cost,
            "currency": timeline.usage.currency,
        },
        "localizer": timeline.localizer,
        # The timeline's warnings, so a user who only reads results still hears them.
        "warnings": [w.model_dump(mode="json", exclude_none=True) for w in timeline.warnings],
        "created_at": datetime.now(UTC).isoformat(),
    }
    return ResultEvent.model_validate(doc)


def failed_result(
    *,
    video_id: str,
    job_id: str,
    bucket: str | None,
    key: str | None,
    code: str,
    message: str,
    analysis_id: str | None = None,
) -> ResultEvent:
    """``bucket``/``key`` are None when the message was too broken to name its object;
    ``analysis_id`` names a later analysis (None: the first)."""
    doc: dict[str, Any] = {
        "schema": "vidloc.result.v1",
        "event_id": result_event_id(job_id, "failed"),
        "video_id": video_id,
        "job_id": job_id,
        "status": "failed",
        "error": {"code": code, "message": message},
        "summary": {"events": 0, "duration_s": 0.0},
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0},
        "analysis_id": analysis_id,
        "created_at": datetime.now(UTC).isoformat(),
    }
    if bucket and key:
        doc["source"] = {"bucket": bucket, "key": key}
        doc["tenant"] = tenant_of_key(key)
    return ResultEvent.model_validate(doc)


def dlq_record(
    *,
    raw: bytes,
    topic: str,
    partition: int,
    offset: int,
    code: str,
    message: str,
    video_id: str,
    job_id: str,
    max_original_bytes: int,
) -> DlqRecord:
    """The dead letter for ``raw``; an original over ``max_original_bytes`` is cut and flagged,
    so the record always fits on the bus even when the original barely did."""
    truncated = len(raw) > max_original_bytes
    original, encoding = wrap_original(raw[:max_original_bytes] if truncated else raw)
    doc: dict[str, Any] = {
        "schema": "vidloc.dlq.v1",
        "video_id": video_id,
        "job_id": job_id,
        "original": original,
        "original_encoding": encoding,
        "error": {"code": code, "message": message},
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "failed_at": datetime.now(UTC).isoformat(),
    }
    if truncated:
        doc["original_truncated"] = True
        doc["original_bytes"] = len(raw)
        doc["original_sha256"] = hashlib.sha256(raw).hexdigest()
    return DlqRecord.model_validate(doc)


def progress_event(
    video_id: str,
    job_id: str,
    stage: str,
    done: int,
    total: int,
    message: str,
    tenant: str | None = None,
    analysis_id: str | None = None,
) -> ProgressEvent:
    return ProgressEvent.model_validate(
        {
            "schema": "vidloc.progress.v1",
            "event_id": f"prg-{job_id}-{stage}-{done}",
            "video_id": video_id,
            "job_id": job_id,
            "tenant": tenant,
            "analysis_id": analysis_id,
            "stage": stage,
            "chunks_done": done,
            "chunks_total": total,
            "message": message[:500],
            "at": datetime.now(UTC).isoformat(),
        }
    )
