"""What the worker does about a job that did not succeed: retry, fail for good, or hand back (pure).

The handler runs the job and publishes; this module decides, from plain values, in the order the
questions are asked:

::

    shutting down .................................. HAND_BACK (offset kept; checkpoints intact)
    the user cancelled the job ..................... FAIL "cancelled" (failed result, no DLQ)
    the input can never work (InputError) .......... FAIL with its code (failed result + DLQ)
    a bug (any other exception) .................... FAIL "internal"
    the model endpoint is down and the breaker
      is open or probing ........................... RETRY after the cool-down; clock restarts
    transient (storage, model, config), within
      the retry deadline since the first failure ... RETRY at the loop's pace
    transient past the deadline .................... FAIL with its code; clock forgotten

Before a job that uses the model runs, ``admit`` asks the breaker: while it is open the job
waits (RETRY after the cool-down) instead of failing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from vidloc.errors import (
    ConfigError,
    InputError,
    ModelAuthFailed,
    ModelRateLimited,
    ModelUnavailable,
    TransientError,
    VidlocError,
)
from workers.model.circuit import CircuitState


class JobCancelled(VidlocError):
    """The worker is shutting down; the job is handed back unfinished."""

    code = "cancelled"


class CancelledByUser(VidlocError):
    """The user cancelled the job (its cancel marker, ``names.cancel_key``): it ends, failed
    with this code, and is not handed back. Not a :class:`JobCancelled`, whose work another
    member resumes."""

    code = "cancelled"


class FailureKind(enum.Enum):
    CANCELLED = "cancelled"  # the worker is shutting down
    USER_CANCELLED = "user_cancelled"  # the user asked for the job to stop
    INPUT = "input"  # this input can never succeed
    MODEL_OUTAGE = "model_outage"  # the model endpoint is down, not this input's fault
    TRANSIENT = "transient"  # may pass on its own (storage, network, a bad model answer, config)
    INTERNAL = "internal"  # a bug


# A wrong model key is fixed by an operator, not by the input: it counts as an outage, so it
# pauses the queue like one instead of burning it into the DLQ.
MODEL_OUTAGES = (ModelRateLimited, ModelUnavailable, ModelAuthFailed)


def classify(exc: BaseException) -> FailureKind:
    if isinstance(exc, JobCancelled):
        return FailureKind.CANCELLED
    if isinstance(exc, CancelledByUser):
        return FailureKind.USER_CANCELLED
    if isinstance(exc, InputError):
        return FailureKind.INPUT
    if isinstance(exc, MODEL_OUTAGES):
        return FailureKind.MODEL_OUTAGE
    if isinstance(exc, TransientError | ConfigError):
        return FailureKind.TRANSIENT
    return FailureKind.INTERNAL


class Action(enum.Enum):
    RETRY = "retry"  # leave the offset; offer the message again after ``retry_after_s``
    FAIL = "fail"  # permanent: failed result + DLQ record, then commit
    HAND_BACK = "hand_back"  # shutting down: another group member resumes it


class Reason(enum.Enum):
    """Why, for the log line."""

    CANCELLED = "cancelled"
    USER_CANCELLED = "user_cancelled"
    BAD_INPUT = "bad_input"
    CRASHED = "crashed"
    CIRCUIT_OPEN = "circuit_open"  # the breaker refused the job before it ran
    OUTAGE = "outage"  # the breaker opened (or stayed open) on this failure
    TRANSIENT = "transient"
    DEADLINE_PASSED = "deadline_passed"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: Reason
    retry_after_s: float = 0.0  # 0: the loop's own retry pace
    code: str | None = None  # what a FAIL reports (the error's code, or "internal")
    # Forget when this message first failed: an outage is nobody's input, so the retry
    # deadline starts afresh after it; a final decision needs the clock no more.
    reset_clock: bool = False
    # A FAIL's original goes to the DLQ, except a user's cancel: nothing is wrong with it
    # for an operator to look at, and replaying it would undo what the user asked.
    dead_letter: bool = True


def admit(*, uses_model: bool, circuit_allows: bool, circuit_retry_in_s: float) -> Decision | None:
    """Before the job runs: None to run it, or a RETRY while the model's breaker is open."""
    if uses_model and not circuit_allows:
        return Decision(Action.RETRY, Reason.CIRCUIT_OPEN, retry_after_s=circuit_retry_in_s)
    return None


def decide(
    kind: FailureKind,
    *,
    code: str,
    elapsed_s: float,
    deadline_s: float,
    circuit: CircuitState | None = None,
    circuit_retry_in_s: float = 0.0,
) -> Decision:
    """After a failed run.

    ``code`` is the error's code; ``elapsed_s`` the time since this message first failed
    (0 on its first failure); ``circuit`` the breaker's state after it counted this failure
    (only model outages are counted, so only they pass it).
    """
    if kind is FailureKind.CANCELLED:
        return Decision(Action.HAND_BACK, Reason.CANCELLED)
    if kind is FailureKind.USER_CANCELLED:
        return Decision(
            Action.FAIL, Reason.USER_CANCELLED, code=code, reset_clock=True, dead_letter=False
        )
    if kind is FailureKind.INPUT:
        return Decision(Action.FAIL, Reason.BAD_INPUT, code=code, reset_clock=True)
    if kind is FailureKind.INTERNAL:
        return Decision(Action.FAIL, Reason.CRASHED, code="internal", reset_clock=True)
    if kind is FailureKind.MODEL_OUTAGE and circuit in (CircuitState.OPEN, CircuitState.HALF_OPEN):
        return Decision(
            Action.RETRY, Reason.OUTAGE, retry_after_s=circuit_retry_in_s, reset_clock=True
        )
    if elapsed_s < deadline_s:
        return Decision(Action.RETRY, Reason.TRANSIENT)
    return Decision(Action.FAIL, Reason.DEADLINE_PASSED, code=code, reset_clock=True)
