"""Search hits as callers see them: flat, or grouped by video (pure)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from contracts import DEFAULT_ANALYSIS_ID
from vidloc.search.index import Hit


def event_path(video_id: str, event_id: str, analysis: str = DEFAULT_ANALYSIS_ID) -> str:
    """The API route of one event (relative to the API's base URL): a video's first analysis
    keeps its short route, a later one's events live under ``/analyses/{id}``."""
    video = f"/videos/{quote(video_id, safe='')}"
    if analysis != DEFAULT_ANALYSIS_ID:
        video += f"/analyses/{quote(analysis, safe='')}"
    return f"{video}/events/{quote(event_id, safe='')}"


def thumbnail_path(video_id: str, event_id: str, analysis: str = DEFAULT_ANALYSIS_ID) -> str:
    """The API route of an event's thumbnail."""
    return event_path(video_id, event_id, analysis) + "/thumbnail"


def hit_document(hit: Hit) -> dict[str, Any]:
    return {
        "video_id": hit.video_id,
        "analysis": hit.analysis,
        "job_id": hit.job_id,
        "event_id": hit.event_id,
        "label": hit.label,
        "start_s": hit.start_s,
        "end_s": hit.end_s,
        "description": hit.description,
        "confidence": hit.confidence,
        "score": hit.score,
        "thumbnail_url": (
            thumbnail_path(hit.video_id, hit.event_id, hit.analysis) if hit.has_thumbnail else None
        ),
        "clip_url": event_path(hit.video_id, hit.event_id, hit.analysis) + "/clip",
    }


def group_by_video(hits: list[Hit]) -> list[dict[str, Any]]:
    """One group per video and analysis, in the order of each one's best hit; its moments by
    score. Two analyses of one video are two groups: they answer two questions."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for hit in hits:
        group = groups.setdefault(
            (hit.video_id, hit.analysis),
            {"video_id": hit.video_id, "analysis": hit.analysis, "score": hit.score, "moments": []},
        )
        group["moments"].append(hit_document(hit))
    return list(groups.values())
