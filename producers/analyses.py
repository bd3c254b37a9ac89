"""Analyses asked of an analysed video (``vidloc.ingest.v2``): the question, the record each ask
leaves beside the video's timelines, and the ingest event that starts it.

A video's first analysis is the job that made its timeline (id ``default``). A later one asks a
new question of the same object version: the API (``POST /videos/{id}/analyses``) and
``vidloc ask`` both check the question and the video the same way (:func:`question_problem`,
:func:`refusal`), write an :class:`AnalysisRecord` to
``<tenant root>timelines/<video>/analyses/<analysis>/request.json`` and publish the event
(both built by :func:`new_analysis`, saved then published by :func:`start_analysis`). The
record is what lists an analysis (its question, when it was asked) before any worker has
reported on it; its timeline lands beside it.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from contracts import (
    INGEST_V2,
    AnalysisRequest,
    ContractError,
    IngestEvent,
    IngestOptions,
    SourceObject,
    Timeline,
    derive_analysis_id,
)
from contracts.ingest import DEFAULT_ANALYSIS_ID
from vidloc import names
from vidloc.adapters.object_store import ObjectStore
from vidloc.errors import ObjectMissing

__all__ = [
    "MAX_PROMPT_CHARS",
    "RECORD_NAME",
    "AnalysisRecord",
    "Refusal",
    "analysis_ids_in",
    "ask_event_id",
    "load_record",
    "load_records",
    "new_analysis",
    "question_options",
    "question_problem",
    "record_key",
    "refusal",
    "save_record",
    "start_analysis",
]

log = logging.getLogger(__name__)

# IngestOptions.prompt's bound, said where both front ends check it.
MAX_PROMPT_CHARS = 8000
RECORD_NAME = "request.json"
_TIMELINE_NAME = "timeline.json"


class AnalysisRecord(BaseModel):
    """What one ask asked: stored once, when it is asked (never rewritten)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    analysis_id: str
    video_id: str
    tenant: str | None = None
    event_id: str
    job_id: str
    prompt: str | None = None
    labels: list[str] = []
    options: IngestOptions = IngestOptions()
    source: SourceObject
    key_id: str | None = None  # the API key that asked (None: the CLI, or no keys configured)
    created_at: datetime

    def same_question(self, options: IngestOptions) -> bool:
        return self.options == options


@dataclass(frozen=True)
class Refusal:
    """Why an analysis cannot be asked now: ``code`` is stable (the API's error code)."""

    code: str
    message: str


def question_problem(prompt: str | None, labels: Sequence[str]) -> Refusal | None:
    """An analysis asks a prompt or labels (or both); a prompt is at most MAX_PROMPT_CHARS."""
    if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
        return Refusal(
            "prompt_too_long",
            f"the prompt has {len(prompt)} characters; at most {MAX_PROMPT_CHARS} are allowed",
        )
    if not (prompt or "").strip() and not any(label.strip() for label in labels):
        return Refusal("empty_question", "an analysis asks a prompt or labels; both are empty")
    return None


def question_options(
    prompt: str | None, labels: Iterable[str], options: Mapping[str, Any] | IngestOptions
) -> IngestOptions:
    """The ingest options of an ask: ``options`` with the question in prompt and labels.
    Raises ContractError for a value the contract refuses."""
    given = (
        options.model_dump(exclude_unset=True)
        if isinstance(options, IngestOptions)
        else {k: v for k, v in options.items() if v is not None}
    )
    cleaned = [label.strip() for label in labels if label.strip()]
    if prompt is not None and prompt.strip():
        given["prompt"] = prompt
    else:
        given.pop("prompt", None)
    given["labels"] = cleaned
    try:
        return IngestOptions(**given)
    except ValidationError as exc:
        raise ContractError.from_validation(exc) from exc


def refusal(timeline: Timeline | None, *, running: bool) -> Refusal | None:
    """Whether the video whose first timeline is ``timeline`` can be asked a new question now.

    ``running``: a job of the video itself (its first analysis, or a re-run of it) has not
    finished. Its frames are not kept yet, so an ask now would decode the video a second time
    in parallel: the caller asks again when it is done. Later analyses of the video may run
    side by side (each reads the kept frames).
    """
    if running:
        return Refusal(
            "video_running", "the video's own job is still running; ask again when it finishes"
        )
    if timeline is None:
        return Refusal(
            "video_not_analysed",
            "the video has no timeline (its job failed or has not run): submit it again first",
        )
    if timeline.stream is not None:
        return Refusal("stream_not_analysable", "a live stream's timeline has no analyses")
    return None


def ask_event_id(tenant: str | None, video_id: str, idempotency_key: str | None) -> str:
    """The ingest event id of an ask. With an idempotency key, the same key (per tenant and
    video) is the same event, hence the same analysis id and job id: asking twice starts one
    analysis. Without one, every ask is its own analysis."""
    if idempotency_key is None:
        return f"ask-{uuid.uuid4()}"
    digest = hashlib.sha256(
        f"ask\x00{tenant or ''}\x00{video_id}\x00{idempotency_key}".encode()
    ).hexdigest()
    return f"ask-{digest[:32]}"


def new_analysis(
    source: SourceObject,
    *,
    video_id: str,
    tenant: str | None,
    options: IngestOptions,
    event_id: str,
    now: datetime,
    key_id: str | None = None,
) -> tuple[IngestEvent, AnalysisRecord]:
    """One ask of ``options``' question of ``source`` (the object version the first analysis
    read, etag included: another upload under the key is not this video): its v2 ingest event
    and the record that lists it (``key_id``: the API key asking, None from the CLI)."""
    event = IngestEvent.model_validate(
        {
            "schema": INGEST_V2,
            "event_id": event_id,
            "video_id": video_id,
            "source": source,
            "tenant": tenant,
            "options": options,
            "analysis": AnalysisRequest(id=derive_analysis_id(event_id)),
            "submitted_at": now,
        }
    )
    record = AnalysisRecord(
        analysis_id=event.analysis_id,
        video_id=video_id,
        tenant=tenant,
        event_id=event_id,
        job_id=event.job_id,
        prompt=options.prompt,
        labels=list(options.labels),
        options=options,
        source=source,
        key_id=key_id,
        created_at=now,
    )
    return event, record


def record_key(video_id: str, analysis_id: str, tenant: str | None = None) -> str:
    return f"{names.analyses_prefix(video_id, tenant)}{analysis_id}/{RECORD_NAME}"


def save_record(store: ObjectStore, bucket: str, record: AnalysisRecord) -> bool:
    """Write ``record`` unless one is stored already for its analysis (False then: a repeat
    of an ask with the same idempotency key, or a race of two; nothing was written)."""
    key = record_key(record.video_id, record.analysis_id, record.tenant)
    data = record.model_dump_json().encode("utf-8")
    return store.put_bytes_if(bucket, key, data, etag=None) is not None


def start_analysis(
    store: ObjectStore, bucket: str, record: AnalysisRecord, publish: Callable[[], None]
) -> bool:
    """Save ``record``, then ``publish`` its event. False when the record was stored already
    (a repeat or a race of the same idempotency key: nothing is published, the first ask
    does). A failed publish removes the record (no worker would ever answer it) and raises."""
    if not save_record(store, bucket, record):
        return False
    try:
        publish()
    except Exception:
        store.delete(bucket, record_key(record.video_id, record.analysis_id, record.tenant))
        raise
    return True


def _decode(data: bytes, key: str) -> AnalysisRecord | None:
    try:
        return AnalysisRecord.model_validate_json(data)
    except ValidationError as exc:
        log.warning("unreadable analysis record %s: %s", key, exc)
        return None


def load_record(
    store: ObjectStore, bucket: str, video_id: str, analysis_id: str, tenant: str | None
) -> AnalysisRecord | None:
    key = record_key(video_id, analysis_id, tenant)
    try:
        return _decode(store.get_bytes(bucket, key), key)
    except ObjectMissing:
        return None


def analysis_ids_in(keys: Iterable[str], video_id: str, tenant: str | None) -> dict[str, set[str]]:
    """analysis id -> the names stored for it (``request.json``, ``timeline.json``, ...), from
    keys listed under the video's analyses prefix; other keys are ignored."""
    prefix = names.analyses_prefix(video_id, tenant)
    found: dict[str, set[str]] = {}
    for key in keys:
        if not key.startswith(prefix):
            continue
        aid, _, name = key[len(prefix) :].partition("/")
        if aid and aid != DEFAULT_ANALYSIS_ID and name:
            found.setdefault(aid, set()).add(name)
    return found


def load_records(
    store: ObjectStore, bucket: str, video_id: str, tenant: str | None
) -> tuple[dict[str, AnalysisRecord], set[str]]:
    """The video's later analyses: (records by analysis id, ids with a stored timeline).
    One LIST of the video's analyses prefix, then one GET per record."""
    listed = analysis_ids_in(
        store.list_keys(bucket, names.analyses_prefix(video_id, tenant)), video_id, tenant
    )
    records: dict[str, AnalysisRecord] = {}
    for aid, stored in listed.items():
        if RECORD_NAME in stored:
            record = load_record(store, bucket, video_id, aid, tenant)
            if record is not None and record.analysis_id == aid:
                records[aid] = record
    timelines = {aid for aid, stored in listed.items() if _TIMELINE_NAME in stored}
    return records, timelines
