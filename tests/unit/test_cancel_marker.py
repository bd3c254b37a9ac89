"""A user's cancel, the pure parts: the marker's key, the watch that reads it cheaply, the
bill from the job's checkpoints, and the policy that fails (never hands back) a cancelled job."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vidloc import names
from vidloc.errors import ObjectMissing, StorageUnavailable
from workers.pipeline.checkpoint import checkpoint_usage, encode_checkpoint
from workers.service import policy
from workers.service.cancels import CancelWatch, marker_present, paid_so_far
from workers.service.policy import CancelledByUser, JobCancelled
from workers.types import ChunkResult, TokenTally


def test_the_marker_names_the_tenant_the_video_and_the_job() -> None:
    key = names.cancel_key("v-1", "job-a", "acme")
    assert key == "tenants/acme/cancels/v-1/job-a.json"
    assert names.cancel_key("v-1", "job-a") == "cancels/v-1/job-a.json"
    # Another tenant's video of the same id, or a later job of the same video: another marker.
    assert (
        len(
            {
                key,
                names.cancel_key("v-1", "job-a", "bravo"),
                names.cancel_key("v-1", "job-b", "acme"),
            }
        )
        == 3
    )


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_watch_reads_at_most_once_per_interval_and_remembers_a_cancel() -> None:
    clock, looks, present = Clock(), [], [False]

    def look() -> bool:
        looks.append(clock.now)
        return present[0]

    watch = CancelWatch(look, interval_s=1.0, clock=clock)
    assert not watch.cancelled()  # the first question reads
    for _ in range(50):  # many chunks within one second: no more reads
        assert not watch.cancelled()
    present[0] = True
    assert not watch.cancelled() and len(looks) == 1
    clock.now += 1.0
    assert watch.cancelled() and len(looks) == 2
    clock.now += 5.0
    assert watch.cancelled() and len(looks) == 2  # seen once, cancelled for good
    # ``now`` reads whatever the interval says (before a span starts, before a merge).
    fresh = CancelWatch(look, interval_s=1.0, clock=clock)
    present[0] = False
    assert not fresh.cancelled()
    present[0] = True
    assert fresh.cancelled(now=True) and len(looks) == 4


class Store:
    def __init__(self, objects: dict[str, bytes] | None = None, down: bool = False) -> None:
        self.objects = dict(objects or {})
        self.down = down

    def get_bytes(self, bucket: str, key: str) -> bytes:
        if self.down:
            raise StorageUnavailable("store down")
        try:
            return self.objects[key]
        except KeyError:
            raise ObjectMissing(key) from None

    def list_keys(self, bucket: str, prefix: str = "") -> Iterator[str]:
        return iter(sorted(k for k in self.objects if k.startswith(prefix)))


def test_a_missing_marker_or_a_store_that_cannot_answer_is_no_cancel() -> None:
    key = names.cancel_key("v", "j")
    assert marker_present(Store({key: b"{}"}), "timelines", key)
    assert not marker_present(Store(), "timelines", key)
    # An outage must not end jobs nobody cancelled; the next look finds the marker.
    assert not marker_present(Store({key: b"{}"}, down=True), "timelines", key)


def _checkpoint(index: int, prompt: int, completion: int, fingerprint: str = "fp") -> bytes:
    result = ChunkResult(index, (), TokenTally(prompt, completion, 1))
    return encode_checkpoint(result, fingerprint)


def test_the_bill_is_every_chunk_checkpointed_under_the_job() -> None:
    mine = names.checkpoint_key("v", "j", 0, "acme")
    store = Store(
        {
            mine: _checkpoint(0, 100, 10),
            names.checkpoint_key("v", "j", 7, "acme"): _checkpoint(7, 50, 5, "another-plan"),
            names.span_state_key("v", "j", "acme"): b'{"count": 4}',
            names.checkpoint_key("v", "other-job", 1, "acme"): _checkpoint(1, 999, 99),
            names.checkpoint_key("v", "j", 2): _checkpoint(2, 999, 99),  # no tenant: not its
            names.checkpoint_key("v", "j", 3, "acme"): b"not json",
        }
    )
    assert paid_so_far(store, "timelines", "v", "j", "acme") == TokenTally(150, 15, 2)
    assert checkpoint_usage(b"[]") is None


def test_a_users_cancel_fails_the_job_without_a_dead_letter_and_a_shutdown_hands_it_back() -> None:
    cancel = policy.decide(
        policy.classify(CancelledByUser("cancelled by the user")),
        code=CancelledByUser.code,
        elapsed_s=0.0,
        deadline_s=60.0,
    )
    assert cancel.action is policy.Action.FAIL and cancel.code == "cancelled"
    assert not cancel.dead_letter
    shutdown = policy.decide(
        policy.classify(JobCancelled("shutting down")), code="cancelled", elapsed_s=0, deadline_s=60
    )
    assert shutdown.action is policy.Action.HAND_BACK
    bad = policy.decide(policy.FailureKind.INPUT, code="not_a_video", elapsed_s=0, deadline_s=60)
    assert bad.dead_letter


@pytest.mark.parametrize("error", [CancelledByUser("x"), JobCancelled("x")])
def test_the_two_cancels_are_not_one_class(error: Exception) -> None:
    other = JobCancelled if isinstance(error, CancelledByUser) else CancelledByUser
    assert not isinstance(error, other)
