"""Chunk checkpoints as plain JSON documents, so a restarted job does not pay the model twice.

A checkpoint is written after a chunk's localizer answer is in; it is keyed by tenant, video,
job and chunk index (see ``vidloc.names.checkpoint_key``) and is only valid for the same sampling
plan and object version (bucket, key, etag: the key names the tenant), which
``plan_fingerprint`` captures.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from workers.types import AnswerReport, Chunk, ChunkResult, DetectedEvent, TokenTally

CHECKPOINT_SCHEMA = "vidloc.checkpoint.v1"


def plan_fingerprint(localizer: str, chunks: Sequence[Chunk], extra: Mapping[str, Any]) -> str:
    """A short hash of everything that makes one chunk's answer reusable."""
    doc = {
        "localizer": localizer,
        "chunks": [[c.index, c.start_s, c.end_s, list(c.times)] for c in chunks],
        "extra": dict(extra),
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def encode_checkpoint(result: ChunkResult, fingerprint: str) -> bytes:
    doc = {
        "schema": CHECKPOINT_SCHEMA,
        "fingerprint": fingerprint,
        "chunk_index": result.chunk_index,
        "rejected_events": result.rejected_events,
        "answer": {
            "answers": result.answer.answers,
            "unusable": result.answer.unusable,
            "reasked": result.answer.reasked,
            "relative_shifted": result.answer.relative_shifted,
            "failed": result.answer.failed,
            "dropped": [list(pair) for pair in result.answer.dropped],
        },
        "usage": {
            "prompt_tokens": result.usage.prompt_tokens,
            "completion_tokens": result.usage.completion_tokens,
            "requests": result.usage.requests,
            "cached_tokens": result.usage.cached_tokens,
        },
        "events": [
            {
                "label": e.label,
                "start_s": e.start_s,
                "end_s": e.end_s,
                "description": e.description,
                "confidence": e.confidence,
                "source": e.source,
            }
            for e in result.events
        ],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def checkpoint_usage(data: bytes) -> TokenTally | None:
    """What the chunk a checkpoint holds cost, whatever plan it was made under (a cancelled
    job's bill); None when it is unreadable."""
    try:
        doc = json.loads(data)
        if doc.get("schema") != CHECKPOINT_SCHEMA:
            return None
        usage = doc["usage"]
        return TokenTally(
            int(usage["prompt_tokens"]),
            int(usage["completion_tokens"]),
            int(usage.get("requests", 0)),
            int(usage.get("cached_tokens", 0)),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def decode_checkpoint(data: bytes, fingerprint: str) -> ChunkResult | None:
    """The stored chunk result, or None when it is unreadable or from another plan."""
    try:
        doc = json.loads(data)
        if doc.get("schema") != CHECKPOINT_SCHEMA or doc.get("fingerprint") != fingerprint:
            return None
        usage = doc["usage"]
        return ChunkResult(
            chunk_index=int(doc["chunk_index"]),
            events=tuple(
                DetectedEvent(
                    label=str(e["label"]),
                    start_s=float(e["start_s"]),
                    end_s=float(e["end_s"]),
                    description=str(e.get("description", "")),
                    confidence=None if e.get("confidence") is None else float(e["confidence"]),
                    source=str(e.get("source", "")),
                )
                for e in doc["events"]
            ),
            usage=TokenTally(
                int(usage["prompt_tokens"]),
                int(usage["completion_tokens"]),
                int(usage.get("requests", 0)),
                int(usage.get("cached_tokens", 0)),
            ),
            rejected_events=int(doc.get("rejected_events", 0)),
            answer=_answer_report(doc.get("answer") or {}),
        )
    except (ValueError, KeyError, TypeError):
        return None


def _answer_report(doc: Mapping[str, Any]) -> AnswerReport:
    """How the chunk's answers were read; a checkpoint from before this was kept reads as clean."""
    return AnswerReport(
        answers=int(doc.get("answers", 0)),
        unusable=int(doc.get("unusable", 0)),
        reasked=int(doc.get("reasked", 0)),
        relative_shifted=int(doc.get("relative_shifted", 0)),
        failed=bool(doc.get("failed", False)),
        dropped=tuple((str(reason), int(count)) for reason, count in doc.get("dropped", [])),
    )
