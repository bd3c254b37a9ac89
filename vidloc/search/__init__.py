"""Search across a tenant's timelines: an embedded SQLite FTS5 index, kept by each API replica.

``SearchIndex`` is the file, ``Indexer`` fills it (a sync from the stored timelines, then the
results the bus feed reads), ``make_request`` checks what a caller asks (docs/search.md).
"""

from vidloc.search.feeder import Indexer, SyncReport
from vidloc.search.index import Hit, HitPage, SearchIndex, index_path
from vidloc.search.query import QueryError, SearchRequest, make_cursor, make_request
from vidloc.search.results import group_by_video, hit_document, thumbnail_path

__all__ = [
    "Hit",
    "HitPage",
    "Indexer",
    "QueryError",
    "SearchIndex",
    "SearchRequest",
    "SyncReport",
    "group_by_video",
    "hit_document",
    "index_path",
    "make_cursor",
    "make_request",
    "thumbnail_path",
]
