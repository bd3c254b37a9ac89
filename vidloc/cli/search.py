"""``vidloc search "QUERY"``: find events across a tenant's timelines (docs/search.md).

The command keeps its own index file (VIDLOC_SEARCH_INDEX_PATH, else under the cache
directory), brings it up to date from the stored timelines (one LIST, then only the timelines
whose etag changed) and searches it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from vidloc.adapters.object_store import ObjectStore
from vidloc.cli.exits import EXIT_OK, EXIT_USAGE
from vidloc.search import (
    Indexer,
    QueryError,
    SearchIndex,
    group_by_video,
    hit_document,
    index_path,
    make_request,
)
from vidloc.settings import Settings


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "search",
        help="find events across all timelines (full text over labels and descriptions)",
        description="Exit codes: 0 ok (also when nothing matched), 1 storage error, 2 usage.",
    )
    parser.add_argument("query", metavar="QUERY", help='words to find, e.g. "red car"')
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--label", action="append", default=[], help="exact label (repeatable)")
    parser.add_argument("--video", action="append", default=[], help="only this video id")
    parser.add_argument(
        "--analysis",
        action="append",
        default=[],
        help="only this analysis ('default': each video's first; repeatable)",
    )
    parser.add_argument("--min-confidence", type=float, default=None)
    parser.add_argument("--limit", type=int, default=20, help="results (1-200)")
    parser.add_argument("--any", action="store_true", help="any of the words, not all")
    parser.add_argument("--group", action="store_true", help="group the results by video")
    parser.add_argument("--tenant", default=None, help="whose timelines (default: VIDLOC_TENANT)")
    parser.add_argument("--no-sync", action="store_true", help="search the index as it is")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        request = make_request(
            args.query,
            mode="any" if args.any else "all",
            labels=tuple(args.label),
            video_ids=tuple(args.video),
            analyses=tuple(args.analysis),
            min_confidence=args.min_confidence,
            limit=args.limit,
            group="video" if args.group else "flat",
        )
    except QueryError as exc:
        print(f"vidloc search: {exc}", file=sys.stderr)
        return EXIT_USAGE
    tenant = args.tenant or settings.tenant
    index = SearchIndex(index_path(settings))
    try:
        if not args.no_sync:
            store = ObjectStore(settings, read_timeout_s=30.0)
            Indexer(index, store, settings.timeline_bucket).sync()
        page = index.search(tenant, request)
    finally:
        index.close()
    docs = [hit_document(hit) for hit in page.hits]
    if args.json:
        body: dict[str, Any] = {"query": request.text, "count": len(docs), "results": docs}
        if args.group:
            body["groups"] = group_by_video(page.hits)
        print(json.dumps(body, indent=2))
        return EXIT_OK
    table = Table(
        "score", "video", "analysis", "label", "start", "end", "description",
        title=f"{len(docs)} events for {request.text!r}"
        + (" (more matched than are ranked: add words)" if page.window_full else ""),
        title_justify="left",
    )  # fmt: skip
    for doc in docs:
        table.add_row(
            f"{doc['score']:.2f}",
            doc["video_id"],
            doc["analysis"],
            doc["label"],
            f"{doc['start_s']:.1f}s",
            f"{doc['end_s']:.1f}s",
            doc["description"],
        )
    Console().print(table)
    return EXIT_OK
