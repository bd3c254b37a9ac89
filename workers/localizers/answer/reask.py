"""What to say when a model's answer cannot be used: one short corrective turn. Pure.

The conversation is continued rather than restarted: the model sees its own answer and is told,
in a few words, why it could not be used and the exact format wanted. A restated format fixes
most unreadable answers (prose, a time range in one field, a draft left unfinished) on the
first try, and the frames are not described twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

# The model-answer contract (contracts/answer.py), as the system prompt states it.
ANSWER_FORMAT = (
    '{"events": [{"label": string, "start_s": number, "end_s": number, '
    '"description": string, "confidence": number}]}'
)
MAX_ECHO_CHARS = 4000  # the model's own unusable answer, as much of it as is worth re-reading


def reask_messages(
    messages: Sequence[dict[str, Any]], answer: str, why: str, labels: Sequence[str]
) -> list[dict[str, Any]]:
    """``messages`` followed by the model's answer and a user turn asking again."""
    echoed = answer if len(answer) <= MAX_ECHO_CHARS else answer[:MAX_ECHO_CHARS] + " ..."
    return [
        *messages,
        {"role": "assistant", "content": echoed or "(no answer)"},
        {"role": "user", "content": corrective_text(why, labels)},
    ]


def corrective_text(why: str, labels: Sequence[str]) -> str:
    parts = [
        f"Your answer could not be used: {why}.",
        f"Answer again with one JSON object and nothing else, exactly of the form {ANSWER_FORMAT}.",
        "start_s and end_s are numbers: absolute seconds of the video, read from the timestamps "
        "shown before the frames.",
    ]
    if labels:
        parts.append("Use only these labels: " + json.dumps(list(labels)) + ".")
    parts.append('If nothing relevant is visible, answer {"events": []}.')
    return " ".join(parts)
