"""The ``vidloc`` command: settings are loaded here, once, and passed down."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any

from vidloc.errors import VidlocError
from vidloc.logs import configure_logging
from vidloc.settings import Settings, load_settings

# Exit codes shared by every subcommand.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3

Command = Callable[[argparse.Namespace, Settings], int]


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from workers.main import run_worker

    if args.localizer:
        settings = settings.model_copy(update={"localizer": args.localizer})
    return run_worker(settings)


def _add_plugin_commands(sub: Any) -> None:
    """Commands other distributions register under ``vidloc.commands`` (the devkit's stack,
    fake-vlm and demo). The product names none of them, so its image simply lacks them."""
    for entry in entry_points(group="vidloc.commands"):
        entry.load()(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidloc", description="Find when things happen in videos."
    )
    parser.add_argument("--log-level", default=None, help="override VIDLOC_LOG_LEVEL")
    parser.add_argument("--log-json", action="store_true", help="log JSON lines")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = sub.add_parser("worker", help="consume video.ingest and produce timelines")
    worker.add_argument("--localizer", choices=["vlm", "cv"], default=None)
    worker.set_defaults(func=_worker)

    from producers.bridge import add_bridge_parser
    from producers.submit import add_submit_parser

    add_submit_parser(sub)
    add_bridge_parser(sub)
    from vidloc.api.cli import add_api_parser
    from vidloc.viewer.cli import add_timeline_parser
    from vidloc.watch import add_watch_parser

    add_api_parser(sub)
    add_timeline_parser(sub)
    add_watch_parser(sub)
    from vidloc.evaluation.cli import add_eval_parser
    from workers.estimate import add_estimate_parser

    add_eval_parser(sub)
    add_estimate_parser(sub)
    _add_plugin_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except VidlocError as exc:
        print(f"vidloc: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(
        args.log_level or settings.log_level,
        json_lines=args.log_json or settings.log_json,
        secrets=settings.secrets(),
    )
    command: Command = args.func
    try:
        return command(args, settings)
    except VidlocError as exc:
        print(f"vidloc {args.command}: {exc.code}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
