"""The ``vidloc`` parser and entry point: settings are loaded here, once, and passed down."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any

from vidloc.cli import (
    api,
    ask,
    bridge,
    cancel,
    clip,
    estimate,
    evaluate,
    init,
    search,
    stream,
    submit,
    timeline,
    watch,
    worker,
)
from vidloc.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from vidloc.errors import VidlocError
from vidloc.logs import configure_logging
from vidloc.settings import Settings, load_settings

# What ``set_defaults(func=...)`` names: the plugin commands follow the same shape.
Command = Callable[[argparse.Namespace, Settings], int]


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

    # The order of --help's command list, as it always was.
    for module in (worker, submit, bridge, api, timeline, watch, evaluate, estimate, init, stream):
        module.add_parser(sub)
    search.add_parser(sub)
    clip.add_parser(sub)
    ask.add_parser(sub)
    cancel.add_parser(sub)
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
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
