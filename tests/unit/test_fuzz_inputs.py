"""Property-based fuzzing of everything that reads bytes a stranger can send. Three targets: the
ingest decoder (``contracts.decode_ingest``), the bucket-notification parser
(``producers.notifications``) and the worker's handler (``workers.service.handler.IngestHandler``,
with a fake bus and a fake job runner standing in for the store). They get random bytes, mutated
valid messages and adversarial ones: nesting 150,000 deep, strings of 300,000 characters, invalid
UTF-8, wrong types, NaN/Infinity, duplicate keys, nulls, lone surrogates, truncations.

Each message must give exactly one outcome, a decoded event or a refusal with a code, never an
uncaught exception (for the handler: never the catch-all's ``internal``), each within the time
bound below (hypothesis' ``deadline``). Run with ``--hypothesis-show-statistics`` for the counts.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import event as label
from hypothesis import strategies as st

from contracts import (
    ContractError,
    IngestEvent,
    decode_dlq,
    decode_ingest,
    decode_result,
    derive_job_id,
    encode,
)
from producers.notifications import BAD_NOTIFICATION, ingest_events_from_notification
from vidloc import names
from vidloc.errors import BadIngestEvent, ObjectMissing
from vidloc.settings import Settings
from workers.service.handler import Delivery, Disposition, IngestHandler

BUCKET = "videos"
LIMIT_CODES = {"message_too_deep", "string_too_long", "message_too_complex", "message_too_large"}
REFUSAL_CODES = LIMIT_CODES | {
    "malformed_message",
    "unknown_schema",
    "bad_ingest_event",
    "key_not_allowed",
    "url_not_allowed",
    "bucket_not_allowed",
}
# A message, however hostile, is decided within this (hypothesis fails any slower example).
TIME_BOUND = timedelta(seconds=3)
FUZZ = settings(
    max_examples=200,
    deadline=TIME_BOUND,
    database=None,  # nothing written into the checkout; a failure prints its reproduction
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- strategies ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def ingest_docs(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly-valid ingest events with some fields replaced by anything or dropped."""
    doc: dict[str, Any] = {
        "schema": draw(st.sampled_from(["vidloc.ingest.v1"] * 6 + ["vidloc.ingest.v9", ""])),
        "event_id": draw(st.text(min_size=1, max_size=300)),
        "source": {
            "bucket": draw(st.sampled_from([BUCKET] * 4 + ["other", "https://evil/videos"])),
            "key": draw(
                st.sampled_from(["a.mp4", "a/../b.mp4", "s3://x/y", "/abs.mp4"])
                | st.text(max_size=30)
            ),
            "etag": draw(st.text(min_size=1, max_size=40)),
            "size": draw(st.integers(-5, 2**64) | st.integers(0, 10**9)),
        },
        "options": draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "localizer": st.sampled_from(["cv", "vlm", "magic"]),
                    "prompt": st.text(max_size=100),
                    "labels": st.lists(st.text(max_size=20), max_size=5),
                    "sample_fps": st.floats(allow_nan=True, allow_infinity=True),
                    "extra": json_values,
                },
            )
        ),
        "submitted_at": draw(st.sampled_from(["2026-01-01T00:00:00Z"] * 6 + ["yesterday", 5])),
    }
    if draw(st.booleans()):
        doc["video_id"] = draw(st.sampled_from(["vid-1", "../x", "", "v" * 200]))
    for field in draw(st.lists(st.sampled_from(sorted(doc)), max_size=1)):
        if draw(st.booleans()):
            del doc[field]
        else:
            doc[field] = draw(json_values)
    return doc


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def adversarial(draw: st.DrawFn, docs: st.SearchStrategy[Any]) -> bytes:
    """One attack on a document from ``docs``, as bytes."""
    base = _dumps(draw(docs))
    attack = draw(
        st.sampled_from(
            [
                "deep",
                "unbalanced",
                "huge_string",
                "invalid_utf8",
                "duplicate_keys",
                "constants",
                "nulls",
                "surrogate",
                "truncated",
                "random",
            ]
            + ["as_is"] * 5  # so that a fair share decodes and goes deeper
        )
    )
    if attack == "deep":
        depth = draw(st.integers(1, 150_000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        nested = opener * depth + "0" + closer * depth
        if draw(st.booleans()):
            return nested.encode()
        return base.replace(b"{", b'{"deep": ' + nested.encode() + b",", 1)
    if attack == "unbalanced":
        return draw(st.sampled_from([b"[", b"{", b"]", b'{"a":['])) * draw(st.integers(1, 100_000))
    if attack == "huge_string":
        text = draw(st.sampled_from(["x", "\\u00e9", "\\\\", '\\"', "["])) * draw(
            st.integers(1_000, 300_000)
        )
        return base.replace(b'"', b'"' + text.encode(), 1)
    if attack == "invalid_utf8":
        at = draw(st.integers(0, len(base)))
        junk = bytes(draw(st.lists(st.integers(0x80, 0xFF), min_size=1, max_size=4)))
        return base[:at] + junk + base[at:]
    if attack == "duplicate_keys":
        key = draw(st.sampled_from(["event_id", "schema", "source", "video_id", "options"]))
        value = _dumps(draw(json_values))
        return base.replace(b"{", b'{"' + key.encode() + b'": ' + value + b",", 1)
    if attack == "constants":
        token = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-0"]))
        return base.replace(b"0", token, 1) if b"0" in base else base + token
    if attack == "nulls":
        return base.replace(b'"', b'null, "', 1).replace(b"\x00", b"") + b"\x00"
    if attack == "surrogate":
        return base.replace(b'"', b'"\\ud800', 2)
    if attack == "truncated":
        return base[: draw(st.integers(0, len(base)))]
    if attack == "random":
        return draw(st.binary(max_size=2_000))
    return base


# --- ingest decoder -------------------------------------------------------------------------


def _decode_once(message: bytes) -> IngestEvent | ContractError:
    try:
        return decode_ingest(message)
    except ContractError as exc:
        return exc


@FUZZ
@given(message=adversarial(ingest_docs()))
def test_ingest_decoder_gives_an_event_or_a_refusal(message: bytes) -> None:
    outcome = _decode_once(message)  # anything else raised fails the test
    label(
        f"refused: {outcome.code or outcome.field}"
        if isinstance(outcome, ContractError)
        else "decoded"
    )
    if isinstance(outcome, ContractError):
        assert outcome.code is None or outcome.code in LIMIT_CODES
        assert str(outcome).startswith(f"{outcome.field}: ")
    else:
        assert decode_ingest(encode(outcome)) == outcome  # what decodes, re-encodes the same


# --- bucket notifications ---------------------------------------------------------------------


@st.composite
def notifications(draw: st.DrawFn) -> Any:
    record: dict[str, Any] = {
        "eventName": draw(
            st.sampled_from(["s3:ObjectCreated:Put", "ObjectCreated:Post", "ObjectRemoved:Delete"])
        ),
        "s3": {
            "configurationId": draw(st.sampled_from(["kafka-global", "arn", None])),
            "bucket": {"name": draw(st.sampled_from([BUCKET] * 4 + ["other", ""]))},
            "object": {
                "key": draw(
                    st.sampled_from(["clip.mp4", "a%20b.mp4", "%ff.mp4", "d/ü.mkv", "x.txt"])
                    | st.text(max_size=40).map(lambda t: t + ".mp4")
                ),
                "size": draw(st.integers(-1, 2**40)),
                "eTag": draw(st.sampled_from(['"abc"', '"abc"', "", None])),
            },
        },
    }
    if draw(st.integers(0, 4)) == 0:
        record["s3"][draw(st.sampled_from(["bucket", "object"]))] = draw(json_values)
    shape = draw(st.sampled_from(["records"] * 4 + ["bare", "test", "junk"]))
    if shape == "records":
        return {"Records": [record] * draw(st.integers(1, 3))}
    if shape == "bare":
        return [record]
    if shape == "test":
        return {"Event": "s3:TestEvent"}
    return draw(json_values)


@FUZZ
@given(payload=adversarial(notifications()))
def test_notification_parser_gives_events_or_a_refusal(payload: bytes) -> None:
    now = datetime(2026, 11, 29, tzinfo=UTC)
    try:
        decision = ingest_events_from_notification(payload, video_bucket=BUCKET, now=now)
    except BadIngestEvent as exc:
        label(f"refused: {exc.code}")
        assert exc.code in LIMIT_CODES | {BAD_NOTIFICATION}
        return
    label(f"{len(decision.events)} events, {len(decision.skipped)} skipped")
    for event in decision.events:  # what the bridge would publish must decode downstream
        assert decode_ingest(encode(event)) == event


# --- the handler ------------------------------------------------------------------------------


class FakeRunner:
    """The job as far as a fuzzer gets: every decoded event meets an empty store."""

    def __init__(self) -> None:
        self.events: list[IngestEvent] = []

    def run_or_hand_off(self, event: IngestEvent, job_id: str, progress: Any) -> Any:
        return self.run(event, job_id, progress)

    def run(self, event: IngestEvent, job_id: str, progress: Any) -> Any:
        self.events.append(event)
        raise ObjectMissing(f"{event.source.key!r} is not in the fake store")


class FakeBus:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes]] = []

    def publish(self, topic: str, key: str, value: bytes) -> None:
        self.sent.append((topic, key, value))

    def on(self, topic: str) -> list[bytes]:
        return [value for t, _, value in self.sent if t == topic]


@FUZZ
@given(
    message=adversarial(ingest_docs()),
    key=st.none() | st.binary(max_size=40) | st.just(b"vid-1"),
)
# Found by this test: 1e999 is valid JSON that parses to inf, which the DLQ record refused,
# so the handler could not fail the message and retried it.
@example(
    message=b'{"schema": "vidloc.ingest.v1", "event_id": "1", "source": {"bucket": "videos",'
    b' "key": "a.mp4", "etag": "1", "size": 1e999}, "options": {},'
    b' "submitted_at": "2026-01-01T00:00:00Z"}',
    key=None,
)
def test_handler_gives_each_message_exactly_one_outcome(message: bytes, key: bytes | None) -> None:
    bus, runner = FakeBus(), FakeRunner()
    handler = IngestHandler(Settings(video_bucket=BUCKET), runner, bus.publish)  # type: ignore[arg-type]
    assert handler.handle(Delivery(names.TOPIC_INGEST, 0, 1, key, message)) is Disposition.COMMIT
    (result,) = [decode_result(v) for v in bus.on(names.TOPIC_RESULTS)]
    (record,) = [decode_dlq(v) for v in bus.on(names.TOPIC_DLQ)]
    assert result.status == "failed" and result.error is not None
    label(f"failed: {result.error.code}")
    assert result.error.code == record.error.code
    assert (result.video_id, result.job_id) == (record.video_id, record.job_id)
    # Results are keyed by video id on every topic, so one message reads as one job.
    assert {k for _, k, _ in bus.sent} == {result.video_id}
    assert result.video_id != "unknown"
    if runner.events:  # it decoded: the job ran once and its ids are the event's own
        (event,) = runner.events
        assert result.error.code == "object_missing"
        assert result.job_id == derive_job_id(event.event_id)
        assert result.video_id == event.effective_video_id
    else:
        assert result.error.code in REFUSAL_CODES, result.error  # never the catch-all
