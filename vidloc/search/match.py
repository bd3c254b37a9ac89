"""Which rows a search selects, as an FTS5 MATCH of our own making plus SQL filters (pure).

The filters that FTS5 can apply (label, video, analysis, a high ``min_confidence``, a
``since``/``until`` of a few days or months) are tags in the MATCH: tokens in the ``tags``
column, so FTS5 walks only the rows they select. Each is checked again on its column (a digest
collision finds nothing foreign). The tenant is no tag: each tenant owns a block of rowids
(vidloc.search.index).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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


def _confidence_match(min_confidence: float) -> tuple[str, bool] | None:
    """The tags of every tenth at or above ``min_confidence``, and whether they are exact (the
    threshold is a tenth); None where they would not pay."""
    lowest = min(10, int(min_confidence * 10))
    if lowest < _CONFIDENCE_TAGS_FROM:
        return None
    match = "tags : (" + " OR ".join(f'"c{k}"' for k in range(lowest, 11)) + ")"
    return match, lowest / 10 >= min_confidence


# The UTC hour, day and month its timeline was made, as tags (``h2026120409``, ``d20261204``,
# ``m202612``), so since and until select in the MATCH instead of joining every newer match to
# read the column. A range costs one phrase per whole month, per whole day of the months it
# starts and ends in, and per hour of the days it starts and ends in; past this many, the
# column alone filters.
_MAX_TIME_TAGS = 64
_HOUR = timedelta(hours=1)


def utc_hour(at: datetime) -> datetime:
    """The UTC hour ``at`` falls in."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def time_tags(created: datetime) -> list[str]:
    hour = utc_hour(created)
    return [f"h{hour:%Y%m%d%H}", f"d{hour:%Y%m%d}", f"m{hour:%Y%m}"]


def time_match(first: datetime, last: datetime) -> str | None:
    """Tags of every hour from ``first``'s to ``last``'s (UTC): a whole month by its month tag,
    a whole day by its day tag, the rest hour by hour; None when that takes more than
    _MAX_TIME_TAGS."""
    tokens: list[str] = []
    at, end = utc_hour(first), utc_hour(last) + _HOUR
    while at < end:
        day = at.replace(hour=0)
        next_day = day + timedelta(days=1)
        next_month = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
        if at == day and day.day == 1 and next_month <= end:
            tokens.append(f"m{at:%Y%m}")
            at = next_month
        elif at == day and next_day <= end:
            tokens.append(f"d{at:%Y%m%d}")
            at = next_day
        else:
            tokens.append(f"h{at:%Y%m%d%H}")
            at += _HOUR
        if len(tokens) > _MAX_TIME_TAGS:
            return None
    return "tags : (" + " OR ".join(f'"{t}"' for t in tokens) + ")"


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


def row_tags(
    video_id: str, analysis: str, created: datetime, label: str, confidence: float | None
) -> str:
    """The ``tags`` column of one event."""
    tags = [tag("v", video_id), tag("l", label.casefold()), _confidence_tag(confidence)]
    tags += time_tags(created)
    if analysis != DEFAULT_ANALYSIS_ID:
        tags += [tag("a", analysis), _LATER]
    return " ".join(tags)


@dataclass(frozen=True)
class Selection:
    """A search's rows: ``match`` for FTS5, ``filters`` (with ``args``) for the events table
    (aliased ``e``). ``tags_select``: the MATCH alone selects exactly the rows the filters
    keep, so the rank window can be found without reading the table. Otherwise the window's
    walk checks the columns too: the tags of a confidence between tenths or of a range's first
    and last hour select more than the filters keep, and a window of rows they drop would rank
    nothing."""

    match: str
    filters: str
    args: list[object]
    tags_select: bool


def select(
    tenant: str,
    request: SearchRequest,
    hours: tuple[datetime, datetime] | None = None,
    hours_exact: bool = False,
) -> Selection:
    """``hours``: the first and last timeline (UTC hours) ``since``/``until`` keep, when
    selecting them by tags pays; ``hours_exact``: those hours hold no timeline outside the
    range (the index knows both)."""
    parts = []
    if request.labels:
        parts.append(_tags("l", [label.casefold() for label in request.labels]))
    if request.video_ids:
        parts.append(_tags("v", list(request.video_ids)))
    confidence = None
    if request.min_confidence is not None:
        confidence = _confidence_match(request.min_confidence)
        if confidence is not None:
            parts.append(confidence[0])
    period = None if hours is None else time_match(*hours)
    if period is not None:
        parts.append(period)
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
    times_select = (request.since is None and request.until is None) or (
        period is not None and hours_exact
    )
    confidence_selects = request.min_confidence is None or (
        confidence is not None and confidence[1]
    )
    tags_select = times_select and confidence_selects
    return Selection(match, " AND ".join(where), args, tags_select)
