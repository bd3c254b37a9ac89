"""``vidloc api``: serve the query API with uvicorn."""

from __future__ import annotations

import argparse
from typing import Any

from vidloc.cli.exits import EXIT_OK
from vidloc.settings import Settings


def add_parser(subparsers: Any) -> None:
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    return serve_api(settings, host=args.host, port=args.port, follow_bus=not args.no_follow)


def serve_api(settings: Settings, *, host: str, port: int, follow_bus: bool) -> int:
    # Imported here: the web stack is heavy for every other command.
    import uvicorn

    from vidloc.api.app import create_app

    app = create_app(settings, follow_bus=follow_bus)
    # log_config=None: logging was configured once by the CLI; uvicorn must not replace it.
    uvicorn.run(app, host=host, port=port, log_config=None)
    return EXIT_OK
