"""How the fake model words a correct answer: the shapes the real Qwen3-VL gives. Pure.

Each style carries the same events (what the fake saw) in one realistic shape, so a test can
show that every shape reaches the same timeline as the canonical answer. Sources for each shape
are in ``shared/QWEN3VL.md``: cookbooks, Qwen3-VL issue threads, TimeLens's evaluation parsers.
The last three are forms a person reads at a glance though no layout asked for them (issue 21
part 6; ``tests/data/answer_corpus.jsonl`` has public transcripts of their kind): prose that
echoes the ``<t seconds>`` stamps, a markdown table, and the events one level deeper under other
key names. When they saw nothing they answer ``{"events": []}``, as the system prompt spells it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Events = list[dict[str, Any]]

# Not every style answers when the fake saw nothing; each writes its own empty answer.
ANSWER_STYLES = (
    "canonical",  # {"events": [{label, start_s, end_s, description, confidence}]}
    "range_field",  # "time": "31.0 - 40.5 seconds"
    "timestamp_pairs",  # "timestamp": [31.0, 40.5]
    "time_keyed",  # ```json {"00:23.00 - 00:48.00": "a red circle is visible"} ```
    "thinking",  # a draft JSON with wrong times, then </think>, then the answer
    "mmss",  # "start": "00:23.50", "end": "00:48.00"
    "chinese",  # "time": "37.1秒到52.6秒"
    "relative",  # seconds from the first frame of the request, not of the video
    "stamps_prose",  # "The red circle is visible from <43.0 seconds> to <45.0 seconds>."
    "table",  # | Event | Start | End | Description | with "43.0 s" cells
    "nested_keys",  # {"video": {"detected_events": [{"name", "begin", "finish", "summary"}]}}
    "unusable",  # prose that names what it saw and never says when
)
NOTHING = '{"events": []}'  # what the system prompt says to answer when nothing is visible
DRAFT_SHIFT_S = 7.0  # how wrong the thinking style's draft is


def render_style(
    style: str, events: Events, *, first_frame_s: float, json_mode: bool
) -> tuple[str, str]:
    """(content, finish_reason) for ``events`` in ``style``; ValueError for an unknown one."""
    if style not in ANSWER_STYLES:
        raise ValueError(f"unknown answer style {style!r}; known: {', '.join(ANSWER_STYLES)}")
    if style == "canonical":
        body = _dumps({"events": events})
        if json_mode:
            return body, "stop"
        # Without response_format real models like to chat around their JSON.
        return f"Here are the events I found in the frames.\n```json\n{body}\n```", "stop"
    return _RENDERERS[style](events, first_frame_s), "stop"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _range_field(events: Events, _: float) -> str:
    return _dumps({"events": [_with(e, time=_range_text(e)) for e in events]})


def _timestamp_pairs(events: Events, _: float) -> str:
    return _dumps(
        {"events": [_with(e, timestamp=[_round(e["start_s"]), _round(e["end_s"])]) for e in events]}
    )


def _time_keyed(events: Events, _: float) -> str:
    # The cookbook's grounding answer. One key per range: labels seen over the same range share
    # a sentence, as a model describing the scene would write them.
    by_range: dict[str, list[str]] = {}
    for e in events:
        key = f"{_mmss(e['start_s'])} - {_mmss(e['end_s'])}"
        by_range.setdefault(key, []).append(f"a {e['label']} is visible")
    body = json.dumps({k: " and ".join(v) for k, v in by_range.items()}, indent=2)
    return f"```json\n{body}\n```"


def _thinking(events: Events, _: float) -> str:
    # The chat template pre-fills "<think>\n", so the answer holds only the closing tag.
    draft = [
        {**e, "start_s": e["start_s"] + DRAFT_SHIFT_S, "end_s": e["end_s"] + DRAFT_SHIFT_S}
        for e in events
    ]
    return (
        "The user wants the events with their times. A first guess:\n"
        f"{_dumps({'events': draft})}\n"
        "Wait, those times do not match the timestamps before the frames. Let me re-read "
        "them and correct the answer.\n</think>\n\n"
        f"{_dumps({'events': events})}"
    )


def _mmss(t: float) -> str:
    minutes, secs = divmod(max(0.0, round(float(t), 2)), 60.0)
    return f"{int(minutes):02d}:{secs:05.2f}"


def _mmss_style(events: Events, _: float) -> str:
    out = []
    for e in events:
        item = {k: v for k, v in e.items() if k not in ("start_s", "end_s")}
        out.append({**item, "start": _mmss(e["start_s"]), "end": _mmss(e["end_s"])})
    return _dumps({"events": out})


def _chinese(events: Events, _: float) -> str:
    return _dumps(
        {
            "events": [
                _with(e, time=f"{_round(e['start_s'])}秒到{_round(e['end_s'])}秒") for e in events
            ]
        }
    )


def _relative(events: Events, first_frame_s: float) -> str:
    shifted = [
        {
            **e,
            "start_s": _round(e["start_s"] - first_frame_s),
            "end_s": _round(e["end_s"] - first_frame_s),
        }
        for e in events
    ]
    return _dumps({"events": shifted})


def _stamps_prose(events: Events, _: float) -> str:
    if not events:
        return NOTHING
    sentences = [
        f"The {e['label']} is visible from {_stamp(e['start_s'])} to {_stamp(e['end_s'])}."
        for e in events
    ]
    return "Looking at the frames in order: " + " ".join(sentences)


def _table(events: Events, _: float) -> str:
    if not events:
        return NOTHING
    rows = [
        f"| {e['label']} | {_round(e['start_s'])} s | {_round(e['end_s'])} s | "
        f"{e.get('description', '')} |"
        for e in events
    ]
    header = "| Event | Start | End | Description |\n|---|---|---|---|"
    return "Here is what I found:\n\n" + "\n".join([header, *rows])


def _nested_keys(events: Events, _: float) -> str:
    detected = [
        {
            "name": e["label"],
            "begin": _mmss(e["start_s"]),
            "finish": _mmss(e["end_s"]),
            "summary": e.get("description", ""),
            "score": e.get("confidence"),
        }
        for e in events
    ]
    return _dumps({"video": {"detected_events": detected}})


def _stamp(t: float) -> str:
    return f"<{_round(t)} seconds>"


def _unusable(events: Events, _: float) -> str:
    seen = sorted({e["label"] for e in events})
    if not seen:
        return "I looked at every frame carefully, but I cannot tell what you are asking about."
    return (
        f"I looked at every frame carefully. I can see {' and '.join(seen)}, moving around "
        "the picture, but I cannot tell exactly when each of them appears or disappears."
    )


def _with(event: dict[str, Any], **times: Any) -> dict[str, Any]:
    item = {k: v for k, v in event.items() if k not in ("start_s", "end_s")}
    return {"label": item.pop("label"), **times, **item}


def _range_text(event: dict[str, Any]) -> str:
    return f"{_round(event['start_s'])} - {_round(event['end_s'])} seconds"


def _round(t: float) -> float:
    return round(float(t), 2)


_RENDERERS: dict[str, Callable[[Events, float], str]] = {
    "range_field": _range_field,
    "timestamp_pairs": _timestamp_pairs,
    "time_keyed": _time_keyed,
    "thinking": _thinking,
    "mmss": _mmss_style,
    "chinese": _chinese,
    "relative": _relative,
    "stamps_prose": _stamps_prose,
    "table": _table,
    "nested_keys": _nested_keys,
    "unusable": _unusable,
}
