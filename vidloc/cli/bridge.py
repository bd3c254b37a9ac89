"""``vidloc bridge``: forward bucket notifications to video.ingest until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType
from typing import Any

from producers.bridge import run_bridge
from vidloc.cli.exits import EXIT_OK
from vidloc.settings import Settings

log = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bridge",
        help="forward bucket notifications (s3.events) to video.ingest until SIGINT/SIGTERM",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    del args
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        del frame
        log.info("bridge got signal %d, stopping after the current record", signum)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        run_bridge(settings, stop=stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK
