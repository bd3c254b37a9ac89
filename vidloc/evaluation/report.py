"""Plain-text and JSON renderings of an :class:`Evaluation` (pure)."""

from __future__ import annotations

from typing import Any

from vidloc.evaluation.metrics import Evaluation, Scores


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def scores_row(s: Scores) -> list[str]:
    return [
        "overall" if s.label == "*" else s.label,
        str(s.truths),
        str(s.predictions),
        _fmt(s.precision),
        _fmt(s.recall),
        _fmt(s.f1),
        *(_fmt(s.r1[m]) for m in sorted(s.r1)),
        _fmt(s.miou),
        _fmt(s.start_error_s, 2),
        _fmt(s.end_error_s, 2),
    ]


HEADER = ["label", "truth", "pred", "P@.5", "R@.5", "F1@.5", "R1@.3", "R1@.5", "R1@.7", "mIoU"]
HEADER += ["start err s", "end err s"]


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def render_text(ev: Evaluation) -> str:
    rows = [scores_row(s) for s in ev.per_label.values()] + [scores_row(ev.overall)]
    c = ev.cost
    parts = [
        table(rows, HEADER),
        "",
        f"{c.videos} videos, {c.video_minutes:.2f} video-minutes: "
        f"{c.tokens_per_minute:.0f} tokens and {c.cost_per_minute:.5f} {c.currency} "
        f"per video-minute (refinement: {c.refine_tokens_per_minute:.0f} tokens, "
        f"{(c.refine_cost / c.video_minutes if c.video_minutes else 0):.5f} {c.currency})",
    ]
    if ev.missing_videos:
        parts.append("no timeline (scored as misses): " + ", ".join(ev.missing_videos))
    return "\n".join(parts)


def scores_json(s: Scores) -> dict[str, Any]:
    return {
        "truths": s.truths,
        "predictions": s.predictions,
        "matched": s.matched,
        "precision": s.precision,
        "recall": s.recall,
        "f1": s.f1,
        "r1": {f"{m:g}": v for m, v in sorted(s.r1.items())},
        "miou": s.miou,
        "start_error_s": s.start_error_s,
        "end_error_s": s.end_error_s,
    }


def render_json(ev: Evaluation) -> dict[str, Any]:
    c = ev.cost
    return {
        "overall": scores_json(ev.overall),
        "per_label": {label: scores_json(s) for label, s in ev.per_label.items()},
        "cost": {
            "videos": c.videos,
            "video_minutes": c.video_minutes,
            "tokens": c.tokens,
            "cost": c.cost,
            "currency": c.currency,
            "tokens_per_minute": c.tokens_per_minute,
            "cost_per_minute": c.cost_per_minute,
            "refine_tokens": c.refine_tokens,
            "refine_cost": c.refine_cost,
        },
        "missing_videos": list(ev.missing_videos),
    }
