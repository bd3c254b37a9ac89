"""Answers in forms no layout planned for, read by what their events are (issue 21, part 6).

A label-like text with two times is an event wherever it stands: in JSON at any depth under any
key names, in a markdown table row, in a sentence that echoes the ``<t seconds>`` stamps, or as
a frame-by-frame listing. What holds no times stays unreadable, loudly.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from workers.localizers.answer.keys import key_role, key_scale
from workers.localizers.answer.prose import listing_time, stated_spans, whole_span
from workers.localizers.answer.read import ParsedAnswer, join_listed, parse_answer
from workers.types import Chunk, DetectedEvent

CHUNK = Chunk(index=1, start_s=10.0, end_s=20.0, times=tuple(10.0 + 0.5 * i for i in range(21)))
ASKED = ("red circle", "blue square")
TWO = [("blue square", 16.0, 18.5), ("red circle", 12.0, 15.0)]


def parse(content: str, labels: tuple[str, ...] = ASKED) -> ParsedAnswer:
    return parse_answer(content, "stop", chunk=CHUNK, video_duration_s=60.0, labels=labels)


def spans(parsed: ParsedAnswer) -> list[tuple[str, float, float]]:
    return sorted((e.label, e.start_s, e.end_s) for e in parsed.events)


# ---- what a key means ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "role"),
    [
        ("start_s", "start"),
        ("startTime", "start"),
        ("timestamp_start", "start"),
        ("begin", "start"),
        ("from", "start"),
        ("Appears (s)", "start"),
        ("first_seen", "start"),
        ("开始时间", "start"),
        ("end_time", "end"),
        ("finish", "end"),
        ("to", "end"),
        ("Disappears (s)", "end"),
        ("last_seen", "end"),
        ("结束时间", "end"),
        ("time", "time"),
        ("timestamps", "time"),
        ("timecode", "time"),
        ("relevant_windows", "time"),
        ("start_end", "time"),
        ("时间范围", "time"),
        ("duration_s", "duration"),
        ("label", "label"),
        ("className", "label"),
        ("query", "label"),
        ("Event", "label"),
        ("description", "description"),
        ("chapterSummary", "description"),
        ("level_description", "description"),
        ("What is visible", "description"),
        ("场景描述", "description"),
        ("score", "confidence"),
        ("first_frame", None),
        ("bbox_2d", None),
        ("events", None),
        ("red circle", None),
    ],
)
def test_a_key_means_what_its_words_say(key: str, role: str | None) -> None:
    assert key_role(key) == role


def test_milliseconds_are_scaled() -> None:
    assert (key_scale("start_ms"), key_scale("endMs"), key_scale("end")) == (0.001, 0.001, 1.0)


# ---- times in sentences --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        pytest.param("visible from <12.0 seconds> to <15.0 seconds>", [(12.0, 15.0)], id="to"),
        pytest.param("<12.0 seconds> - <15.0 seconds>", [(12.0, 15.0)], id="dash"),
        pytest.param("appears at <12.0 seconds> and disappears at <15.0 seconds>", [(12.0, 15.0)]),
        pytest.param("starts at 12.0 s and ends at 15.0 s", [(12.0, 15.0)], id="units"),
        pytest.param("first seen at 0:12, last seen at 0:15", [(12.0, 15.0)], id="clocks"),
        pytest.param("在<12.0秒>出现\uff0c在<15.0秒>消失", [(12.0, 15.0)], id="chinese-end-after"),
        pytest.param("从<12.0秒>到<15.0秒>", [(12.0, 15.0)], id="chinese-dao"),
        pytest.param("[00:15, 00:32]", [(15.0, 32.0)], id="bracket-pair"),
        pytest.param("31.5 - 40.5 seconds", [(31.5, 40.5)], id="plain-range"),
        pytest.param(
            "a red circle at <12.0 seconds> and a blue square at <14.0 seconds>",
            [],
            id="two-moments-are-no-span",
        ),
        pytest.param("visible at <12.0 seconds>, <13.0 seconds>", [], id="a-comma-joins-nothing"),
        pytest.param("at 12 seconds the circle appears", [], id="one-time"),
        pytest.param("<t17> and <t26>", [], id="not-seconds"),
        pytest.param("3 sides and 5 corners", [], id="counts"),
        pytest.param("won 2:1 after 90 minutes", [], id="score"),
    ],
)
def test_spans_a_sentence_states(sentence: str, expected: list[tuple[float, float]]) -> None:
    assert [s.span for s in stated_spans(sentence)] == expected


def test_each_span_gets_its_own_part_of_the_sentence() -> None:
    labels_first = stated_spans(
        "I see a red circle between 12.0 and 15.0 seconds and a blue square between 16 and 18.5 s"
    )
    assert ["red circle" in s.text and "blue" not in s.text for s in labels_first] == [True, False]
    assert "blue square" in labels_first[1].text
    times_first = stated_spans("12 - 15 s a red circle, 16 - 18.5 s a blue square")
    assert [s.text for s in times_first] == ["12 - 15 s a red circle", "16 - 18.5 s a blue square"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("<12.0 seconds>: red circle", (12.0, "red circle")),
        ("- 0:12 red circle and blue square", (12.0, "red circle and blue square")),
        ("3. At <12.5 seconds> - nothing", (12.5, "nothing")),
        ("The red circle appears at <12.0 seconds>.", None),
        ("<12.0 seconds> to <15.0 seconds>: red circle", None),
    ],
)
def test_listing_lines_start_with_their_only_time(
    line: str, expected: tuple[float, str] | None
) -> None:
    assert listing_time(line) == expected


def test_a_key_that_is_a_whole_span() -> None:
    assert whole_span("<12.0 seconds> - <15.0 seconds>") == (12.0, 15.0)
    assert whole_span("red circle <12.0 seconds> - <15.0 seconds>") is None


# ---- whole answers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(
            "The red circle is visible from <12.0 seconds> to <15.0 seconds>. The blue square "
            "appears at <16.0 seconds> and disappears after <18.5 seconds>.",
            id="stamps-prose",
        ),
        pytest.param(
            "The red circle appears at <12.0 seconds>. It leaves at <15.0 seconds>.\n"
            "Blue square: <16.0 seconds> \u2013 <18.5 seconds>",
            id="start-and-end-in-two-sentences",
        ),
        pytest.param(
            "| Event | Start | End |\n|---|---|---|\n"
            "| red circle | 12.0 s | 15.0 s |\n| blue square | 16.0 s | 18.5 s |",
            id="table",
        ),
        pytest.param(
            "| Object | Appears (s) | Disappears (s) |\n|:--|--:|--:|\n"
            "| Red circle | 12 | 15 |\n| Blue square | 16 | 18.5 |",
            id="table-seconds-in-headers",
        ),
        pytest.param(
            "| red circle | 12.0 s - 15.0 s |\n| blue square | 16.0 s - 18.5 s |",
            id="table-without-header",
        ),
        pytest.param(
            json.dumps(
                {
                    "result": {
                        "events": [
                            {"label": "red circle", "start_s": 12, "end_s": 15},
                            {"label": "blue square", "start_s": 16, "end_s": 18.5},
                        ]
                    }
                }
            ),
            id="one-level-deeper",
        ),
        pytest.param(
            json.dumps(
                {
                    "video_analysis": {
                        "detected_objects": [
                            {"object": "red circle", "time_range": "12.0-15.0s"},
                            {"object": "blue square", "time_range": "16.0-18.5s"},
                        ]
                    }
                }
            ),
            id="other-names-deeper",
        ),
        pytest.param(
            json.dumps(
                [
                    {"name": "red circle", "begin": 12, "finish": 15},
                    {"className": "blue square", "startTime": "16 s", "endTime": "18.5 s"},
                ]
            ),
            id="begin-finish-camel-case",
        ),
        pytest.param(
            json.dumps(
                {
                    "events": [
                        {"label": "red circle", "start_ms": 12000, "end_ms": 15000},
                        {"label": "blue square", "start": 16, "duration_s": 2.5},
                    ]
                }
            ),
            id="milliseconds-and-duration",
        ),
        pytest.param(
            json.dumps({"red circle": [{"start": 12, "end": 15}], "blue square": [[16, 18.5]]}),
            id="label-keyed-lists",
        ),
        pytest.param(
            "{'events': [{'label': 'red circle', 'start_s': 12, 'end_s': 15}, "
            "{'label': 'blue square', 'start_s': 16, 'end_s': 18.5}]}",
            id="single-quoted",
        ),
        pytest.param(
            json.dumps(
                {
                    "<12.0 seconds> - <15.0 seconds>": "a red circle",
                    "<16.0 seconds> - <18.5 seconds>": "a blue square",
                }
            ),
            id="stamp-keys",
        ),
        pytest.param(
            json.dumps(
                {
                    "answer": "The red circle is visible from 12.0 to 15.0 seconds and the "
                    "blue square from 16.0 to 18.5 seconds."
                }
            ),
            id="a-sentence-under-a-key",
        ),
        pytest.param(
            "Frame by frame:\n"
            + "\n".join(
                f"<{t / 2:.1f} seconds>: "
                + (" and ".join(n for n, a, b in TWO if a <= t / 2 <= b) or "nothing")
                for t in range(23, 39)
            ),
            id="frame-listing",
        ),
    ],
)
def test_forms_a_person_reads_give_the_same_events(content: str) -> None:
    parsed = parse(content)
    assert spans(parsed) == TWO, parsed.problems
    assert parsed.usable
    assert parsed.rejected == 0


def test_one_label_bare_pairs_answer_the_one_question() -> None:
    assert spans(parse("[12.0, 15.0]", ("red circle",))) == [("red circle", 12.0, 15.0)]
    assert spans(parse("[[12, 13], [14, 15]]", ("red circle",))) == [
        ("red circle", 12.0, 13.0),
        ("red circle", 14.0, 15.0),
    ]


def test_a_lone_timed_line_is_a_remark_not_a_listing() -> None:
    parsed = parse("<12.0 seconds>: red circle")
    assert not parsed.readable


def test_a_listing_line_naming_nothing_asked_is_not_the_sole_label() -> None:
    parsed = parse("<12.0 seconds>: a dog\n<12.5 seconds>: a dog", ("red circle",))
    assert parsed.events == ()
    assert parsed.usable and parsed.rejected == 0  # it saw nothing asked for, plainly


def test_listed_moments_join_by_consecutive_lines() -> None:
    def moment(label: str, t: float) -> DetectedEvent:
        return DetectedEvent(label, t, t, source="vlm")

    listed = [
        (0, moment("red", 12.0)),
        (1, moment("red", 12.5)),
        (2, moment("blue", 13.0)),
        (3, moment("red", 13.5)),
        (3, moment("blue", 13.5)),
    ]
    assert [(e.label, e.start_s, e.end_s) for e in join_listed(listed)] == [
        ("red", 12.0, 12.5),
        ("blue", 13.0, 13.5),
        ("red", 13.5, 13.5),
    ]


def test_empty_containers_under_other_names_say_nothing_happened() -> None:
    for content in ('{"result": {"events": []}}', '{"video": {"detected_events": []}}'):
        parsed = parse(content)
        assert parsed.usable and parsed.readable and parsed.events == (), content


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("I can see a red circle but cannot tell when.", id="no-times"),
        pytest.param(
            "| 特点 | 描述 |\n| --- | --- |\n| 防压抗摔 | 可承受12斤红砖 |",
            id="table-without-times",
        ),
        pytest.param("<t17> <t26> The rabbit moved between <t17> and <t26>.", id="time-tokens"),
        pytest.param(
            "{events: [{label: red circle, start_s: 12.0, end_s: 15.0}]}", id="unquoted-keys"
        ),
        pytest.param('{"answer": "none"}', id="json-without-events"),
        pytest.param('{"objects": ["red circle", "blue square"]}', id="names-without-times"),
        pytest.param("<12.0 seconds>", id="one-stamp"),
    ],
)
def test_nothing_to_read_stays_a_loud_failure(content: str) -> None:
    parsed = parse(content)
    assert parsed.events == ()
    assert not parsed.readable and not parsed.usable
    assert parsed.why_unusable == "no JSON answer could be found in it"


def test_the_contract_still_wins_over_other_keys() -> None:
    content = json.dumps(
        {
            "events": [{"label": "red circle", "start_s": 12, "end_s": 15}],
            "notes": [{"label": "blue square", "start_s": 16, "end_s": 18.5}],
        }
    )
    assert spans(parse(content)) == [("red circle", 12.0, 15.0)]


def test_a_summary_beside_the_events_is_no_event() -> None:
    content = {
        "video_summary": "A cooking video, 00:00-04:20 long, shot from 0:10 to 0:20 outside.",
        "timeline": [{"event": "red circle", "start": 12, "end": 15}],
        "duration": "00:00-04:20",
    }
    parsed = parse(json.dumps(content))
    assert spans(parsed) == [("red circle", 12.0, 15.0)]


def test_an_object_holding_events_is_their_container() -> None:
    content = {
        "generated_at": "12:00:00",
        "detections": [
            {"label": "red circle", "start": 12, "end": 15},
            {"label": "blue square", "start": 16, "end": 18.5},
        ],
    }
    assert spans(parse(json.dumps(content))) == TWO


def test_occurrences_under_a_labelled_object_take_its_label() -> None:
    content = [
        {
            "label": "red circle",
            "occurrences": [
                {"start": 12, "end": 13, "note": "half hidden"},
                {"start": 14, "end": 15, "note": "whole"},
            ],
        }
    ]
    assert spans(parse(json.dumps(content))) == [
        ("red circle", 12.0, 13.0),
        ("red circle", 14.0, 15.0),
    ]


def test_a_key_labels_only_an_event_that_says_nothing() -> None:
    said = {"result": {"start": 12, "end": 15, "description": "a red circle in the middle"}}
    assert spans(parse(json.dumps(said))) == [("red circle", 12.0, 15.0)]
    unsaid = {"red circle": {"begin": 12, "finish": 15}}
    assert spans(parse(json.dumps(unsaid), ())) == [("red circle", 12.0, 15.0)]


def test_stamped_strings_in_a_list_are_events() -> None:
    content = ["red circle: <12.0 seconds> - <15.0 seconds>", "blue square 16 - 18.5 s"]
    assert spans(parse(json.dumps(content))) == TWO


def test_a_labelled_object_with_occurrences_gives_each() -> None:
    content: Any = [
        {"label": "red circle", "segments": [{"start": 12, "end": 13}, {"start": 14, "end": 15}]}
    ]
    assert spans(parse(json.dumps(content))) == [
        ("red circle", 12.0, 13.0),
        ("red circle", 14.0, 15.0),
    ]
