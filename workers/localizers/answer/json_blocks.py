"""Finding the JSON in a model's answer text, defensively and without I/O.

Models wrap JSON in fences and prose, think aloud before answering (Qwen3-VL Thinking: the chat
template pre-fills ``<think>``, so the answer holds only a closing ``</think>`` with a draft
before it), leave trailing commas, and run out of tokens mid-object. ``find_json`` returns the
first JSON value of the final answer, repaired where that is safe, or None.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

MAX_INPUT_CHARS = 256 * 1024
MAX_DEPTH = 16  # the contract is 3 deep; anything far deeper is garbage (and json recurses)
MAX_CANDIDATES = 16  # JSON start positions tried inside prose before giving up
# Reading one answer scans each character a bounded number of times: the JSON search tries at
# most MAX_CANDIDATES starts, the line reader reads each line once.
WORK_LIMIT = (MAX_CANDIDATES + 8) * MAX_INPUT_CHARS

_SIGNIFICANT = re.compile(r'["\\{}\[\]]')
_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)
_CLOSER = {"{": "}", "[": "]"}
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{0,16}[ \t]{0,16}")
_OPENERS = re.compile(r"[{\[]")


class Notes:
    """What reading one answer dropped (``rejected``) and everything worth saying (``reasons``),
    and the work spent reading it (``work``: characters scanned and values visited), held under
    ``WORK_LIMIT`` so that no answer costs more than a bounded amount to read."""

    def __init__(self) -> None:
        self.rejected = 0
        self.reasons: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.work = 0

    def spend(self, units: int = 1) -> bool:
        """Count ``units`` of work; False (and a note, once) when the budget is used up."""
        if self.work >= WORK_LIMIT:
            return False
        self.work += units
        if self.work >= WORK_LIMIT:
            self.note("answer too large to read in full")
        return True

    def note(self, reason: str, count: int = 1) -> None:
        self.reasons[reason] += count

    def reject(self, reason: str, count: int = 1) -> None:
        self.rejected += count
        self.dropped[reason] += count
        self.note(reason, count)

    def problems(self) -> tuple[str, ...]:
        return tuple(r if n == 1 else f"{r} (x{n})" for r, n in self.reasons.items())


def final_answer(content: str, notes: Notes) -> str:
    """The text after thinking: what follows the last ``</think>``; nothing if it never closed."""
    if len(content) > MAX_INPUT_CHARS:
        notes.note(f"answer over {MAX_INPUT_CHARS // 1024} KiB was cut")
        content = content[:MAX_INPUT_CHARS]
    closes = list(_THINK_CLOSE.finditer(content))
    if closes:
        # A draft before the last </think> (JSON or not) is reasoning, never the answer.
        return content[closes[-1].end() :]
    opened = _THINK_OPEN.search(content)
    if opened is not None:
        notes.note("answer cut off while thinking")
        return content[: opened.start()]
    return content


def find_json(text: str, finish_reason: str, notes: Notes) -> Any:
    """The first JSON value in ``text`` (inside code fences first), or None."""
    for candidate in _search_texts(text):
        value = _first_json_value(candidate, finish_reason, notes)
        if value is not None:
            return value
    return None


def _search_texts(content: str) -> list[str]:
    """Inside code fences first (the model's own framing), then the whole text."""
    texts = []
    pieces = content.split("```")
    for inside in pieces[1::2]:  # odd pieces sit between fences; an unclosed one runs to the end
        tag = _LANGUAGE_TAG.match(inside)  # a "json" language tag
        inside = inside[tag.end() :] if tag else inside
        if "{" in inside or "[" in inside:
            texts.append(inside)
    texts.append(content)
    return texts


def _first_json_value(text: str, finish_reason: str, notes: Notes) -> Any:
    openers = _OPENERS.finditer(text)
    starts = [m.start() for _, m in zip(range(MAX_CANDIDATES), openers, strict=False)]
    for pos in starts:
        if not notes.spend(len(text) - pos):
            return None
        end, stack_at_closes, too_deep = _scan(text, pos)
        if too_deep:
            notes.note("JSON nested too deeply")
            return None  # every later candidate starts inside the same deep structure
        if end is not None:
            snippet = text[pos:end]
            value = _loads(snippet)
            if value is None:
                value = _loads(drop_trailing_commas(snippet))
            if value is not None:
                return value
            continue
        # Unclosed: output stopped mid-JSON. Cut after the last complete object, close the rest.
        value = _repair(text, pos, stack_at_closes)
        if value is not None:
            reason = "length" if finish_reason == "length" else f"finish_reason={finish_reason}"
            notes.note(f"answer truncated ({reason}); kept complete events")
            return value
    return None


def drop_trailing_commas(text: str) -> str:
    """``[1, 2,]`` -> ``[1, 2]``, leaving commas inside strings alone.

    Written here rather than taken from json5/dirtyjson: this is the only liberty worth
    granting, and a full JSON5 parser would also accept what should stay refused (comments,
    unquoted keys), in pure Python, on inputs of up to 256 KiB.
    """
    if not _may_have_trailing_comma(text):
        return text
    out: list[str] = []
    in_string = False
    escaped = False
    pending_comma: int | None = None  # index in ``out`` of a comma that may be trailing
    for char in text:
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char in "}]" and pending_comma is not None:
            out[pending_comma] = ""
        if not char.isspace():
            pending_comma = None
        if char == ",":
            pending_comma = len(out)
        elif char == '"':
            in_string = True
        out.append(char)
    return "".join(out)


def _may_have_trailing_comma(text: str) -> bool:
    """A comma followed, after whitespace only, by a closing bracket (a cheap first look)."""
    at = text.find(",")
    while at >= 0:
        i = at + 1
        while i < len(text) and text[i].isspace():
            i += 1
        if i < len(text) and text[i] in "}]":
            return True
        at = text.find(",", i)
    return False


def _scan(text: str, pos: int) -> tuple[int | None, list[tuple[int, str]], bool]:
    """Bracket-match from ``pos``: (end or None if unclosed, [(cut, open stack)], too deep)."""
    stack: list[str] = []
    closes: list[tuple[int, str]] = []
    in_string = False
    escaped_at = -1
    for match in _SIGNIFICANT.finditer(text, pos):
        i = match.start()
        char = match.group()
        if i == escaped_at:
            continue
        if in_string:
            if char == "\\":
                escaped_at = i + 1
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "{[":
            stack.append(char)
            if len(stack) > MAX_DEPTH:
                return None, closes, True
        elif char in "}]":
            if not stack or _CLOSER[stack[-1]] != char:
                return None, closes, False  # mismatched: not repairable from here
            stack.pop()
            if not stack:
                return i + 1, closes, False
            if char == "}":
                closes.append((i + 1, "".join(stack)))
                del closes[:-8]  # only the last few cut points are ever tried
    return None, closes, False


def _repair(text: str, pos: int, closes: list[tuple[int, str]]) -> Any:
    for cut, stack in reversed(closes):
        tail = "".join(_CLOSER[c] for c in reversed(stack))
        snippet = text[pos:cut] + tail
        value = _loads(snippet)
        if value is None:
            value = _loads(drop_trailing_commas(snippet))
        if value is not None:
            return value
    return None


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:  # JSONDecodeError, or an integer too long to convert
        pass
    if "'" in text and '"' not in text:
        # Python's quotes ({'label': 'red circle'}): a person reads it, so read it. Only when
        # no double quote is present, so an apostrophe inside a JSON string is never touched.
        try:
            return json.loads(text.replace("'", '"'))
        except ValueError:
            return None
    return None
