"""The reader against a corpus of real and person-readable answer forms (issue 21, part 6).

``tests/data/answer_corpus.jsonl`` holds one answer per line: the raw text, where it came from
(a public transcript, cited by repository and path or URL, or "constructed"), the request it
answers (labels, window, frame rate) and the events a person reads in it. An entry is read right
when the answer's usability matches and its events are exactly the expected ones (times within
10 ms; labels equal when labels were asked, else the expected text inside the label).

``python tests/unit/test_answer_corpus.py`` prints the score: run it against another checkout's
``workers`` package (``PYTHONPATH=<that checkout>``) to compare readers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from workers.localizers.answer.read import ParsedAnswer, parse_answer
from workers.types import Chunk

CORPUS = Path(__file__).resolve().parents[1] / "data" / "answer_corpus.jsonl"
TIME_TOLERANCE_S = 0.01


def load_corpus() -> list[dict[str, Any]]:
    with CORPUS.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def read(entry: dict[str, Any]) -> ParsedAnswer:
    request = entry["request"]
    start, end, fps = request["start_s"], request["end_s"], request["fps"]
    count = round((end - start) * fps) + 1
    times = tuple(round(start + i / fps, 3) for i in range(count))
    chunk = Chunk(index=0, start_s=start, end_s=end, times=times)
    return parse_answer(
        entry["answer"],
        entry.get("finish_reason", "stop"),
        chunk=chunk,
        video_duration_s=request["duration_s"],
        labels=request["labels"],
    )


def judge(entry: dict[str, Any], parsed: ParsedAnswer) -> str:
    """Why the reading is wrong, or "" when it is right."""
    expected = entry["expected"]
    asked = bool(entry["request"]["labels"])
    if parsed.usable is not expected["usable"]:
        return f"usable={parsed.usable}, expected {expected['usable']} ({parsed.problems})"
    got = [(e.label, e.start_s, e.end_s) for e in parsed.events]
    if len(got) != len(expected["events"]):
        return f"{len(got)} events, expected {len(expected['events'])}: {got}"
    left = list(got)
    for label, start, end in expected["events"]:
        match = next(
            (
                g
                for g in left
                if abs(g[1] - start) <= TIME_TOLERANCE_S
                and abs(g[2] - end) <= TIME_TOLERANCE_S
                and (g[0] == label if asked else label.lower() in g[0].lower())
            ),
            None,
        )
        if match is None:
            return f"no event ({label!r}, {start}, {end}) in {got}"
        left.remove(match)
    return ""


ENTRIES = load_corpus()


def test_the_corpus_is_well_formed() -> None:
    ids = [e["id"] for e in ENTRIES]
    assert len(ids) == len(set(ids))
    for entry in ENTRIES:
        assert entry["kind"] in ("transcript", "constructed"), entry["id"]
        assert entry["source"] and entry["answer"], entry["id"]
        assert entry["expected"]["usable"] is bool(entry["expected"]["events"]), entry["id"]
    assert sum(e["kind"] == "transcript" for e in ENTRIES) >= 20


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(
            e,
            id=e["id"],
            marks=[pytest.mark.xfail(reason=e["known_miss"], strict=True)]
            if "known_miss" in e
            else [],
        )
        for e in ENTRIES
    ],
)
def test_corpus_entry_is_read_as_a_person_reads_it(entry: dict[str, Any]) -> None:
    assert judge(entry, read(entry)) == ""


def score() -> tuple[int, int, list[tuple[str, str]]]:
    """(right, total, [(id, why wrong)])."""
    wrong = []
    for entry in ENTRIES:
        try:
            why = judge(entry, read(entry))
        except Exception as exc:  # an older reader may raise; that counts as wrong
            why = f"raised {type(exc).__name__}: {exc}"
        if why:
            wrong.append((entry["id"], why))
    return len(ENTRIES) - len(wrong), len(ENTRIES), wrong


if __name__ == "__main__":
    right, total, wrong = score()
    for entry_id, why in wrong:
        print(f"wrong  {entry_id}: {why[:160]}")
    transcripts = {e["id"] for e in ENTRIES if e["kind"] == "transcript"}
    right_transcripts = len(transcripts - {i for i, _ in wrong})
    print(
        f"{right}/{total} corpus answers read right "
        f"({right_transcripts}/{len(transcripts)} transcripts, "
        f"{right - right_transcripts}/{total - len(transcripts)} constructed)"
    )
    sys.exit(0)
