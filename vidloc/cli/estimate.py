"""``vidloc estimate FILE``: frames, tokens and cost of a configuration, without the model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vidloc.cli.exits import EXIT_OK
from vidloc.settings import Settings


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "estimate", help="frames, tokens and cost of a configuration, without calling the model"
    )
    parser.add_argument("file", type=Path, metavar="FILE")
    parser.add_argument("--sample-fps", type=float, help="uniform sampling rate")
    parser.add_argument("--chunk-s", type=float, help="seconds of video per model call")
    parser.add_argument("--sampling", choices=["uniform", "adaptive"])
    parser.add_argument("--token-budget", type=float, help="tokens per video-minute (adaptive)")
    parser.add_argument("--refine", action=argparse.BooleanOptionalAction, default=None)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: the planning code pulls in the frame decoders.
    from workers.pipeline.estimate import estimate_file, render

    options = {
        "sample_fps": args.sample_fps,
        "chunk_s": args.chunk_s,
        "sampling": args.sampling,
        "token_budget_per_min": args.token_budget,
        "refine": args.refine,
    }
    print(render(estimate_file(args.file, options, settings)))
    return EXIT_OK
