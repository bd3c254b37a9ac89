"""The worker's retry / deadline / DLQ / breaker decision, as a table (no Kafka, no clock)."""

from __future__ import annotations

import pytest

from vidloc.errors import (
    BadIngestEvent,
    ConfigError,
    InputError,
    ModelAnswerInvalid,
    ModelAuthFailed,
    ModelRateLimited,
    ModelUnavailable,
    ObjectMissing,
    StorageUnavailable,
    VideoTooLong,
    VidlocError,
)
from workers.model.circuit import CircuitState
from workers.service.policy import (
    Action,
    Decision,
    FailureKind,
    JobCancelled,
    Reason,
    admit,
    classify,
    decide,
)

DEADLINE = 600.0


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        pytest.param(JobCancelled("stop"), FailureKind.CANCELLED, id="cancelled"),
        pytest.param(BadIngestEvent("x"), FailureKind.INPUT, id="bad-ingest"),
        pytest.param(VideoTooLong("x"), FailureKind.INPUT, id="too-long"),
        pytest.param(ObjectMissing("x"), FailureKind.INPUT, id="object-missing"),
        pytest.param(ModelUnavailable("x"), FailureKind.MODEL_OUTAGE, id="model-5xx"),
        pytest.param(ModelRateLimited("x"), FailureKind.MODEL_OUTAGE, id="model-429"),
        # a wrong key is an operator's to fix: it pauses the queue like an outage
        pytest.param(ModelAuthFailed("x"), FailureKind.MODEL_OUTAGE, id="model-auth"),
        pytest.param(ModelAnswerInvalid("x"), FailureKind.TRANSIENT, id="bad-answer"),
        pytest.param(StorageUnavailable("x"), FailureKind.TRANSIENT, id="storage"),
        pytest.param(ConfigError("x"), FailureKind.TRANSIENT, id="config"),
        pytest.param(VidlocError("x", code="internal"), FailureKind.INTERNAL, id="vidloc-bare"),
        pytest.param(KeyError("x"), FailureKind.INTERNAL, id="bug"),
    ],
)
def test_classify(exc: BaseException, kind: FailureKind) -> None:
    assert classify(exc) is kind


def retry(reason: Reason, after: float = 0.0, reset: bool = False) -> Decision:
    return Decision(Action.RETRY, reason, retry_after_s=after, reset_clock=reset)


def fail(reason: Reason, code: str) -> Decision:
    return Decision(Action.FAIL, reason, code=code, reset_clock=True)


OPEN, HALF, CLOSED = CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED


@pytest.mark.parametrize(
    ("kind", "elapsed", "circuit", "expected"),
    [
        pytest.param(
            FailureKind.CANCELLED, 0.0, None, Decision(Action.HAND_BACK, Reason.CANCELLED),
            id="shutting-down-hands-back",
        ),
        pytest.param(
            FailureKind.CANCELLED, 9e9, None, Decision(Action.HAND_BACK, Reason.CANCELLED),
            id="shutting-down-past-deadline-still-hands-back",
        ),
        pytest.param(
            FailureKind.INPUT, 0.0, None, fail(Reason.BAD_INPUT, "E"), id="bad-input-fails-at-once"
        ),
        pytest.param(
            FailureKind.INTERNAL, 0.0, None, fail(Reason.CRASHED, "internal"), id="bug-fails"
        ),
        pytest.param(
            FailureKind.TRANSIENT, 0.0, None, retry(Reason.TRANSIENT), id="transient-first-time"
        ),
        pytest.param(
            FailureKind.TRANSIENT, DEADLINE - 0.1, None, retry(Reason.TRANSIENT),
            id="transient-just-inside-deadline",
        ),
        pytest.param(
            FailureKind.TRANSIENT, DEADLINE, None, fail(Reason.DEADLINE_PASSED, "E"),
            id="transient-at-deadline-fails",
        ),
        pytest.param(
            FailureKind.MODEL_OUTAGE, 0.0, OPEN, retry(Reason.OUTAGE, 30.0, reset=True),
            id="outage-opens-circuit-waits-cooldown",
        ),
        pytest.param(
            FailureKind.MODEL_OUTAGE, 9e9, HALF, retry(Reason.OUTAGE, 30.0, reset=True),
            id="failed-probe-waits-again-even-past-deadline",
        ),
        pytest.param(
            FailureKind.MODEL_OUTAGE, 10.0, CLOSED, retry(Reason.TRANSIENT),
            id="outage-below-threshold-retries-like-transient",
        ),
        pytest.param(
            FailureKind.MODEL_OUTAGE, DEADLINE + 1, CLOSED, fail(Reason.DEADLINE_PASSED, "E"),
            id="outage-below-threshold-past-deadline-fails",
        ),
    ],
)  # fmt: skip
def test_decide(
    kind: FailureKind, elapsed: float, circuit: CircuitState | None, expected: Decision
) -> None:
    decision = decide(
        kind,
        code="E",
        elapsed_s=elapsed,
        deadline_s=DEADLINE,
        circuit=circuit,
        circuit_retry_in_s=30.0,
    )
    assert decision == expected


@pytest.mark.parametrize(
    ("uses_model", "allows", "expected"),
    [
        pytest.param(True, True, None, id="model-circuit-closed-runs"),
        pytest.param(False, False, None, id="cv-ignores-the-model-circuit"),
        pytest.param(True, False, retry(Reason.CIRCUIT_OPEN, 12.5), id="model-circuit-open-waits"),
    ],
)
def test_admit(uses_model: bool, allows: bool, expected: Decision | None) -> None:
    assert admit(uses_model=uses_model, circuit_allows=allows, circuit_retry_in_s=12.5) == expected


def test_a_zero_deadline_fails_a_transient_error_at_once() -> None:
    decision = decide(FailureKind.TRANSIENT, code="storage_unavailable", elapsed_s=0, deadline_s=0)
    assert decision.action is Action.FAIL
    assert decision.code == "storage_unavailable"


def test_input_errors_are_never_retried() -> None:
    assert issubclass(BadIngestEvent, InputError)
    for elapsed in (0.0, DEADLINE / 2, DEADLINE * 2):
        decision = decide(FailureKind.INPUT, code="x", elapsed_s=elapsed, deadline_s=DEADLINE)
        assert decision.action is Action.FAIL
