"""``vidloc worker``: consume video.ingest and produce timelines until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
from typing import Any

from contracts.common import LOCALIZER_NAMES
from vidloc.settings import Settings


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "worker", help="consume video.ingest and produce timelines"
    )
    parser.add_argument("--localizer", choices=LOCALIZER_NAMES, default=None)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: the worker's decoders and model client are heavy for every other command.
    from workers.service.malloc import limit_malloc

    # First, before any thread allocates and before the decoder server starts (it inherits the
    # settings through the environment): glibc's defaults keep freed frames (malloc.py).
    limit_malloc()
    from workers.service.main import run_worker

    if args.localizer:
        settings = settings.model_copy(update={"localizer": args.localizer})
    return run_worker(settings)
