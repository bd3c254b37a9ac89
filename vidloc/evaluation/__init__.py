"""Measure localization quality and cost: ground truth + timelines in, metrics out."""

from vidloc.evaluation.metrics import evaluate
from vidloc.evaluation.report import render_json, render_text
from vidloc.evaluation.run import evaluate_source
from vidloc.evaluation.sources import pair_timelines, read_truth

__all__ = [
    "evaluate",
    "evaluate_source",
    "pair_timelines",
    "read_truth",
    "render_json",
    "render_text",
]
