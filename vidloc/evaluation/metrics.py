"""Quality and cost metrics of timelines against ground truth (pure: plain values in and out).

Definitions (per label, and overall over every truth event / prediction):

* **precision / recall / F1 @ tIoU 0.5**: predictions and truth events of the same video and
  label are matched one to one (greedy by IoU, see :mod:`vidloc.evaluation.matching`); a match
  needs tIoU >= 0.5. precision = matches / predictions, recall = matches / truth events.
* **R@1 IoU m and mIoU** (Charades-STA): every truth event is a query "when does <label>
  happen in <video>"; the answer is the top-1 prediction of that label in that video by
  confidence (ties: the earliest). R@1 IoU m is the share of queries whose answer reaches tIoU
  m; mIoU is the mean tIoU of the answers (0 when there is none). A label that occurs twice in
  one video caps R@1 at 1/2 by construction, which is why the bench corpus uses each label at
  most once per video.
* **start / end error**: mean absolute difference in seconds over the pairs matched at 0.5.
* **tokens and cost per video-minute**: summed over the videos that have a timeline, divided
  by their summed duration; refinement is also shown on its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from vidloc.evaluation.matching import greedy_match, tiou
from workers.types import normalise_label

R1_THRESHOLDS = (0.3, 0.5, 0.7)
MATCH_IOU = 0.5
OVERALL = "*"


@dataclass(frozen=True)
class TruthEvent:
    video: str
    label: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class PredictedEvent:
    video: str
    label: str
    start_s: float
    end_s: float
    confidence: float | None = None


@dataclass(frozen=True)
class VideoUsage:
    """What one video's job cost; ``refine_*`` is the part the boundary refinement spent."""

    video: str
    duration_s: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    refine_prompt_tokens: int = 0
    refine_completion_tokens: int = 0
    refine_cost: float = 0.0
    currency: str = "CNY"


@dataclass(frozen=True)
class Scores:
    label: str  # OVERALL for the whole set
    truths: int
    predictions: int
    matched: int
    precision: float
    recall: float
    f1: float
    r1: dict[float, float]  # IoU threshold -> R@1
    miou: float
    start_error_s: float | None  # None when nothing matched
    end_error_s: float | None

    @property
    def boundary_error_s(self) -> float | None:
        if self.start_error_s is None or self.end_error_s is None:
            return None
        return (self.start_error_s + self.end_error_s) / 2


@dataclass(frozen=True)
class CostSummary:
    videos: int
    video_minutes: float
    tokens: int
    cost: float
    refine_tokens: int
    refine_cost: float
    currency: str = "CNY"

    @property
    def tokens_per_minute(self) -> float:
        return self.tokens / self.video_minutes if self.video_minutes > 0 else 0.0

    @property
    def cost_per_minute(self) -> float:
        return self.cost / self.video_minutes if self.video_minutes > 0 else 0.0

    @property
    def refine_tokens_per_minute(self) -> float:
        return self.refine_tokens / self.video_minutes if self.video_minutes > 0 else 0.0


@dataclass(frozen=True)
class Evaluation:
    overall: Scores
    per_label: dict[str, Scores]
    cost: CostSummary
    missing_videos: tuple[str, ...] = ()  # truth videos without a timeline (scored as misses)
    extra_videos: tuple[str, ...] = field(default=())  # timelines without truth (ignored)


@dataclass
class _Tally:
    truths: int = 0
    predictions: int = 0
    matched: int = 0
    ious: list[float] = field(default_factory=list)  # one per truth query (R@1 answer)
    start_errors: list[float] = field(default_factory=list)
    end_errors: list[float] = field(default_factory=list)

    def add(self, other: _Tally) -> None:
        self.truths += other.truths
        self.predictions += other.predictions
        self.matched += other.matched
        self.ious += other.ious
        self.start_errors += other.start_errors
        self.end_errors += other.end_errors

    def scores(self, label: str) -> Scores:
        precision = self.matched / self.predictions if self.predictions else 0.0
        recall = self.matched / self.truths if self.truths else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        n = len(self.ious)
        return Scores(
            label=label,
            truths=self.truths,
            predictions=self.predictions,
            matched=self.matched,
            precision=precision,
            recall=recall,
            f1=f1,
            r1={m: (sum(1 for i in self.ious if i >= m) / n if n else 0.0) for m in R1_THRESHOLDS},
            miou=sum(self.ious) / n if n else 0.0,
            start_error_s=_mean(self.start_errors),
            end_error_s=_mean(self.end_errors),
        )


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def top1(predicted: Sequence[PredictedEvent]) -> PredictedEvent | None:
    """The most confident prediction; unknown confidence counts as 0, ties go to the earliest."""
    if not predicted:
        return None
    return min(
        predicted,
        key=lambda p: (-(p.confidence if p.confidence is not None else 0.0), p.start_s, p.end_s),
    )


def _tally(truth: Sequence[TruthEvent], predicted: Sequence[PredictedEvent]) -> _Tally:
    t_iv = [(t.start_s, t.end_s) for t in truth]
    p_iv = [(p.start_s, p.end_s) for p in predicted]
    tally = _Tally(truths=len(truth), predictions=len(predicted))
    for ti, pi, _iou in greedy_match(t_iv, p_iv, MATCH_IOU):
        tally.matched += 1
        tally.start_errors.append(abs(truth[ti].start_s - predicted[pi].start_s))
        tally.end_errors.append(abs(truth[ti].end_s - predicted[pi].end_s))
    best = top1(predicted)
    for t in t_iv:
        tally.ious.append(0.0 if best is None else tiou(t, (best.start_s, best.end_s)))
    return tally


def evaluate(
    truth: Iterable[TruthEvent],
    predicted: Iterable[PredictedEvent],
    usage: Iterable[VideoUsage],
    *,
    missing_videos: Sequence[str] = (),
    extra_videos: Sequence[str] = (),
) -> Evaluation:
    """Score predictions against truth, per label and overall; see the module docstring."""
    groups_t: dict[tuple[str, str], list[TruthEvent]] = defaultdict(list)
    groups_p: dict[tuple[str, str], list[PredictedEvent]] = defaultdict(list)
    for t in truth:
        groups_t[(t.video, normalise_label(t.label))].append(t)
    truth_videos = {video for video, _ in groups_t}
    for p in predicted:
        if p.video in truth_videos:  # predictions for videos nobody annotated are not scored
            groups_p[(p.video, normalise_label(p.label))].append(p)
    per_label: dict[str, _Tally] = defaultdict(_Tally)
    for key in sorted(set(groups_t) | set(groups_p)):
        per_label[key[1]].add(_tally(groups_t.get(key, []), groups_p.get(key, [])))
    overall = _Tally()
    for tally in per_label.values():
        overall.add(tally)
    return Evaluation(
        overall=overall.scores(OVERALL),
        per_label={label: per_label[label].scores(label) for label in sorted(per_label)},
        cost=summarise_cost(usage),
        missing_videos=tuple(missing_videos),
        extra_videos=tuple(extra_videos),
    )


def summarise_cost(usage: Iterable[VideoUsage]) -> CostSummary:
    rows = list(usage)
    return CostSummary(
        videos=len(rows),
        video_minutes=sum(u.duration_s for u in rows) / 60.0,
        tokens=sum(u.prompt_tokens + u.completion_tokens for u in rows),
        cost=round(sum(u.cost for u in rows), 6),
        refine_tokens=sum(u.refine_prompt_tokens + u.refine_completion_tokens for u in rows),
        refine_cost=round(sum(u.refine_cost for u in rows), 6),
        currency=rows[0].currency if rows else "CNY",
    )
