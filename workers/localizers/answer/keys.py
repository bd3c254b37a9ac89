"""What an object key (or a table header) means in an answer, read from its words. Pure.

Models name the fields of an event every way a person would: ``start_s``, ``start_time``,
``startTime``, ``begin``, ``from``, ``Appears (s)``, ``开始时间``; ``end``, ``finish``, ``to``,
``Disappears``; ``time``, ``timestamps``, ``timecode``, ``time_range``, ``时间范围``; ``label``,
``className``, ``object``, ``query``; ``description``, ``caption``, ``chapterSummary``,
``场景描述``. A key is split into words (snake, kebab, camel case, spaces) and given a role by
the words it holds, rather than looked up in a list of spellings.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

Role = Literal["start", "end", "time", "duration", "label", "description", "confidence"]

# Keys spelled exactly so keep the meaning they always had, whatever their words say.
_EXACT: dict[str, Role] = {
    "start_s": "start",
    "end_s": "end",
    "t_s": "time",
    "t": "time",
    "at": "time",
    "when": "time",
    "from": "start",
    "to": "end",
    "label": "label",
    "description": "description",
    "confidence": "confidence",
    "score": "confidence",
}
_NOT_A_TIME = frozenset(
    {"frame", "frames", "idx", "index", "id", "fps", "bbox", "box", "count", "number", "num"}
)
_CONFIDENCE = frozenset({"confidence", "score", "conf", "probability", "prob", "certainty"})
_START = frozenset(
    {"start", "starts", "started", "starting", "begin", "begins", "beginning", "from", "onset"}
    | {"appears", "appear", "appeared", "appearance", "enters", "first"}
)
_END = frozenset(
    {"end", "ends", "ended", "ending", "finish", "finished", "stop", "stops", "stopped", "to"}
    | {"until", "till", "offset", "disappears", "disappear", "disappeared", "leaves", "exits"}
    | {"last"}
)
_TIME = frozenset(
    {"time", "times", "timestamp", "timestamps", "timecode", "timecodes", "range", "ranges"}
    | {"span", "spans", "segment", "segments", "interval", "intervals", "period", "periods"}
    | {"window", "windows", "moment", "moments", "when", "sec", "secs", "second"}
    | {"seconds", "s", "t", "ts", "ms", "clip", "clips", "occurrence", "occurrences"}
)
_DURATION = frozenset({"duration", "length", "lasts"})
_DESCRIPTION = frozenset(
    {"description", "desc", "caption", "captions", "text", "details", "detail", "summary"}
    | {"content", "sentence", "narration", "explanation", "notes", "note", "comment", "reason"}
    | {"visible", "what", "happening", "scene"}
)
_LABEL = frozenset(
    {"label", "labels", "name", "event", "object", "action", "activity", "class", "category"}
    | {"title", "query", "type", "thing", "entity", "subject", "tag", "target", "item"}
)
# Chinese keys have no word breaks: their roles are read from the characters they hold.
_CJK: tuple[tuple[str, Role], ...] = (
    ("开始", "start"),
    ("起始", "start"),
    ("出现", "start"),
    ("结束", "end"),
    ("终止", "end"),
    ("消失", "end"),
    ("时间", "time"),
    ("时刻", "time"),
    ("时段", "time"),
    ("片段", "time"),
    ("描述", "description"),
    ("内容", "description"),
    ("说明", "description"),
    ("标签", "label"),
    ("名称", "label"),
    ("事件", "label"),
    ("对象", "label"),
    ("类别", "label"),
    ("置信", "confidence"),
)
_MILLISECONDS = frozenset({"ms", "msec", "millis", "milliseconds", "millisecond"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD_BREAK = re.compile(r"[^0-9A-Za-z\u4e00-\u9fff]{1,64}")
MAX_KEY_CHARS = 80


def words(key: str) -> list[str]:
    """``"startTime (s)"`` -> ``["start", "time", "s"]``."""
    if not isinstance(key, str):
        return []
    return [w for w in _WORD_BREAK.split(_CAMEL.sub(" ", key[:MAX_KEY_CHARS]).lower()) if w]


@lru_cache(maxsize=4096)  # answers repeat their keys once per event
def key_role(key: str) -> Role | None:
    """The role of a key, or None for a key that says nothing about an event."""
    if not isinstance(key, str):
        return None
    exact = _EXACT.get(key.strip().lower())
    if exact is not None:
        return exact
    found = set(words(key))
    if not found or found & _NOT_A_TIME:
        return None
    if found & _CONFIDENCE:
        return "confidence"
    starts, ends = bool(found & _START), bool(found & _END)
    if starts and ends:
        return "time"  # "start_end", "from-to": both in one field
    if starts:
        return "start"
    if ends:
        return "end"
    if found & _DURATION:
        return "duration"
    if found & _TIME:
        return "time"
    if found & _DESCRIPTION or any("desc" in w or "summar" in w for w in found):
        return "description"
    if found & _LABEL:
        return "label"
    for characters, role in _CJK:
        if characters in key:
            return role
    return None


@lru_cache(maxsize=4096)
def key_scale(key: str) -> float:
    """What one unit under this key is in seconds: 0.001 for milliseconds, else 1."""
    return 0.001 if set(words(key)) & _MILLISECONDS else 1.0
