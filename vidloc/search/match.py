"""Which rows a search selects, as an FTS5 MATCH of our own making plus SQL filters (pure).

The filters that FTS5 can apply (label, video, analysis, a high ``min_confidence``) are tags in
the MATCH: tokens in the ``tags`` column, so FTS5 walks only the rows they select. Each is
checked again on its column (a digest collision finds nothing foreign). The tenant is no tag:
each tenant owns a block of rowids (vidloc.search.index).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from contracts import DEFAULT_ANALYSIS_ID
from vidloc.search.query import SearchRequest


def tag(kind: str, value: str) -> str:
    """One FTS5 token naming a video (``v``), a later analysis (``a``) or a label (``l``):
    letters and digits only, so unicode61 keeps it whole. The filters are part of the MATCH, so
    FTS5 walks only the rows they select (a SQL filter after it would walk every match of the
    words)."""
    return kind + hashlib.sha256(value.encode()).hexdigest()[:24]


# Every event of a later analysis holds this token; ``analysis=default`` is "NOT" it. A token
# every first analysis' event held would make bm25() count nearly every row (vidloc.search.index).
_LATER = tag("x", "later analysis")


# Confidence in tenths as a tag (``c0``..``c10``; none: ``cn``), so a high ``min_confidence``
# selects in the MATCH instead of joining every match of the words to read its column. Below
# this many tenths most events pass anyway and the tags would only add phrases for bm25() to
# count: the column alone filters.
_CONFIDENCE_TAGS_FROM = 5


def _confidence_tag(confidence: float | None) -> str:
    return "cn" if confidence is None else f"c{min(10, max(0, int(confidence * 10)))}"


def _confidence_match(min_confidence: float) -> str | None:
    """The tags of every tenth at or above ``min_confidence``; None where they would not pay."""
    lowest = min(10, int(min_confidence * 10))
    if lowest < _CONFIDENCE_TAGS_FROM:
        return None
    return "tags : (" + " OR ".join(f'"c{k}"' for k in range(lowest, 11)) + ")"


def _tags(kind: str, values: list[str]) -> str:
    return "tags : (" + " OR ".join(f'"{tag(kind, v)}"' for v in values) + ")"


def _analysis_match(base: str, analyses: tuple[str, ...]) -> str:
    """``base`` narrowed to ``analyses``: later ones by their tag, the first by not holding
    the later-analysis token."""
    later = [a for a in analyses if a != DEFAULT_ANALYSIS_ID]
    parts = [f"({base} AND {_tags('a', later)})"] if later else []
    if DEFAULT_ANALYSIS_ID in analyses:
        parts.append(f'({base} NOT tags : "{_LATER}")')
    return " OR ".join(parts)


def row_tags(video_id: str, analysis: str, label: str, confidence: float | None) -> str:
    """The ``tags`` column of one event."""
    tags = [tag("v", video_id), tag("l", label.casefold()), _confidence_tag(confidence)]
    if analysis != DEFAULT_ANALYSIS_ID:
        tags += [tag("a", analysis), _LATER]
    return " ".join(tags)


@dataclass(frozen=True)
class Selection:
    """A search's rows: ``match`` for FTS5, ``filters`` (with ``args``) for the events table
    (aliased ``e``). ``tags_select``: the MATCH alone selects every row the filters keep (give
    or take a confidence just under a threshold between tenths), so the rank window can be
    found without reading the table."""

    match: str
    filters: str
    args: list[object]
    tags_select: bool


def select(tenant: str, request: SearchRequest) -> Selection:
    parts = []
    if request.labels:
        parts.append(_tags("l", [label.casefold() for label in request.labels]))
    if request.video_ids:
        parts.append(_tags("v", list(request.video_ids)))
    confidence = None
    if request.min_confidence is not None:
        confidence = _confidence_match(request.min_confidence)
        if confidence is not None:
            parts.append(confidence)
    match = " AND ".join([*parts, f"{{label description}} : ({request.expression})"])
    if request.analyses:
        match = _analysis_match(match, request.analyses)
    where = ["e.tenant = ?"]
    args: list[object] = [tenant]
    if request.labels:
        where.append(f"e.label_key IN ({','.join('?' * len(request.labels))})")
        args.extend(label.casefold() for label in request.labels)
    if request.video_ids:
        where.append(f"e.video_id IN ({','.join('?' * len(request.video_ids))})")
        args.extend(request.video_ids)
    if request.analyses:
        where.append(f"e.analysis IN ({','.join('?' * len(request.analyses))})")
        args.extend(request.analyses)
    if request.since is not None:
        where.append("e.created_at >= ?")
        args.append(request.since.timestamp())
    if request.until is not None:
        where.append("e.created_at <= ?")
        args.append(request.until.timestamp())
    if request.min_confidence is not None:
        where.append("e.confidence >= ?")
        args.append(request.min_confidence)
    tags_select = (
        request.since is None
        and request.until is None
        and (request.min_confidence is None or confidence is not None)
    )
    return Selection(match, " AND ".join(where), args, tags_select)
