"""An unusable answer is re-asked once, in the same conversation, and what happened is counted."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from workers.localizers.answer.reask import ANSWER_FORMAT, MAX_ECHO_CHARS
from workers.localizers.vlm import VlmLocalizer
from workers.model.client import ModelReply
from workers.pipeline.checkpoint import decode_checkpoint, encode_checkpoint
from workers.types import AnswerReport, Chunk, ChunkResult, FrameSample, LocalizeRequest, TokenTally

FRAMES = [FrameSample(float(t), np.zeros((64, 64, 3), dtype=np.uint8)) for t in range(10, 20)]
CHUNK = Chunk(2, 10.0, 20.0, tuple(f.t_s for f in FRAMES))
REQUEST = LocalizeRequest(labels=("red circle",), video_duration_s=60.0)
GOOD = json.dumps({"events": [{"label": "red circle", "start_s": 12, "end_s": 15}]})


class ScriptedClient:
    """Stands in for ModelClient: answers from a script, records every conversation."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.conversations: list[list[dict[str, Any]]] = []

    def complete(
        self, messages: list[dict[str, Any]], response_format: dict[str, Any] | None = None
    ) -> ModelReply:
        self.conversations.append(messages)
        return ModelReply(self.answers.pop(0), "stop", TokenTally(100, 10, 1), "fake")


def localize(client: ScriptedClient, retries: int = 1) -> ChunkResult:
    localizer = VlmLocalizer(client, answer_retries=retries)  # type: ignore[arg-type]
    return localizer.localize(CHUNK, FRAMES, REQUEST)


def test_a_usable_answer_is_not_reasked() -> None:
    client = ScriptedClient(GOOD)
    result = localize(client)
    assert [(e.start_s, e.end_s) for e in result.events] == [(12.0, 15.0)]
    assert result.answer == AnswerReport(answers=1)
    assert len(client.conversations) == 1


def test_a_valid_empty_answer_is_not_reasked() -> None:
    client = ScriptedClient('{"events": []}')
    result = localize(client)
    assert result.events == ()
    assert result.answer == AnswerReport(answers=1)
    assert not result.answer.failed


@pytest.mark.parametrize(
    ("first", "why"),
    [
        pytest.param("I saw a red circle for a while.", "no JSON answer", id="prose"),
        pytest.param(
            json.dumps({"events": [{"label": "dog", "start_s": 12, "end_s": 15}]}),
            "every event in it was rejected (label not asked for)",
            id="every-event-rejected",
        ),
    ],
)
def test_an_unusable_answer_is_reasked_once_with_the_format(first: str, why: str) -> None:
    client = ScriptedClient(first, GOOD)
    result = localize(client)
    assert [(e.start_s, e.end_s) for e in result.events] == [(12.0, 15.0)]
    assert (result.answer.answers, result.answer.unusable, result.answer.reasked) == (2, 1, 1)
    assert not result.answer.failed
    assert result.usage.requests == 2
    original, again = client.conversations
    assert again[: len(original)] == original  # same conversation, frames included
    assistant, user = again[len(original) :]
    assert assistant == {"role": "assistant", "content": first}
    assert user["role"] == "user"
    assert why in user["content"]
    assert ANSWER_FORMAT in user["content"]
    assert '["red circle"]' in user["content"]


def test_still_unusable_after_the_reask_fails_the_chunk() -> None:
    client = ScriptedClient("no idea", "still no idea", GOOD)
    result = localize(client)
    assert result.events == ()
    assert result.answer.failed
    assert (result.answer.answers, result.answer.unusable, result.answer.reasked) == (2, 2, 1)
    assert len(client.conversations) == 2  # re-asked once, not more
    assert dict(result.answer.dropped) == {"no JSON answer found": 2}


def test_no_retries_configured_means_no_reask() -> None:
    client = ScriptedClient("no idea")
    result = localize(client, retries=0)
    assert result.answer.failed and result.answer.reasked == 0


def test_a_huge_unusable_answer_is_echoed_cut() -> None:
    client = ScriptedClient("x" * (MAX_ECHO_CHARS * 3), GOOD)
    localize(client)
    echoed = client.conversations[1][-2]["content"]
    assert len(echoed) < MAX_ECHO_CHARS + 10


def test_relative_times_are_counted_per_chunk() -> None:
    relative = json.dumps({"events": [{"label": "red circle", "start_s": 2, "end_s": 5}]})
    result = localize(ScriptedClient(relative))
    assert [(e.start_s, e.end_s) for e in result.events] == [(12.0, 15.0)]
    assert result.answer.relative_shifted == 1


def test_parts_of_one_chunk_fail_only_together() -> None:
    ok, failed = AnswerReport(answers=1), AnswerReport(answers=2, unusable=2, failed=True)
    assert not (ok + failed).failed
    assert (failed + failed).failed
    assert (failed + AnswerReport()).failed  # a part with no frames asked nothing
    assert not (AnswerReport() + AnswerReport()).failed
    both = AnswerReport(dropped=(("a", 1),)) + AnswerReport(dropped=(("a", 2), ("b", 1)))
    assert dict(both.dropped) == {"a": 3, "b": 1}


def test_checkpoints_keep_the_answer_report() -> None:
    report = AnswerReport(3, 2, 1, 4, True, (("no JSON answer found", 2),))
    result = ChunkResult(2, (), TokenTally(1, 2, 3), rejected_events=2, answer=report)
    assert decode_checkpoint(encode_checkpoint(result, "fp"), "fp") == result


def test_checkpoints_from_before_the_report_read_as_clean() -> None:
    doc = json.loads(encode_checkpoint(ChunkResult(1, ()), "fp"))
    del doc["answer"]
    decoded = decode_checkpoint(json.dumps(doc).encode(), "fp")
    assert decoded is not None and decoded.answer == AnswerReport()
