"""``GET /search``: one tenant's events across all its timelines, best first (docs/search.md).

The index is this replica's own file (vidloc.search), synced from the stored timelines when the
app starts and kept current from the results the status feed reads.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, StringConstraints

from contracts.common import SAFE_ID_PATTERN
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.auth import Reader
from vidloc.api.errors import ApiError
from vidloc.api.models import ErrorResponse
from vidloc.search import (
    Indexer,
    QueryError,
    SearchIndex,
    group_by_video,
    hit_document,
    index_path,
    make_cursor,
    make_request,
)
from vidloc.settings import Settings
from vidloc.viewer.search_page import render_search_page

log = logging.getLogger(__name__)

MAX_FILTER_VALUES = 50
AnalysisName = Annotated[str, StringConstraints(pattern=f"^{SAFE_ID_PATTERN}$")]


class SearchHit(BaseModel):
    video_id: str
    analysis: str = Field(
        description="the analysis whose timeline holds the event: 'default' for the video's "
        "first, else the id from POST /videos/{id}/analyses"
    )
    job_id: str = Field(description="the job that wrote that timeline")
    event_id: str
    label: str
    start_s: float
    end_s: float
    description: str
    confidence: float | None = None
    score: float = Field(description="BM25 relevance: higher is better; compare within a query")
    thumbnail_url: str | None = Field(
        default=None, description="the API path of the event's thumbnail; null when it has none"
    )
    clip_url: str = Field(description="the API path of the event's clip")


class SearchGroup(BaseModel):
    video_id: str
    analysis: str
    score: float = Field(description="the best score among the video's moments")
    moments: list[SearchHit]


class IndexState(BaseModel):
    ready: bool = Field(description="false until this replica's first sync from S3 finished")
    window_full: bool = Field(
        description="more matches than the index ranks (its newest 2000): add words or filters"
    )


class SearchResponse(BaseModel):
    query: str
    terms: list[str] = Field(description="the words searched for, as the index reads them")
    count: int = Field(description="hits on this page")
    results: list[SearchHit] = Field(description="this page's hits, best first (flat)")
    groups: list[SearchGroup] | None = Field(
        default=None, description="with group=video: this page's hits by video"
    )
    next_cursor: str | None = Field(default=None, description="pass as cursor for the next page")
    index: IndexState


@dataclass
class SearchService:
    index: SearchIndex
    indexer: Indexer
    store_origin: str = ""  # where the search page's clips play from (its CSP's media-src)


def build_search(settings: Settings, store: ObjectStore) -> SearchService:
    """The index at its path; where that cannot be written (an image's read-only working
    directory), in the temp directory instead: it is a copy, rebuilt from S3 either way."""
    path = index_path(settings)
    try:
        index = SearchIndex(path)
    except (OSError, sqlite3.Error) as exc:
        fallback = Path(tempfile.gettempdir()) / "vidloc-search" / path.name
        log.warning("search index: cannot use %s (%s); using %s", path, exc, fallback)
        index = SearchIndex(fallback)
    origin = urlsplit(settings.s3_endpoint)
    return SearchService(
        index,
        Indexer(index, store, settings.timeline_bucket),
        store_origin=f"{origin.scheme}://{origin.netloc}",
    )


def _service(request: Request) -> SearchService:
    found: SearchService = request.app.state.search
    return found


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (400, "the query is empty, too long, or a cursor is not this query's"),
        (401, "no API key, or not a valid one"),
        (403, "the API key lacks the scope this route needs"),
        (404, "a video filter names an unknown video (or another tenant's)"),
        (414, "URL longer than VIDLOC_API_MAX_URL_BYTES"),
        (422, "invalid parameters"),
        (429, "rate limited (see Retry-After)"),
        (500, "internal error"),
    )
}

router = APIRouter()


@router.get("/search", response_model=SearchResponse, tags=["search"], responses=_ERRORS)
def search(
    service: Annotated[SearchService, Depends(_service)],
    caller: Reader,
    q: Annotated[str, Query(description="words to find in labels and descriptions")] = "",
    label: Annotated[list[str] | None, Query(description="exact label (repeatable)")] = None,
    video: Annotated[list[str] | None, Query(description="only these video ids")] = None,
    analysis: Annotated[
        list[AnalysisName] | None,
        Query(description="only these analyses ('default': each video's first; repeatable)"),
    ] = None,
    since: Annotated[datetime | None, Query(description="analysed at or after")] = None,
    until: Annotated[datetime | None, Query(description="analysed at or before")] = None,
    min_confidence: Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    group: Annotated[Literal["flat", "video"], Query()] = "flat",
    match: Annotated[Literal["all", "any"], Query(description="every word, or any")] = "all",
) -> SearchResponse:
    """Full-text search (BM25) over the labels and descriptions of the caller's tenant's
    events, with exact filters; ``group=video`` groups a page's hits by video."""
    labels, videos, analyses = tuple(label or ()), tuple(video or ()), tuple(analysis or ())
    if max(len(labels), len(videos), len(analyses)) > MAX_FILTER_VALUES:
        raise ApiError(
            400, "invalid_query", f"at most {MAX_FILTER_VALUES} labels, videos and analyses"
        )
    try:
        request = make_request(
            q,
            mode=match,
            labels=labels,
            video_ids=videos,
            analyses=analyses,
            since=since,
            until=until,
            min_confidence=min_confidence,
            limit=limit,
            cursor=cursor,
            group=group,
        )
    except QueryError as exc:
        raise ApiError(400, exc.code, str(exc)) from exc
    for video_id in videos:
        # Unknown and another tenant's ids answer alike, as on every other route.
        if not service.index.has_video(caller.tenant, video_id):
            raise ApiError(404, "video_not_found", f"no video {video_id!r}")
    page = service.index.search(caller.tenant, request)
    docs = [hit_document(hit) for hit in page.hits]
    return SearchResponse(
        query=request.text,
        terms=request.terms,
        count=len(docs),
        results=[SearchHit(**doc) for doc in docs],
        groups=[SearchGroup(**g) for g in group_by_video(page.hits)] if group == "video" else None,
        next_cursor=(
            make_cursor(request.offset + request.limit, request.fingerprint(), page.window)
            if page.more
            else None
        ),
        index=IndexState(ready=service.indexer.ready.is_set(), window_full=page.window_full),
    )


@router.get("/search/view", response_class=HTMLResponse, include_in_schema=False)
def search_page(service: Annotated[SearchService, Depends(_service)]) -> HTMLResponse:
    """The viewer's search page: no data of its own (its script calls /search with the key
    the tab holds), so it is open, like /viewer/{video_id}."""
    return HTMLResponse(
        render_search_page(service.store_origin), headers={"Cache-Control": "no-store"}
    )
