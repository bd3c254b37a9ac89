"""The embedded search index: one SQLite file, events in a table, their words in FTS5.

Why SQLite FTS5: it ships with Python's standard library (nothing to run beside the API), ranks
with BM25, and an index of half a million events answers in milliseconds from one file. Each
API replica keeps its own file and builds it from the stored timelines (``sync``), then keeps it
current from ``video.results``; nothing in it is the truth, so losing it costs a rebuild only.

Rows are keyed by (tenant, video_id, analysis, event_id): every analysis of a video (its first,
``default``, and each later one asked of it) is a timeline of its own. The untenanted layout is
tenant ``""``. Each tenant owns one block of rowids (``tenant number << 32``), and every query
names the tenant's block, so one tenant's words never find another's events.

Why blocks and not a tenant token in the MATCH: FTS5's bm25() counts, once per query, every
row holding each phrase of the expression; a token every one of a tenant's rows holds made that
count walk the whole tenant (16 ms at 500,000 events). A rowid range costs FTS5 nothing: it
seeks to it in each doclist.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from contracts import DEFAULT_ANALYSIS_ID, Timeline
from vidloc.search.match import Selection, row_tags, select, utc_hour
from vidloc.search.query import SearchRequest, Window
from vidloc.settings import Settings

# Bump to make every replica rebuild its file from the stored timelines.
SCHEMA_VERSION = 7
# bm25 weights for (tags, label, description): a word in the label counts twice; the tags
# (tokens naming the video, the label and a later analysis) only select.
_WEIGHTS = "0.0, 2.0, 1.0"
# A query ranks at most this many of its newest matches (index order): BM25 over every match
# of a word half the events hold costs ~0.3 s at 500k events; over a window, milliseconds.
RANK_WINDOW = 2000
# A tenant's rows are ids [block << 32, (block + 1) << 32): 4 billion events each.
_BLOCK_BITS = 32

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tenants(name TEXT PRIMARY KEY, block INTEGER NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS timelines(
    tenant TEXT NOT NULL, video_id TEXT NOT NULL, analysis TEXT NOT NULL, job_id TEXT NOT NULL,
    etag TEXT NOT NULL, created_at REAL NOT NULL, events INTEGER NOT NULL,
    PRIMARY KEY (tenant, video_id, analysis)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events(
    id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, video_id TEXT NOT NULL, analysis TEXT NOT NULL,
    job_id TEXT NOT NULL, tags TEXT NOT NULL, event_id TEXT NOT NULL, label TEXT NOT NULL,
    label_key TEXT NOT NULL, start_s REAL NOT NULL, end_s REAL NOT NULL,
    description TEXT NOT NULL, confidence REAL, thumbnail INTEGER NOT NULL,
    created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_timeline ON events(tenant, video_id, analysis);
CREATE INDEX IF NOT EXISTS timelines_by_time ON timelines(tenant, created_at, events);
CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5(
    tags, label, description, content='events', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2');
CREATE TRIGGER IF NOT EXISTS events_added AFTER INSERT ON events BEGIN
    INSERT INTO events_fts(rowid, tags, label, description)
    VALUES (new.id, new.tags, new.label, new.description);
END;
CREATE TRIGGER IF NOT EXISTS events_removed AFTER DELETE ON events BEGIN
    INSERT INTO events_fts(events_fts, rowid, tags, label, description)
    VALUES ('delete', old.id, old.tags, old.label, old.description);
END;
"""


@dataclass(frozen=True)
class Hit:
    """One event a search found; ``score`` is BM25's (higher is better). ``analysis`` is the
    analysis id (``default`` for the video's first), ``job_id`` the job that wrote it."""

    tenant: str | None
    video_id: str
    analysis: str
    job_id: str
    event_id: str
    label: str
    start_s: float
    end_s: float
    description: str
    confidence: float | None
    has_thumbnail: bool
    score: float


@dataclass(frozen=True)
class HitPage:
    hits: list[Hit]
    more: bool  # another page follows
    window_full: bool = False  # more matches than RANK_WINDOW: only the newest were ranked
    window: Window | None = None  # what the next page ranks (its cursor carries it)


def index_path(settings: Settings) -> Path:
    """Where this process keeps its index: the setting, else one file per store and bucket
    under the cache directory (two deployments on one machine never share one)."""
    if settings.search_index_path is not None:
        return settings.search_index_path
    where = hashlib.sha256(settings.s3_endpoint.encode()).hexdigest()[:8]
    return settings.cache_dir / "search" / f"{settings.timeline_bucket}-{where}.sqlite"


_COLUMNS = (
    "e.video_id, e.analysis, e.job_id, e.event_id, e.label, e.start_s, e.end_s, e.description,"
    f" e.confidence, e.thumbnail, bm25(events_fts, {_WEIGHTS}) AS rank"
)


def _hit(tenant: str | None, row: tuple[object, ...]) -> Hit:
    video_id, analysis, job_id, event_id, label, start_s, end_s, description, confidence = row[:9]
    thumb, rank = row[9:]
    return Hit(
        tenant=tenant,
        video_id=str(video_id),
        analysis=str(analysis),
        job_id=str(job_id),
        event_id=str(event_id),
        label=str(label),
        start_s=float(start_s),  # type: ignore[arg-type]
        end_s=float(end_s),  # type: ignore[arg-type]
        description=str(description),
        confidence=None if confidence is None else float(confidence),  # type: ignore[arg-type]
        has_thumbnail=bool(thumb),
        # SQLite's bm25() is negative, lower is better: turn it the way people read it.
        score=-float(rank),  # type: ignore[arg-type]
    )


def _tenant(tenant: str | None) -> str:
    return tenant or ""


def _span(block: int) -> tuple[int, int]:
    """The first and last rowid of a tenant's block."""
    return block << _BLOCK_BITS, ((block + 1) << _BLOCK_BITS) - 1


def analysis_of(timeline: Timeline) -> str:
    """The analysis a timeline answers: its own id, or ``default`` for a video's first."""
    return timeline.analysis_id or DEFAULT_ANALYSIS_ID


class SearchIndex:
    """Thread-safe: one connection per thread on one file in WAL mode, so searches read while
    the feed writes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        conn = self._conn()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            conn.close()
            self._local.conn = None
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            conn = self._conn()
        with conn:
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        with self._write_lock, conn:
            yield conn

    # -- writes -----------------------------------------------------------------------------

    def put(self, tenant: str | None, timeline: Timeline, etag: str) -> None:
        """Index ``timeline`` (replacing what its analysis of the video had); one transaction."""
        self.put_many([(tenant, timeline, etag)])

    def put_many(self, items: list[tuple[str | None, Timeline, str]]) -> None:
        with self._writing() as conn:
            for tenant, timeline, etag in items:
                self._replace(conn, _tenant(tenant), timeline, etag)

    def _replace(self, conn: sqlite3.Connection, tenant: str, tl: Timeline, etag: str) -> None:
        created = tl.created_at.timestamp()
        slot = (tenant, tl.video_id, analysis_of(tl))
        conn.execute("DELETE FROM events WHERE tenant = ? AND video_id = ? AND analysis = ?", slot)
        conn.execute(
            "INSERT OR REPLACE INTO timelines VALUES (?, ?, ?, ?, ?, ?, ?)",
            (*slot, tl.job_id, etag, created, len(tl.events)),
        )
        first = self._next_id(conn, tenant, len(tl.events))
        conn.executemany(
            "INSERT INTO events(id, tenant, video_id, analysis, job_id, tags, event_id, label,"
            " label_key, start_s, end_s, description, confidence, thumbnail, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    first + n,
                    *slot,
                    tl.job_id,
                    row_tags(tl.video_id, slot[2], tl.created_at, e.label, e.confidence),
                    e.id,
                    e.label,
                    e.label.casefold(),
                    e.start_s,
                    e.end_s,
                    e.description,
                    e.confidence,
                    int(e.thumbnail is not None),
                    created,
                )
                for n, e in enumerate(tl.events)
            ],
        )

    @staticmethod
    def _block(conn: sqlite3.Connection, tenant: str, *, create: bool = False) -> int | None:
        """The tenant's block of rowids (a new one for a new tenant when ``create``)."""
        row = conn.execute("SELECT block FROM tenants WHERE name = ?", (tenant,)).fetchone()
        if row is not None:
            return int(row[0])
        if not create:
            return None
        row = conn.execute("SELECT coalesce(max(block), 0) + 1 FROM tenants").fetchone()
        conn.execute("INSERT INTO tenants VALUES (?, ?)", (tenant, row[0]))
        return int(row[0])

    def _next_id(self, conn: sqlite3.Connection, tenant: str, count: int) -> int:
        """The first of ``count`` new ids after the newest of the tenant's block (so rowid
        order is the order events were indexed in, which the rank window relies on)."""
        block = self._block(conn, tenant, create=True)
        assert block is not None
        low, high = _span(block)
        newest = conn.execute(
            "SELECT max(id) FROM events WHERE id BETWEEN ? AND ?", (low, high)
        ).fetchone()[0]
        first = low if newest is None else int(newest) + 1
        if first + count - 1 > high:
            raise OverflowError(f"tenant {tenant!r} has used its 2^{_BLOCK_BITS} event ids")
        return first

    def remove(self, tenant: str | None, video_id: str, analysis: str | None = None) -> None:
        """Forget one analysis of a video, or (``analysis=None``) every analysis of it."""
        where, args = "tenant = ? AND video_id = ?", [_tenant(tenant), video_id]
        if analysis is not None:
            where, args = f"{where} AND analysis = ?", [*args, analysis]
        with self._writing() as conn:
            conn.execute(f"DELETE FROM events WHERE {where}", args)
            conn.execute(f"DELETE FROM timelines WHERE {where}", args)

    def set_meta(self, name: str, value: str) -> None:
        with self._writing() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    def optimize(self) -> None:
        """Merge FTS5's segments (after a bulk build: smaller file, faster queries)."""
        with self._writing() as conn:
            conn.execute("INSERT INTO events_fts(events_fts) VALUES ('optimize')")

    # -- reads ------------------------------------------------------------------------------

    def meta(self, name: str) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def etags(self) -> dict[tuple[str | None, str, str], str]:
        """(tenant, video_id, analysis) -> the etag of the timeline indexed for it."""
        rows = self._conn().execute("SELECT tenant, video_id, analysis, etag FROM timelines")
        return {(tenant or None, vid, analysis): etag for tenant, vid, analysis, etag in rows}

    def etag(
        self, tenant: str | None, video_id: str, analysis: str = DEFAULT_ANALYSIS_ID
    ) -> str | None:
        row = (
            self._conn()
            .execute(
                "SELECT etag FROM timelines WHERE tenant = ? AND video_id = ? AND analysis = ?",
                (_tenant(tenant), video_id, analysis),
            )
            .fetchone()
        )
        return None if row is None else str(row[0])

    def has_video(self, tenant: str | None, video_id: str) -> bool:
        """Whether any analysis of ``tenant``'s ``video_id`` is indexed."""
        row = (
            self._conn()
            .execute(
                "SELECT 1 FROM timelines WHERE tenant = ? AND video_id = ? LIMIT 1",
                (_tenant(tenant), video_id),
            )
            .fetchone()
        )
        return row is not None

    def counts(self) -> tuple[int, int]:
        """(timelines, events) indexed; each analysis of a video is a timeline."""
        conn = self._conn()
        videos = conn.execute("SELECT count(*) FROM timelines").fetchone()[0]
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        return int(videos), int(events)

    def search(self, tenant: str | None, request: SearchRequest) -> HitPage:
        """One page of ``tenant``'s events matching ``request``, best first.

        Two steps: find where the newest RANK_WINDOW matches begin (in rowid order, which FTS5
        walks without scoring), then rank only those with BM25. Both stay inside the tenant's
        block of rowids."""
        conn = self._conn()
        block = self._block(conn, _tenant(tenant))
        if block is None:
            return HitPage(hits=[], more=False)  # nothing of this tenant's was ever indexed
        low, high = _span(block)
        hours, exact = None, False
        if request.since is not None or request.until is not None:
            found = self._hours(conn, _tenant(tenant), request)
            if found is False:
                return HitPage(hits=[], more=False)  # no timeline of the tenant's is in range
            if found is not None:
                hours, exact = found[:2], found[2]
        plan = select(_tenant(tenant), request, hours, exact)
        if request.window is not None:
            # A later page: the first page's window, kept inside this tenant's block. The
            # cursor comes from the caller, so the walk below bounds it to RANK_WINDOW
            # matches again (a window the API gave holds no more: nothing changes).
            bottom = max(request.window.floor, low)
            ceiling = min(request.window.ceiling, high)
        else:
            newest = conn.execute(
                "SELECT max(id) FROM events WHERE id BETWEEN ? AND ?", (low, high)
            ).fetchone()[0]
            bottom, ceiling = low, high if newest is None else int(newest)
        if plan.tags_select:
            # FTS5 alone walks its rowids backwards, no join, no sort.
            edge = conn.execute(
                "SELECT rowid FROM events_fts WHERE events_fts MATCH ? AND rowid BETWEEN ? AND ?"
                " ORDER BY rowid DESC LIMIT 1 OFFSET ?",
                [plan.match, bottom, ceiling, RANK_WINDOW - 1],
            ).fetchone()
        else:
            edge = conn.execute(
                "SELECT f.rowid FROM events_fts f JOIN events e ON e.id = f.rowid"
                " WHERE events_fts MATCH ? AND f.rowid BETWEEN ? AND ?"
                f" AND {plan.filters} ORDER BY f.rowid DESC LIMIT 1 OFFSET ?",
                [plan.match, bottom, ceiling, *plan.args, RANK_WINDOW - 1],
            ).fetchone()
        floor = bottom if edge is None else int(edge[0])
        full = request.window.full if request.window is not None else edge is not None
        return self._rank(conn, tenant, request, plan, floor, ceiling, full)

    @staticmethod
    def _hours(
        conn: sqlite3.Connection, tenant: str, request: SearchRequest
    ) -> tuple[datetime, datetime, bool] | Literal[False] | None:
        """When and when last the tenant's timelines within since..until were made, when tags
        should select them: when the range holds under half the tenant's events (more, and
        the walk for the window soon finds enough of them without tags), and whether those
        timelines' hours hold no other; False when there is none."""
        since = request.since.timestamp() if request.since is not None else float("-inf")
        until = request.until.timestamp() if request.until is not None else float("inf")
        inside, first, last = conn.execute(
            "SELECT coalesce(sum(events), 0), min(created_at), max(created_at) FROM timelines"
            " WHERE tenant = ? AND created_at BETWEEN ? AND ?",
            (tenant, since, until),
        ).fetchone()
        if first is None:
            return False
        total = conn.execute(
            "SELECT coalesce(sum(events), 0) FROM timelines WHERE tenant = ?", (tenant,)
        ).fetchone()[0]
        if 2 * inside >= total:
            return None
        start = utc_hour(datetime.fromtimestamp(first, UTC))
        end = utc_hour(datetime.fromtimestamp(last, UTC)) + timedelta(hours=1)
        covered = conn.execute(
            "SELECT coalesce(sum(events), 0) FROM timelines"
            " WHERE tenant = ? AND created_at >= ? AND created_at < ?",
            (tenant, start.timestamp(), end.timestamp()),
        ).fetchone()[0]
        return start, end - timedelta(hours=1), covered == inside

    @staticmethod
    def _rank(
        conn: sqlite3.Connection,
        tenant: str | None,
        request: SearchRequest,
        plan: Selection,
        floor: int,
        ceiling: int,
        full: bool,
    ) -> HitPage:
        """The page of ``request`` among the matches with rowids ``floor``..``ceiling``."""
        offset = min(request.offset, RANK_WINDOW)
        limit = max(0, min(request.limit, RANK_WINDOW - offset))
        sql = (
            f"SELECT {_COLUMNS} FROM events_fts f JOIN events e ON e.id = f.rowid"
            f" WHERE events_fts MATCH ? AND f.rowid BETWEEN ? AND ? AND {plan.filters}"
            " ORDER BY rank, e.video_id, e.start_s, e.event_id LIMIT ? OFFSET ?"
        )
        args = [plan.match, floor, ceiling, *plan.args, limit + 1, offset]
        rows = conn.execute(sql, args).fetchall()
        return HitPage(
            hits=[_hit(tenant, row) for row in rows[:limit]],
            more=len(rows) > limit,
            window_full=full,
            window=Window(floor, ceiling, full),
        )

    def close(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
