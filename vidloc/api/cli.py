"""``vidloc api``: serve the query API with uvicorn."""

from __future__ import annotations

import argparse
from typing import Any

from vidloc.settings import Settings


def add_api_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "api", help="serve the HTTP query API and the timeline viewer"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind (default 8080)")
    parser.add_argument(
        "--no-follow",
        action="store_true",
        help="do not read video.results/progress (status comes from stored timelines only)",
    )
    parser.set_defaults(func=run_api)


def run_api(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from vidloc.api.app import create_app

    app = create_app(settings, follow_bus=not args.no_follow)
    # log_config=None: logging was configured once by the CLI; uvicorn must not replace it.
    uvicorn.run(app, host=args.host, port=args.port, log_config=None)
    return 0
