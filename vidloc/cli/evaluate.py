"""``vidloc eval --truth FILE --timelines (s3://bucket/prefix | folder)``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from vidloc.cli.exits import EXIT_OK
from vidloc.evaluation.report import render_json, render_text
from vidloc.evaluation.run import evaluate_source
from vidloc.settings import Settings


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "eval", help="score timelines against ground truth (quality and cost)"
    )
    parser.add_argument("--truth", type=Path, required=True, help="ground-truth JSONL")
    parser.add_argument(
        "--timelines",
        required=True,
        help="a folder of timeline JSON files, or s3://bucket/prefix",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    result = evaluate_source(args.truth, args.timelines, settings)
    if args.json:
        print(json.dumps(render_json(result), indent=2))
    else:
        print(render_text(result))
    return EXIT_OK
