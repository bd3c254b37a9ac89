"""Parsing limits: hostile JSON is refused with its own code before a recursive parser sees it."""

from __future__ import annotations

import json
from typing import Any

import pytest

import contracts
from contracts import ContractError, decode_ingest
from contracts.codec import load_json
from contracts.limits import (
    MESSAGE_LIMITS,
    JsonLimits,
    LimitExceeded,
    check_shape,
)


def ingest_doc(**extra: Any) -> dict[str, Any]:
    return {
        "schema": "vidloc.ingest.v1",
        "event_id": "evt-1",
        "video_id": "vid-1",
        "source": {"bucket": "videos", "key": "a.mp4", "etag": "e1", "size": 10},
        "options": {"extra": extra},
        "submitted_at": "2026-01-01T00:00:00Z",
    }


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def ingest_with_extra(raw_extra: str) -> bytes:
    text = json.dumps(ingest_doc(x=0)).replace('{"x": 0}', raw_extra)
    return text.encode()


@pytest.mark.parametrize(
    ("message", "code"),
    [
        pytest.param(
            ingest_with_extra('{"deep": ' + nested(100_000) + "}"),
            "message_too_deep",
            id="100000_deep_in_extra",
        ),
        pytest.param(ingest_with_extra('{"deep": ' + nested(1_000) + "}"), "message_too_deep"),
        pytest.param(
            ingest_with_extra('{"deep": ' + "{" + '"a":{' * 80 + "}" * 81 + "}"),
            "message_too_deep",
            id="objects_81_deep",
        ),
        pytest.param(
            json.dumps(ingest_doc(s="x" * 65_537)).encode(), "string_too_long", id="long_string"
        ),
        pytest.param(
            json.dumps(ingest_doc(**{"k" * 70_000: 1})).encode(), "string_too_long", id="long_key"
        ),
        pytest.param(
            json.dumps(ingest_doc(items=[0] * 60_000)).encode(),
            "message_too_complex",
            id="many_items",
        ),
        pytest.param(
            json.dumps(ingest_doc(**{f"k{i}": i for i in range(60_000)})).encode(),
            "message_too_complex",
            id="many_keys",
        ),
        pytest.param(
            json.dumps(ingest_doc(pad=["y" * 60_000] * 80)).encode(),
            "message_too_large",
            id="over_4_mib",
        ),
    ],
)
def test_ingest_over_a_limit_is_refused_with_its_code(message: bytes, code: str) -> None:
    with pytest.raises(ContractError) as caught:
        decode_ingest(message)
    assert caught.value.code == code
    assert caught.value.field == "$"
    assert str(caught.value).startswith("$: ")


def test_within_the_limits_an_ingest_event_decodes() -> None:
    doc = ingest_doc(deep=json.loads(nested(60)), s="x" * 65_536, items=[0] * 1000)
    event = decode_ingest(json.dumps(doc).encode())
    assert event.options.extra["s"] == "x" * 65_536


def test_brackets_and_commas_inside_strings_are_not_structure() -> None:
    doc = ingest_doc(s="[{" * 30_000, t=",," * 30_000, u='\\"[' * 10_000)
    assert decode_ingest(json.dumps(doc)).options.extra["s"] == "[{" * 30_000


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('"' + '\\"' * 400_000, id="unterminated_escaped_quotes"),
        pytest.param('["' + '\\"[' * 300_000 + "\\", id="unterminated_trailing_backslash"),
        pytest.param('{"a": "' + "b" * 70_000, id="unterminated_plain"),
    ],
)
def test_pathological_strings_are_measured_not_backtracked(text: str) -> None:
    # A backtracking tokenizer takes minutes on these; the suite's timeout would catch it.
    with pytest.raises(LimitExceeded) as caught:
        check_shape(text, MESSAGE_LIMITS)
    assert caught.value.code == "string_too_long"


def test_a_run_of_quotes_is_many_empty_strings() -> None:
    check_shape('"' * 500_001, MESSAGE_LIMITS)  # passes the scan; the parser refuses it
    with pytest.raises(ContractError) as caught:
        decode_ingest('"' * 500_001)
    assert caught.value.code is None and "malformed JSON" in str(caught.value)


def test_documents_vidloc_writes_keep_long_strings_but_not_deep_nesting() -> None:
    # A DLQ record keeps up to a quarter of a message as one string: no string limit there.
    _, value = load_json(json.dumps({"original": "z" * 300_000}))
    assert len(value["original"]) == 300_000
    with pytest.raises(ContractError) as caught:
        contracts.decode_dlq(nested(100_000))
    assert caught.value.code == "message_too_deep"


def test_a_deeply_nested_mapping_is_a_contract_error_not_a_recursion_error() -> None:
    doc: dict[str, Any] = {}
    inner = doc
    for _ in range(100_000):
        inner["a"] = {}
        inner = inner["a"]
    with pytest.raises(ContractError) as caught:
        decode_ingest(doc)
    assert caught.value.field == "$"


def test_limits_can_be_switched_off_one_by_one() -> None:
    relaxed = JsonLimits(max_depth=2_000)
    check_shape(nested(2_000), relaxed)
    with pytest.raises(LimitExceeded):
        check_shape(nested(2_001), relaxed)
    check_shape(json.dumps(["x" * 100_000] * 100), relaxed)
