"""What a job could not do as asked, said in its timeline and result instead of kept quiet. Pure.

Fed the chunks' results and the job's options; returns the timeline's ``stats`` counters and
``warnings`` (``contracts.JobWarning`` fields as plain dicts), and decides when a job whose
every model answer was unusable must fail rather than succeed with an empty timeline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from workers.localizers.registry import localizer_kind
from workers.types import ChunkResult, normalise_label

MAX_REASONS = 4  # the commonest reasons named in a message; the rest are counted


def answer_stats(results: Sequence[ChunkResult]) -> dict[str, int]:
    """The timeline's ``stats``: how the model's answers were read, summed over chunks."""
    return {
        "rejected_events": sum(r.rejected_events for r in results),
        "answers": sum(r.answer.answers for r in results),
        "rejected_answers": sum(r.answer.unusable for r in results),
        "reasked": sum(r.answer.reasked for r in results),
        "unusable_chunks": sum(1 for r in results if r.answer.failed),
        "relative_times_shifted": sum(r.answer.relative_shifted for r in results),
    }


def all_answers_unusable(results: Sequence[ChunkResult]) -> bool:
    """True when the model was asked and not one chunk got a usable answer."""
    asked = [r for r in results if r.answer.answers > 0]
    return bool(asked) and all(r.answer.failed for r in asked)


def unusable_message(results: Sequence[ChunkResult]) -> str:
    stats = answer_stats(results)
    asked = sum(1 for r in results if r.answer.answers > 0)
    return (
        f"none of the {asked} chunks got a usable model answer ({stats['answers']} answers, "
        f"{stats['reasked']} re-asked with the format restated): {_reasons(results)}"
    )


def answer_warnings(results: Sequence[ChunkResult]) -> list[dict[str, Any]]:
    """One warning per kind of trouble the model's answers gave, with counts and chunks."""
    warnings: list[dict[str, Any]] = []
    failed = [r.chunk_index for r in results if r.answer.failed]
    if failed:
        warnings.append(
            _warning(
                "answers_unusable",
                f"{len(failed)} of {len(results)} chunks got no usable model answer, even "
                f"after re-asking, and contribute no events ({_reasons(results)})",
                len(failed),
                failed,
            )
        )
    reasked = [r for r in results if r.answer.reasked]
    if reasked:
        count = sum(r.answer.reasked for r in reasked)
        warnings.append(
            _warning(
                "answers_reasked",
                f"{count} model answers could not be used and were asked again with the "
                "answer format restated",
                count,
                [r.chunk_index for r in reasked],
            )
        )
    rejected = [r for r in results if r.rejected_events]
    if rejected:
        count = sum(r.rejected_events for r in rejected)
        warnings.append(
            _warning(
                "events_rejected",
                f"{count} events in model answers were dropped: {_reasons(rejected)}",
                count,
                [r.chunk_index for r in rejected],
            )
        )
    shifted = [r for r in results if r.answer.relative_shifted]
    if shifted:
        count = sum(r.answer.relative_shifted for r in shifted)
        warnings.append(
            _warning(
                "relative_times_shifted",
                f"the model gave the times of {count} events in seconds from the first frame "
                "it was shown, not from the start of the video; they were shifted",
                count,
                [r.chunk_index for r in shifted],
            )
        )
    return warnings


def ignored_options_warning(
    localizer: str, chosen_by_job: bool, prompt: str | None, labels: Sequence[str]
) -> dict[str, Any] | None:
    """A job asked a question only a model can answer, on a localizer without one."""
    reported = localizer_kind(localizer).reports_labels
    if reported is None:
        return None
    ignored_labels = [x for x in labels if normalise_label(x) not in reported]
    asked_prompt = bool(prompt and prompt.strip())
    if not ignored_labels and not asked_prompt:
        return None
    what = []
    if ignored_labels:
        what.append("labels " + ", ".join(repr(x) for x in ignored_labels))
    if asked_prompt:
        what.append("the prompt")
    found = f"the {localizer} localizer reports only {', '.join(reported)} and shots"
    if chosen_by_job:
        return _warning(
            "labels_ignored_cv",
            f"{' and '.join(what)} ignored: the job asked for the cv localizer; {found}",
            None,
            None,
        )
    return _warning(
        "labels_ignored_no_model",
        f"{' and '.join(what)} ignored: this worker has no model endpoint configured "
        f"(VIDLOC_VLM_BASE_URL / VIDLOC_VLM_API_KEY), so {found}",
        None,
        None,
    )


def _reasons(results: Sequence[ChunkResult]) -> str:
    counts: Counter[str] = Counter()
    for r in results:
        for reason, n in r.answer.dropped:
            counts[reason] += n
    if not counts:
        return "no reason recorded"
    named = [f"{reason} x{n}" for reason, n in counts.most_common(MAX_REASONS)]
    if len(counts) > MAX_REASONS:
        named.append(f"{len(counts) - MAX_REASONS} other reasons")
    return "; ".join(named)


def _warning(
    code: str, message: str, count: int | None, chunks: list[int] | None
) -> dict[str, Any]:
    doc: dict[str, Any] = {"code": code, "message": message[:4000]}
    if count is not None:
        doc["count"] = count
    if chunks is not None:
        doc["chunks"] = sorted(chunks)
    return doc


def job_warnings(
    results: Sequence[ChunkResult],
    *,
    localizer: str,
    chosen_by_job: bool,
    prompt: str | None,
    labels: Sequence[str],
) -> list[dict[str, Any]]:
    """Every warning of a finished job, for its timeline and result."""
    warnings = answer_warnings(results)
    ignored = ignored_options_warning(localizer, chosen_by_job, prompt, labels)
    if ignored is not None:
        warnings.insert(0, ignored)
    return warnings
