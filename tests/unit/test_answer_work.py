"""Reading an answer costs work linear in its length, whatever it holds: guards without clocks.

Two guards, neither of which measures time: every regular expression the reader runs repeats
nothing without a bound (so no input can make one backtrack catastrophically: each match
attempt costs at most a constant), and the work the reader counts (characters scanned, values
visited: ``ParsedAnswer.work``) stays within a constant times the answer's length on hostile
256 KiB answers, and grows in proportion with it. Hypothesis fuzzes the new grammars.
"""

from __future__ import annotations

import importlib
import json
import re
import re._constants as sre_constants
import re._parser as sre_parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.localizers.answer.json_blocks import MAX_INPUT_CHARS, WORK_LIMIT
from workers.localizers.answer.read import ParsedAnswer, parse_answer
from workers.types import Chunk

CHUNK = Chunk(index=1, start_s=10.0, end_s=20.0, times=tuple(10.0 + 0.5 * i for i in range(21)))
ASKED = ("red circle", "blue square")
MODULES = (
    "items",
    "json_blocks",
    "keys",
    "labels",
    "lines",
    "objects",
    "prose",
    "read",
    "reask",
    "times",
)
WORK_PER_CHAR = 8  # work the reader may spend per character of the answer
WORK_OVERHEAD = 4096


def parse(content: str, labels: tuple[str, ...] = ASKED) -> ParsedAnswer:
    return parse_answer(content, "length", chunk=CHUNK, video_duration_s=60.0, labels=labels)


# ---- no unbounded repetition -----------------------------------------------------------------


def _repeats(parsed: Any) -> Iterator[tuple[int, int]]:
    """(min, max) of every repetition in a parsed pattern, at any depth."""
    for op, av in parsed:
        if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT) or (
            op == getattr(sre_constants, "POSSESSIVE_REPEAT", None)
        ):
            yield av[0], av[1]
            yield from _repeats(av[2])
        elif op == sre_constants.SUBPATTERN:
            yield from _repeats(av[3])
        elif op == sre_constants.BRANCH:
            for branch in av[1]:
                yield from _repeats(branch)
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            yield from _repeats(av[1])
        elif op == sre_constants.GROUPREF_EXISTS:
            yield from _repeats(av[1])
            if av[2] is not None:
                yield from _repeats(av[2])


def _patterns() -> list[tuple[str, re.Pattern[str]]]:
    found = []
    for name in MODULES:
        module = importlib.import_module(f"workers.localizers.answer.{name}")
        for attr, value in vars(module).items():
            if isinstance(value, re.Pattern):
                found.append((f"{name}.{attr}", value))
    return found


PATTERNS = _patterns()


def test_the_reader_has_patterns_to_check() -> None:
    assert len(PATTERNS) >= 12


@pytest.mark.parametrize(("name", "pattern"), PATTERNS, ids=[n for n, _ in PATTERNS])
def test_every_repetition_is_bounded(name: str, pattern: re.Pattern[str]) -> None:
    parsed = sre_parse.parse(pattern.pattern, pattern.flags)
    unbounded = [(low, high) for low, high in _repeats(parsed) if high == sre_constants.MAXREPEAT]
    assert unbounded == [], f"{name} repeats without a bound: {pattern.pattern!r}"


def test_the_check_sees_an_unbounded_repetition() -> None:
    # guards against a walk that finds nothing and so proves nothing
    assert any(h == sre_constants.MAXREPEAT for _, h in _repeats(sre_parse.parse(r"(a|b\d+)")))


# ---- work linear in the answer's length ------------------------------------------------------


def _fill(unit: str, size: int) -> str:
    return unit * (size // len(unit))


HOSTILE: dict[str, Callable[[int], str]] = {
    "digits": lambda n: "1" * n,
    "open-stamps": lambda n: _fill("<1", n),
    "stamps-on-one-line": lambda n: _fill("<12.0 seconds> and ", n),
    "stamp-listing": lambda n: _fill("<12.0 seconds>: red circle\n", n),
    "units": lambda n: _fill("12 s ", n),
    "clock-dashes": lambda n: _fill("0:00-", n),
    "colons": lambda n: _fill("1:2:3:", n),
    "dots": lambda n: _fill("1.", n),
    "pipes": lambda n: "|" * n,
    "table-rows": lambda n: (
        "| label | start | end |\n|---|---|---|\n" + _fill("| red circle | 12 s | 15 s |\n", n)
    ),
    "braces": lambda n: "{" * n,
    "brace-quotes": lambda n: _fill('{"', n),
    "single-quotes": lambda n: _fill("{'a': '", n),
    "trailing-commas": lambda n: _fill(",     ", n) + "]",
    "fences": lambda n: _fill("```json\n{\n```\n", n),
    "wide-json": lambda n: json.dumps({f"k{i}": [{"x": i}] for i in range(n // 20)})[:n],
    "many-events": lambda n: json.dumps(
        {"events": [{"label": "red circle", "start_s": 12, "end_s": 15}] * (n // 50)}
    )[:n],
    "label-keys": lambda n: json.dumps({f"red circle {i}": [12, 15] for i in range(n // 25)})[:n],
    "sentences": lambda n: _fill("red circle from <12.0 seconds> to <15.0 seconds>; ", n),
    "newlines": lambda n: "\n" * n,
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_answers_cost_work_linear_in_their_length(kind: str) -> None:
    small = parse(HOSTILE[kind](MAX_INPUT_CHARS // 4))
    full_text = HOSTILE[kind](MAX_INPUT_CHARS)
    full = parse(full_text)
    assert full.work <= WORK_PER_CHAR * len(full_text) + WORK_OVERHEAD <= WORK_LIMIT
    # four times the answer costs at most about four times the work, never its square
    assert full.work <= 4.5 * small.work + WORK_OVERHEAD
    for event in full.events:
        assert 9.0 <= event.start_s <= event.end_s <= 21.0


def test_work_is_counted() -> None:
    assert parse("The red circle is visible from 12 to 15 seconds.").work > 0


# ---- fuzz ------------------------------------------------------------------------------------

PIECES = [
    "<12.0 seconds>",
    "<15.5 seconds>",
    "< 9 s >",
    "12.0 s",
    "0:12",
    "00:15.50",
    "12",
    "15.5",
    " to ",
    " - ",
    " and ",
    " until ",
    "\u2013",
    "到",
    "秒",
    "|",
    "| --- |",
    "\n",
    ": ",
    ", ",
    ". ",
    "[",
    "]",
    "(",
    ")",
    "{",
    "}",
    '"',
    "'",
    "red circle",
    "blue square",
    "start",
    "end",
    "begin",
    "finish",
    "time",
    "label",
    "- ",
    "1. ",
    "</think>",
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=60).map("".join))
def test_text_of_the_new_grammars_never_breaks_the_reader(content: str) -> None:
    parsed = parse(content)
    assert parsed.rejected >= 0
    assert parsed.work <= WORK_PER_CHAR * len(content) + WORK_OVERHEAD
    for event in parsed.events:
        assert 9.0 <= event.start_s <= event.end_s <= 21.0
        assert event.label in ASKED
    if parsed.events:
        assert parsed.usable


KEY_NAMES = (
    *("events", "result", "label", "name", "begin", "finish", "start_ms", "timestamps"),
    *("time_range", "segments", "caption", "red circle", "开始时间", "x", "<12 s> - <15 s>"),
)
KEYS = st.sampled_from(KEY_NAMES)
json_answers = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=True)
    | st.integers(-5, 30)
    | st.sampled_from(["12 - 15 s", "<12.0 seconds>", "00:16", "red circle", "blue square"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=24,
)


@settings(max_examples=400, deadline=None)
@given(json_answers)
def test_json_of_any_shape_and_key_names_never_breaks_the_reader(value: Any) -> None:
    content = json.dumps(value, ensure_ascii=False)
    parsed = parse(content)
    assert parsed.work <= WORK_PER_CHAR * len(content) + WORK_OVERHEAD
    for event in parsed.events:
        assert 9.0 <= event.start_s <= event.end_s <= 21.0
        assert event.label in ASKED
