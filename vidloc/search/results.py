"""Search hits as callers see them: flat, or grouped by video (pure)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from vidloc.search.index import Hit


def thumbnail_path(video_id: str, event_id: str) -> str:
    """The API route of an event's thumbnail (relative to the API's base URL)."""
    return f"/videos/{quote(video_id, safe='')}/events/{quote(event_id, safe='')}/thumbnail"


def hit_document(hit: Hit) -> dict[str, Any]:
    return {
        "video_id": hit.video_id,
        "analysis": hit.analysis,
        "event_id": hit.event_id,
        "label": hit.label,
        "start_s": hit.start_s,
        "end_s": hit.end_s,
        "description": hit.description,
        "confidence": hit.confidence,
        "score": hit.score,
        "thumbnail_url": thumbnail_path(hit.video_id, hit.event_id) if hit.has_thumbnail else None,
    }


def group_by_video(hits: list[Hit]) -> list[dict[str, Any]]:
    """One group per video, in the order of each video's best hit; its moments by score."""
    groups: dict[str, dict[str, Any]] = {}
    for hit in hits:
        group = groups.setdefault(
            hit.video_id,
            {"video_id": hit.video_id, "analysis": hit.analysis, "score": hit.score, "moments": []},
        )
        group["moments"].append(hit_document(hit))
    return list(groups.values())
