from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.localizers.answer.json_blocks import drop_trailing_commas
from workers.localizers.answer.read import (
    MAX_EVENTS,
    ParsedAnswer,
    labels_in_text,
    parse_answer,
    relative_offset,
)
from workers.types import Chunk

CHUNK = Chunk(index=1, start_s=10.0, end_s=20.0, times=(10.0, 12.0, 14.0, 16.0, 18.0, 20.0))
GOOD = '{"events": [{"label": "red circle", "start_s": 12.0, "end_s": 15.0, "description": "a red circle", "confidence": 0.9}]}'  # noqa: E501


def parse(
    content: str, finish: str = "stop", labels: tuple[str, ...] = (), duration: float = 60.0
) -> ParsedAnswer:
    return parse_answer(content, finish, chunk=CHUNK, video_duration_s=duration, labels=labels)


def spans(parsed: ParsedAnswer) -> list[tuple[str, float, float]]:
    return [(e.label, e.start_s, e.end_s) for e in parsed.events]


def ev(
    label: str = "red circle", start: Any = 12.0, end: Any = 15.0, **extra: Any
) -> dict[str, Any]:
    return {"label": label, "start_s": start, "end_s": end, **extra}


def answer(*events: dict[str, Any]) -> str:
    return json.dumps({"events": list(events)})


def test_clean_answer() -> None:
    parsed = parse(GOOD)
    assert spans(parsed) == [("red circle", 12.0, 15.0)]
    event = parsed.events[0]
    assert (event.description, event.confidence, event.source) == ("a red circle", 0.9, "vlm")
    assert parsed.rejected == 0
    assert parsed.problems == ()
    assert parsed.readable


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(f"```json\n{GOOD}\n```", id="fenced"),
        pytest.param(f"```\n{GOOD}\n```", id="fence-no-lang"),
        pytest.param(
            f"Sure! Here is what I found:\n```json\n{GOOD}\n```\nHope it helps.", id="fence+prose"
        ),
        pytest.param(f"Here you go: {GOOD} -- let me know {{if}} more.", id="prose"),
        pytest.param(f"<think>a {{ b</think>{GOOD}", id="think-block"),
        pytest.param(f"```json\n{GOOD}", id="unclosed-fence"),
        pytest.param(GOOD.replace("}]}", "},]}"), id="trailing-comma"),
        pytest.param(json.dumps([ev()]), id="bare-list"),
        pytest.param(json.dumps(ev()), id="bare-event"),
        pytest.param(json.dumps({"results": [ev()]}), id="other-key"),
    ],
)
def test_wrappers_are_seen_through(content: str) -> None:
    parsed = parse(content)
    assert spans(parsed) == [("red circle", 12.0, 15.0)]
    assert parsed.readable


def test_truncated_answer_keeps_complete_events() -> None:
    full = answer(ev(start=11, end=12), ev("green square", 13, 14), ev("blue triangle", 15, 16))
    cut = full[: full.index("blue triangle") + 5]
    parsed = parse(cut, finish="length")
    assert spans(parsed) == [("red circle", 11.0, 12.0), ("green square", 13.0, 14.0)]
    assert any("truncated (length)" in p for p in parsed.problems)
    assert parsed.readable


def test_truncated_before_any_event_is_not_json() -> None:
    parsed = parse('{"events": [{"label": "red', finish="length")
    assert parsed.events == ()
    assert not parsed.readable
    assert parsed.rejected == 1


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        pytest.param("12.5", "14", (12.5, 14.0), id="numeric-strings"),
        pytest.param("12.5s", "14 seconds", (12.5, 14.0), id="units"),
        pytest.param("<12.5 seconds>", "<14.0 seconds>", (12.5, 14.0), id="qwen-format"),
        pytest.param("00:00:12.5", "0:14", (12.5, 14.0), id="clock"),
        pytest.param(15, 12, (12.0, 15.0), id="reversed"),
        pytest.param(5, 14, (9.0, 14.0), id="clamped-low"),
        pytest.param(18, 40, (18.0, 21.0), id="clamped-high"),
        pytest.param(10.5, 20.5, (10.5, 20.5), id="within-slack"),
    ],
)
def test_times_are_coerced(start: Any, end: Any, expected: tuple[float, float]) -> None:
    parsed = parse(answer(ev(start=start, end=end)))
    assert [(e.start_s, e.end_s) for e in parsed.events] == [expected]
    assert parsed.rejected == 0


def test_reversed_and_clamped_are_reported() -> None:
    parsed = parse(answer(ev(start=30, end=15)))
    assert spans(parsed) == [("red circle", 15.0, 21.0)]
    assert "reversed times swapped" in parsed.problems
    assert "times clamped to the chunk" in parsed.problems


def test_clamped_to_video_duration() -> None:
    parsed = parse(answer(ev(start=12, end=20.9)), duration=19.5)
    assert spans(parsed) == [("red circle", 12.0, 19.5)]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"start_s": float("nan")}, id="nan"),
        pytest.param({"start_s": float("inf")}, id="inf"),
        pytest.param({"start_s": -3}, id="negative"),
        pytest.param({"start_s": None}, id="null"),
        pytest.param({"start_s": "soon"}, id="words"),
        pytest.param({"start_s": True}, id="bool"),
        pytest.param({"start_s": [1]}, id="list"),
    ],
)
def test_bad_times_are_rejected(bad: dict[str, Any]) -> None:
    event = ev()
    event.update(bad)
    parsed = parse(json.dumps({"events": [event, ev("green square")]}))
    assert spans(parsed) == [("green square", 12.0, 15.0)]
    assert parsed.rejected == 1
    assert "missing, negative or non-finite time" in parsed.problems


def test_missing_end_is_rejected_but_point_time_accepted() -> None:
    parsed = parse(
        json.dumps({"events": [{"label": "a", "start_s": 12}, {"label": "b", "time": 13}]})
    )
    assert spans(parsed) == [("b", 13.0, 13.0)]
    assert parsed.rejected == 1


def test_outside_chunk_is_rejected() -> None:
    parsed = parse(answer(ev(start=40, end=50), ev(start=1, end=2)))
    assert parsed.events == ()
    assert parsed.rejected == 2
    assert "event outside the chunk (x2)" in parsed.problems


def test_labels_filter_case_insensitive_and_canonical() -> None:
    content = answer(
        ev("Red_Circle"), ev("RED CIRCLES", 13, 16), ev("dog"), ev("  blue   triangle ")
    )
    parsed = parse(content, labels=("red circle", "blue triangle"))
    assert spans(parsed) == [
        ("red circle", 12.0, 15.0),
        ("red circle", 13.0, 16.0),
        ("blue triangle", 12.0, 15.0),
    ]
    assert parsed.rejected == 1
    assert "label not asked for" in parsed.problems


def test_without_labels_any_label_is_kept_normalised() -> None:
    parsed = parse(answer(ev("  A  Dog ")))
    assert spans(parsed) == [("a dog", 12.0, 15.0)]


def test_duplicates_are_dropped() -> None:
    parsed = parse(answer(ev(), ev(), ev("RED circle"), ev(start=12.001)))
    assert spans(parsed) == [("red circle", 12.0, 15.0)]
    assert parsed.rejected == 3
    assert "duplicate event (x3)" in parsed.problems


def test_huge_answer_is_capped() -> None:
    events = [ev(start=10 + i * 0.01, end=19) for i in range(MAX_EVENTS + 300)]
    parsed = parse(answer(*events))
    assert len(parsed.events) == MAX_EVENTS
    assert parsed.rejected == 300


def test_oversized_input_is_cut_and_repaired() -> None:
    events = [ev(start=10 + i * 0.01, end=19, description="x" * 200) for i in range(2000)]
    content = answer(*events)
    assert len(content) > 256 * 1024
    parsed = parse(content)
    assert len(parsed.events) == MAX_EVENTS
    assert any("KiB was cut" in p for p in parsed.problems)


def test_deep_nesting_is_refused_without_recursion() -> None:
    parsed = parse("[" * 100_000 + "]" * 100_000)
    assert parsed.events == ()
    assert not parsed.readable
    assert "JSON nested too deeply" in parsed.problems


def test_nested_extra_fields_are_tolerated() -> None:
    parsed = parse(answer(ev(extra={"bbox": [1, 2, 3, 4]})))
    assert spans(parsed) == [("red circle", 12.0, 15.0)]


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (42, "event is not an object"),
        ({"start_s": 12, "end_s": 13}, "event without a label"),
        ({"label": 7, "start_s": 12, "end_s": 13}, "event without a label"),
        ({"label": "  ", "start_s": 12, "end_s": 13}, "event without a label"),
    ],
)
def test_malformed_items(item: Any, reason: str) -> None:
    parsed = parse(json.dumps({"events": [item]}))
    assert parsed.events == ()
    assert parsed.rejected == 1
    assert reason in parsed.problems
    assert parsed.readable


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.5, 0.5),
        ("0.7", 0.7),
        (90, 0.9),
        ("80%", 0.8),
        (-1, None),
        (500, None),
        (True, None),
        ("high", None),
        (float("nan"), None),
    ],
)
def test_confidence_coercion(value: Any, expected: float | None) -> None:
    parsed = parse(answer(ev(confidence=value)))
    assert parsed.events[0].confidence == (pytest.approx(expected) if expected else None)


@pytest.mark.parametrize(
    "content",
    ["", "   ", "I could not see anything.", "{not json at all}", "```\nnope\n```", "[1, 2"],
)
def test_no_answer_means_unreadable(content: str) -> None:
    parsed = parse(content)
    assert parsed.events == ()
    assert not parsed.readable
    assert parsed.rejected == 1
    assert "no JSON answer found" in parsed.problems


def test_empty_events_is_a_valid_answer() -> None:
    parsed = parse('{"events": []}')
    assert parsed == ParsedAnswer((), 0, (), True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(alphabet=st.sampled_from(list('{}[]",:0123456789.-eE ntrufalsNIy\\`abc'))) | st.text()
)
def test_never_raises_on_arbitrary_text(content: str) -> None:
    parsed = parse(content, finish="length", labels=("red circle",))
    assert parsed.rejected >= 0
    for event in parsed.events:
        assert 9.0 <= event.start_s <= event.end_s <= 21.0
        assert event.label == "red circle"


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["label", "start_s", "end_s", "events", "x"]), children, max_size=4
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_never_raises_on_arbitrary_json(value: Any) -> None:
    parsed = parse(json.dumps(value))
    for event in parsed.events:
        assert 9.0 <= event.start_s <= event.end_s <= 21.0


# ---- every shape the real model answers in (shared/QWEN3VL.md) ----------------------------

TWO = (("red circle", 12.0, 15.0), ("blue square", 16.0, 18.5))
ASKED = ("red circle", "blue square")


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(
            answer(ev(), ev("blue square", 16, 18.5)),
            id="canonical",
        ),
        pytest.param(
            json.dumps([ev(), ev("blue square", 16, 18.5)]),
            id="bare-list",
        ),
        pytest.param(
            '{"events": [{"label": "red circle", "start_s": 12, "end_s": 15,},'
            ' {"label": "blue square", "start_s": 16, "end_s": 18.5,},],}',
            id="trailing-commas",
        ),
        pytest.param(
            json.dumps(
                {
                    "events": [
                        {"label": "red circle", "time": "12.0 - 15.0 seconds"},
                        {"label": "blue square", "time": "16.0 - 18.5 seconds"},
                    ]
                }
            ),
            id="range-in-time-field",
        ),
        pytest.param(
            json.dumps(
                [
                    {"label": "red circle", "time_range": "from 12 to 15 s"},
                    {"label": "blue square", "span": "0:16-0:18.5"},
                ]
            ),
            id="from-to-and-clock-ranges",
        ),
        pytest.param(
            json.dumps(
                {
                    "events": [
                        {"label": "red circle", "time": "12.0秒到15.0秒"},
                        {"label": "blue square", "time": "16秒到18.5秒"},
                    ]
                },
                ensure_ascii=False,
            ),
            id="chinese-dao",
        ),
        pytest.param(
            json.dumps(
                {
                    "events": [
                        {"label": "red circle", "timestamp": [12.0, 15.0]},
                        {"label": "blue square", "timestamp": [16.0, 18.5]},
                    ]
                }
            ),
            id="timestamp-pairs",
        ),
        pytest.param(
            json.dumps(
                [
                    {"label": "red circle", "segment": ["12s", "15s"]},
                    {"label": "blue square", "when_seen": [16, 18.5]},
                ]
            ),
            id="pairs-under-any-key",
        ),
        pytest.param(
            json.dumps(
                {
                    "events": [
                        {"label": "red circle", "start": "00:12.00", "end": "00:15.00"},
                        {"label": "blue square", "start": "0:16", "end": "00:00:18.50"},
                    ]
                }
            ),
            id="mm:ss-strings",
        ),
        pytest.param(
            json.dumps(
                {
                    "events": [
                        {"label": "red circle", "start_s": "12 sec.", "end_s": "15 seconds"},
                        {"label": "blue square", "start_s": "16秒", "end_s": "18.5s"},
                    ]
                },
                ensure_ascii=False,
            ),
            id="times-with-units",
        ),
        pytest.param(
            '```json\n{"00:12.00 - 00:15.00": "A red circle is visible in the middle.",\n'
            ' "00:16.00 - 00:18.50": "Blue squares slide in."}\n```',
            id="time-keyed-cookbook",
        ),
        pytest.param(
            json.dumps({"events": {"12 - 15 s": "red circle", "16 - 18.5 s": "blue square"}}),
            id="time-keyed-under-events",
        ),
        pytest.param(
            json.dumps({"red circle": [12, 15], "Blue Square": "16 - 18.5 seconds"}),
            id="label-keyed",
        ),
        pytest.param(
            'Let me think. Draft: {"events": [{"label": "red circle", "start_s": 1, "end_s": 2}]}'
            "\nNo, wrong.\n</think>\n\n" + answer(ev(), ev("blue square", 16, 18.5)),
            id="closing-think-after-draft",
        ),
        pytest.param(
            "<think>draft " + answer(ev(start=19, end=20)) + "</think> first idea\n"
            "</think>" + answer(ev(), ev("blue square", 16, 18.5)),
            id="last-closing-think-wins",
        ),
        pytest.param(
            "The red circle appears from 12 to 15 seconds. "
            "The blue square is visible in 16.0 - 18.5 seconds.",
            id="prose-ranges",
        ),
    ],
)
def test_every_answer_shape_reads_the_same(content: str) -> None:
    parsed = parse(content, labels=ASKED)
    assert sorted(spans(parsed)) == sorted(TWO)
    assert parsed.usable
    assert parsed.rejected == 0


def test_time_keyed_text_naming_two_labels_gives_two_events() -> None:
    content = json.dumps({"00:12.00 - 00:15.00": "A red circle and two blue squares are visible"})
    parsed = parse(content, labels=ASKED)
    assert spans(parsed) == [("red circle", 12.0, 15.0), ("blue square", 12.0, 15.0)]
    assert parsed.events[0].description == "A red circle and two blue squares are visible"


def test_time_keyed_text_without_labels_keeps_the_text() -> None:
    parsed = parse(json.dumps({"00:12.00 - 00:15.00": "Trim the fat off the meat"}))
    assert spans(parsed) == [("trim the fat off the meat", 12.0, 15.0)]
    assert parsed.events[0].description == "Trim the fat off the meat"


@pytest.mark.parametrize(
    ("content", "labels", "expected"),
    [
        pytest.param(
            "The event happens in 12.5 - 14.5 seconds.",
            ("person opens door",),
            [("person opens door", 12.5, 14.5)],
            id="one-question-one-answer",
        ),
        pytest.param(
            json.dumps({"00:12 - 00:14": "somebody walks in"}),
            ("red circle", "blue square"),
            [],
            id="two-asked-none-named",
        ),
        pytest.param(
            answer(ev("a big red circle")),
            ASKED,
            [("red circle", 12.0, 15.0)],
            id="label-inside-a-phrase",
        ),
        pytest.param(
            answer(ev("red circle and blue square")),
            ASKED,
            [],
            id="phrase-naming-two-is-ambiguous",
        ),
    ],
)
def test_label_matching_from_text(
    content: str, labels: tuple[str, ...], expected: list[tuple[str, float, float]]
) -> None:
    assert spans(parse(content, labels=labels)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("A Red Circle is visible", ["red circle"], id="case"),
        pytest.param("two red circles", ["red circle"], id="plural"),
        pytest.param("blue squares, then a red_circle", ["blue square", "red circle"], id="order"),
        pytest.param("a redcircle", [], id="no-word-boundary"),
        pytest.param("infrared circle", [], id="inside-a-word"),
        pytest.param("", [], id="empty"),
    ],
)
def test_labels_in_text(text: str, expected: list[str]) -> None:
    assert labels_in_text(text, ASKED) == expected


def test_chinese_labels_match_without_word_boundaries() -> None:
    assert labels_in_text("画面中出现红色圆圈", ["红色圆圈"]) == ["红色圆圈"]


def test_thinking_that_never_closed_is_no_answer() -> None:
    parsed = parse("<think>The red circle is at " + answer(ev()), finish="length")
    assert parsed.events == ()
    assert not parsed.usable
    assert "answer cut off while thinking" in parsed.problems


def test_trailing_commas_inside_strings_are_kept() -> None:
    assert drop_trailing_commas('{"a": ",]", "b": [1, 2, ], }') == '{"a": ",]", "b": [1, 2 ] }'
    parsed = parse(
        '{"events": [{"label": "red circle", "start_s": 12, "end_s": 15, '
        '"description": "odd ,} text",},]}'
    )
    assert parsed.events[0].description == "odd ,} text"


# ---- times relative to the request's first frame -------------------------------------------

LATE = Chunk(index=3, start_s=60.0, end_s=90.0, times=tuple(60.5 + i for i in range(30)))


@pytest.mark.parametrize(
    ("spans_given", "times", "expected"),
    [
        pytest.param([(2.0, 5.0)], LATE.times, 60.5, id="relative"),
        pytest.param([(0.0, 29.5)], LATE.times, 60.5, id="whole-request"),
        pytest.param([(62.0, 65.0)], LATE.times, 0.0, id="absolute"),
        pytest.param([(2.0, 5.0), (70.0, 72.0)], LATE.times, 0.0, id="mixed-is-absolute"),
        pytest.param([(2.0, 40.0)], LATE.times, 0.0, id="longer-than-the-request"),
        pytest.param([(0.2, 0.8)], (0.5, 1.5, 2.5), 0.0, id="request-starts-at-zero"),
        pytest.param([], LATE.times, 0.0, id="no-times"),
        pytest.param(
            [(3.0, 4.0)], (20.5, 21.5, 50.5), 20.5, id="long-request-relative-before-window"
        ),
        pytest.param([(25.0, 28.0)], (20.5, 21.5, 50.5), 0.0, id="could-be-either-is-absolute"),
    ],
)
def test_relative_offset(
    spans_given: list[tuple[float, float]], times: tuple[float, ...], expected: float
) -> None:
    assert relative_offset(spans_given, times) == expected


def test_relative_times_are_shifted_and_counted() -> None:
    content = answer(ev(start=2.0, end=5.0), ev("blue square", 10.0, 12.5))
    parsed = parse_answer(content, "stop", chunk=LATE, video_duration_s=120.0, labels=())
    assert spans(parsed) == [("red circle", 62.5, 65.5), ("blue square", 70.5, 73.0)]
    assert parsed.relative_shifted == 2
    assert parsed.rejected == 0


def test_relative_times_follow_the_request_not_the_chunk() -> None:
    # The second half of a split chunk: times count from its own first frame.
    second_half = LATE.times[15:]
    parsed = parse_answer(
        answer(ev(start=1.0, end=3.0)),
        "stop",
        chunk=LATE,
        video_duration_s=120.0,
        labels=(),
        frame_times=second_half,
    )
    assert spans(parsed) == [("red circle", 76.5, 78.5)]
    assert parsed.relative_shifted == 1


# ---- usable, validly empty, or unusable ----------------------------------------------------


@pytest.mark.parametrize(
    ("content", "usable", "readable"),
    [
        pytest.param('{"events": []}', True, True, id="valid-empty"),
        pytest.param("[]", True, True, id="valid-empty-list"),
        pytest.param("{}", True, True, id="empty-object"),
        pytest.param(GOOD, True, True, id="good"),
        pytest.param(answer(ev(), ev(start=40, end=50)), True, True, id="some-rejected"),
        pytest.param(answer(ev(start=40, end=50)), False, True, id="all-rejected"),
        pytest.param(answer(ev("dog")), False, True, id="label-not-asked"),
        pytest.param('{"answer": "none"}', False, False, id="no-events-shape"),
        pytest.param("I could not see anything.", False, False, id="prose-no-times"),
        pytest.param("", False, False, id="empty"),
        pytest.param("{label: red circle}", False, False, id="broken-json"),
    ],
)
def test_usable_versus_validly_empty(content: str, usable: bool, readable: bool) -> None:
    parsed = parse(content, labels=("red circle",))
    assert parsed.usable is usable
    assert parsed.readable is readable
    assert bool(parsed.why_unusable) is not usable


def test_why_unusable_names_the_rejections() -> None:
    parsed = parse(answer(ev(start=40, end=50), ev("dog")), labels=("red circle",))
    assert "event outside the chunk" in parsed.why_unusable
    assert "label not asked for" in parsed.why_unusable
    assert dict(parsed.dropped) == {"event outside the chunk": 1, "label not asked for": 1}
