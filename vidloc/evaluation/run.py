"""Score a folder or S3 prefix of timelines against a ground-truth file: the eval use case."""

from __future__ import annotations

from pathlib import Path

from vidloc.errors import InputError
from vidloc.evaluation.metrics import Evaluation, evaluate
from vidloc.evaluation.sources import (
    pair_timelines,
    read_truth,
    split_s3_url,
    timelines_from_folder,
    timelines_from_store,
)
from vidloc.settings import Settings


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
