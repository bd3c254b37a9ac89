"""``vidloc eval --truth FILE --timelines (s3://bucket/prefix | folder)``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from vidloc.errors import InputError
from vidloc.evaluation.metrics import Evaluation, evaluate
from vidloc.evaluation.report import render_json, render_text
from vidloc.evaluation.sources import (
    pair_timelines,
    read_truth,
    split_s3_url,
    timelines_from_folder,
    timelines_from_store,
)
from vidloc.settings import Settings


def add_eval_parser(subparsers: Any) -> None:
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
    parser.set_defaults(func=run_eval)


def evaluate_source(truth_path: Path, timelines: str, settings: Settings) -> Evaluation:
    truth = read_truth(truth_path)
    if timelines.startswith("s3://"):
        from vidloc.adapters.object_store import ObjectStore

        bucket, prefix = split_s3_url(timelines)
        found = timelines_from_store(ObjectStore(settings), bucket, prefix)
    else:
        folder = Path(timelines)
        if not folder.is_dir():
            raise InputError(f"{folder} is not a folder", code="bad_argument")
        found = timelines_from_folder(folder)
    loaded = pair_timelines(truth, found)
    return evaluate(
        truth,
        loaded.predicted,
        loaded.usage,
        missing_videos=loaded.missing,
        extra_videos=loaded.extra,
    )


def run_eval(args: argparse.Namespace, settings: Settings) -> int:
    result = evaluate_source(args.truth, args.timelines, settings)
    if args.json:
        print(json.dumps(render_json(result), indent=2))
    else:
        print(render_text(result))
    return 0
