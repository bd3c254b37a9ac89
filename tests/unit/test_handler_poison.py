"""No message can hold a partition: whatever the handler meets that is not the bus failing ends
in a failed result + DLQ record (or, if even that cannot be built, a bounded number of tries)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts import IngestEvent, decode_dlq, decode_result, derive_job_id
from vidloc import names
from vidloc.errors import BusUnavailable
from vidloc.settings import Settings
from workers.service.handler import MAX_CRASHES, Delivery, Disposition, IngestHandler


class Runner:
    """Stands in for JobRunner: records the events it is given and raises ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.events: list[IngestEvent] = []

    def run_or_hand_off(self, event: IngestEvent, job_id: str, progress: Any) -> Any:
        return self.run(event, job_id, progress)

    def run(self, event: IngestEvent, job_id: str, progress: Any) -> Any:
        self.events.append(event)
        raise self.error


class Bus:
    """Records published messages; raises the queued exceptions first, one per call."""

    def __init__(self, *failures: BaseException, always: BaseException | None = None) -> None:
        self.failures = list(failures)
        self.always = always
        self.sent: list[tuple[str, str, bytes]] = []

    def publish(self, topic: str, key: str, value: bytes) -> None:
        if self.always is not None:
            raise self.always
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((topic, key, value))

    def on(self, topic: str) -> list[bytes]:
        return [value for t, _, value in self.sent if t == topic]


def handler(bus: Bus, runner: Runner | None = None) -> IngestHandler:
    return IngestHandler(
        Settings(video_bucket="videos"),
        runner or Runner(AssertionError("the runner must not be reached")),  # type: ignore[arg-type]
        bus.publish,
    )


def deep_message(depth: int = 100_000) -> bytes:
    head = {
        "schema": "vidloc.ingest.v1",
        "event_id": "evt-deep",
        "video_id": "vid-deep",
        "source": {"bucket": "videos", "key": "a.mp4", "etag": "e1", "size": 10},
        "submitted_at": "2026-01-01T00:00:00Z",
    }
    nested = "[" * depth + "]" * depth
    return (json.dumps(head)[:-1] + ', "options": {"extra": {"x": ' + nested + "}}}").encode()


def delivery(value: bytes, offset: int = 7) -> Delivery:
    return Delivery(names.TOPIC_INGEST, 0, offset, b"vid-deep", value)


@pytest.mark.parametrize("depth", [70, 1_000, 100_000])
def test_a_deep_message_is_refused_dead_lettered_and_committed(depth: int) -> None:
    bus = Bus()
    assert handler(bus).handle(delivery(deep_message(depth))) is Disposition.COMMIT
    (result,) = [decode_result(v) for v in bus.on(names.TOPIC_RESULTS)]
    (record,) = [decode_dlq(v) for v in bus.on(names.TOPIC_DLQ)]
    assert result.status == "failed" and result.error is not None
    assert result.error.code == record.error.code == "message_too_deep"
    # Announced under the sender's own ids, read from the message it could not decode.
    assert result.video_id == record.video_id == "vid-deep"
    assert result.job_id == derive_job_id("evt-deep")
    # Too deep to nest as JSON in the record (it would be too deep to read back): kept as text.
    assert record.original_encoding == "text" and isinstance(record.original, str)


@pytest.mark.parametrize(
    "error",
    [RecursionError("maximum recursion depth exceeded"), MemoryError(), KeyError("x")],
    ids=["recursion", "memory", "key_error"],
)
def test_any_exception_from_the_job_is_a_permanent_failure(error: BaseException) -> None:
    good = deep_message(depth=3)
    bus, runner = Bus(), Runner(error)
    assert handler(bus, runner).handle(delivery(good)) is Disposition.COMMIT
    assert len(runner.events) == 1
    (result,) = [decode_result(v) for v in bus.on(names.TOPIC_RESULTS)]
    assert result.error is not None and result.error.code == "internal"
    assert len(bus.on(names.TOPIC_DLQ)) == 1


def test_an_exception_while_failing_a_message_still_fails_it() -> None:
    # The first publish breaks with something that is not a bus failure: still one outcome.
    bus = Bus(RuntimeError("encoder bug"))
    assert handler(bus).handle(delivery(deep_message())) is Disposition.COMMIT
    (result,) = [decode_result(v) for v in bus.on(names.TOPIC_RESULTS)]
    assert result.error is not None and result.error.code == "internal"
    assert result.video_id == "vid-deep"
    assert len(bus.on(names.TOPIC_DLQ)) == 1


def test_a_bus_failure_is_the_only_thing_that_escapes() -> None:
    bus = Bus(always=BusUnavailable("kafka down"))
    with pytest.raises(BusUnavailable):
        handler(bus).handle(delivery(deep_message()))


def test_a_message_that_cannot_even_be_failed_is_tried_a_bounded_number_of_times() -> None:
    bus = Bus(always=RuntimeError("every publish breaks"))
    h = handler(bus)
    seen = [h.handle(delivery(deep_message(10))) for _ in range(MAX_CRASHES)]
    assert seen == [Disposition.RETRY] * (MAX_CRASHES - 1) + [Disposition.COMMIT]
    # The count is per offset and starts again for the next message.
    assert h.handle(delivery(deep_message(10), offset=8)) is Disposition.RETRY
