"""What a search asks, checked and turned into an FTS5 expression of our own making (pure).

The user's text never reaches FTS5 as syntax: it is cut into words here (letters and digits,
as FTS5's ``unicode61`` tokenizer cuts them), and each word goes in as a quoted string, so
``"``, ``*``, ``NEAR``, ``AND``, ``-``, ``:`` and parentheses are only ever characters. A
query that leaves no word, or is too long to be a question, is a :class:`QueryError` (a 400).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

MAX_QUERY_CHARS = 512
MAX_QUERY_WORDS = 32
MAX_LIMIT = 200

Mode = Literal["all", "any"]
Grouping = Literal["flat", "video"]

# Letters and digits, any script: FTS5's unicode61 tokenizer separates on everything else
# (the underscore included), so a word of ours is one token of its.
_WORD = re.compile(r"[^\W_]+")


class QueryError(ValueError):
    """A search that cannot be run as given; ``code`` is the API's error code."""

    def __init__(self, message: str, code: str = "invalid_query") -> None:
        super().__init__(message)
        self.code = code


def words(text: str) -> list[str]:
    """The words of ``text``, case-folded, in order, each once."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.casefold()):
        seen.setdefault(word, None)
    return list(seen)


def match_expression(terms: list[str], mode: Mode = "all") -> str:
    """An FTS5 MATCH expression: every term a quoted string (inner quotes doubled), joined by
    implicit AND (``all``) or ``OR`` (``any``)."""
    if not terms:
        raise QueryError("the query has no words to search for")
    quoted = ['"' + term.replace('"', '""') + '"' for term in terms]
    return (" OR " if mode == "any" else " ").join(quoted)


@dataclass(frozen=True)
class Window:
    """The rowids a query's first page ranked (its newest RANK_WINDOW matches, up to the newest
    event then): later pages rank the same rows, so an event indexed meanwhile neither pushes
    one off nor shows up between pages. ``full``: more matched than were ranked."""

    floor: int
    ceiling: int
    full: bool


@dataclass(frozen=True)
class SearchRequest:
    """One checked search: what to match, what to filter on, which page."""

    text: str
    terms: list[str]
    mode: Mode = "all"
    labels: tuple[str, ...] = ()
    video_ids: tuple[str, ...] = ()
    analyses: tuple[str, ...] = ()  # analysis ids; ``default`` is each video's first
    since: datetime | None = None
    until: datetime | None = None
    min_confidence: float | None = None
    limit: int = 20
    offset: int = 0
    group: Grouping = "flat"
    window: Window | None = None  # from a cursor: the first page's

    @property
    def expression(self) -> str:
        return match_expression(self.terms, self.mode)

    def fingerprint(self) -> str:
        """What a cursor is bound to: the same question (not the page)."""
        parts = [
            self.terms,
            self.mode,
            sorted(label.casefold() for label in self.labels),
            sorted(self.video_ids),
            sorted(self.analyses),
            self.since.isoformat() if self.since else None,
            self.until.isoformat() if self.until else None,
            self.min_confidence,
        ]
        digest = hashlib.sha256(json.dumps(parts).encode())
        return digest.hexdigest()[:16]


def make_request(
    text: str | None,
    *,
    mode: Mode = "all",
    labels: tuple[str, ...] = (),
    video_ids: tuple[str, ...] = (),
    analyses: tuple[str, ...] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    min_confidence: float | None = None,
    limit: int = 20,
    cursor: str | None = None,
    group: Grouping = "flat",
) -> SearchRequest:
    """Check a search as a caller gave it; raises :class:`QueryError` with the reason."""
    text = text or ""
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(
            f"the query is {len(text)} characters; at most {MAX_QUERY_CHARS}", "query_too_long"
        )
    terms = words(text)
    if not terms:
        raise QueryError("the query is empty: give at least one word (letters or digits)")
    if len(terms) > MAX_QUERY_WORDS:
        raise QueryError(
            f"the query has {len(terms)} words; at most {MAX_QUERY_WORDS}", "query_too_long"
        )
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit must be 1..{MAX_LIMIT}, got {limit}")
    since, until = _aware(since, "since"), _aware(until, "until")
    if since is not None and until is not None and until < since:
        raise QueryError("until is before since")
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise QueryError("min_confidence must be within 0..1")
    request = SearchRequest(
        text=text,
        terms=terms,
        mode=mode,
        labels=tuple(labels),
        video_ids=tuple(video_ids),
        analyses=tuple(analyses),
        since=since,
        until=until,
        min_confidence=min_confidence,
        limit=limit,
        group=group,
    )
    if not cursor:
        return request
    offset, window = read_cursor(cursor, request.fingerprint())
    return replace(request, offset=offset, window=window)


def _aware(at: datetime | None, name: str) -> datetime | None:
    """``at`` with a time zone (none given: UTC), checked to have a POSIX time."""
    if at is None:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    try:
        at.timestamp()
    except (ValueError, OverflowError, OSError) as exc:
        raise QueryError(f"{name} is out of range: {exc}") from exc
    return at


def make_cursor(offset: int, fingerprint: str, window: Window | None = None) -> str:
    data: dict[str, object] = {"o": offset, "q": fingerprint}
    if window is not None:
        data.update(f=window.floor, c=window.ceiling, w=int(window.full))
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_cursor(cursor: str, fingerprint: str) -> tuple[int, Window | None]:
    """The offset and window a cursor names; a cursor that is garbled or from another query is
    refused. The window is only a range to rank in: the index keeps it inside the caller's
    tenant, so a cursor can never reach another tenant's rows."""
    if len(cursor) > 200:
        raise QueryError("cursor is not one this API gave", "invalid_cursor")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset, bound = data["o"], data["q"]
        edges = [data[k] for k in ("f", "c", "w") if k in data]
    except (ValueError, TypeError, KeyError) as exc:
        raise QueryError("cursor is not one this API gave", "invalid_cursor") from exc
    if not isinstance(offset, int) or not 0 <= offset <= 100_000 or bound != fingerprint:
        raise QueryError("cursor belongs to another query", "invalid_cursor")
    if not edges:
        return offset, None
    if len(edges) != 3 or not all(type(e) is int and 0 <= e < 2**63 for e in edges):
        raise QueryError("cursor is not one this API gave", "invalid_cursor")
    return offset, Window(edges[0], edges[1], bool(edges[2]))
