"""The pure bookkeeping behind concurrent jobs: which records may start, which finished outputs
may leave and which offset may commit (never past an unfinished job of the partition)."""

from __future__ import annotations

import pytest

from workers.service.inflight import Ledger

P, Q = "ingest[0]", "ingest[1]"

# Each step: (verb, partition, offset, key-or-outputs). Verbs: admit, start, finish, back.
Step = tuple[str, str, int, object]


def play(steps: list[Step]) -> Ledger[str, str]:
    ledger: Ledger[str, str] = Ledger()
    for verb, part, offset, arg in steps:
        if verb == "admit":
            assert ledger.admit(part, offset, arg if isinstance(arg, str) else None)
        elif verb == "start":
            ledger.start(part, offset)
        elif verb == "finish":
            assert isinstance(arg, tuple)
            ledger.finish(part, offset, arg)
        elif verb == "back":
            ledger.put_back(part, offset)
        else:
            raise AssertionError(verb)
    return ledger


def admitted(*offsets: int, part: str = P) -> list[Step]:
    return [("admit", part, o, f"video-{o}") for o in offsets]


def run(*offsets: int, part: str = P) -> list[Step]:
    return [("start", part, o, None) for o in offsets]


def done(offset: int, *outputs: str, part: str = P) -> list[Step]:
    return [("finish", part, offset, tuple(outputs))]


FLUSH_CASES = [
    pytest.param([], None, (), id="nothing-fetched"),
    pytest.param(admitted(5), None, (), id="pending-only"),
    pytest.param([*admitted(5), *run(5)], None, (), id="running-only"),
    pytest.param([*admitted(5), *run(5), *done(5, "r5", "p5")], 6, ("r5", "p5"), id="one-finished"),
    pytest.param(
        [*admitted(5, 6, 7), *run(5, 6, 7), *done(6, "r6"), *done(7, "r7")],
        None,
        (),
        id="later-jobs-done-lowest-running-holds-all",
    ),
    pytest.param(
        [*admitted(5, 6, 7), *run(5, 6, 7), *done(7, "r7"), *done(5, "r5")],
        6,
        ("r5",),
        id="front-done-gap-at-6",
    ),
    pytest.param(
        [*admitted(5, 6, 7), *run(5, 6, 7), *done(7, "r7"), *done(6, "r6"), *done(5, "r5")],
        8,
        ("r5", "r6", "r7"),
        id="out-of-order-all-done-leave-in-offset-order",
    ),
    pytest.param(
        [*admitted(5, 6), *run(5, 6), *done(6, "r6"), ("back", P, 5, None)],
        None,
        (),
        id="retried-lowest-still-holds-the-offset",
    ),
    pytest.param(
        [*admitted(5, 9), *run(5, 9), *done(9, "r9"), *done(5, "r5")],
        10,
        ("r5", "r9"),
        id="offset-gap-in-kafka-is-not-a-hole",
    ),
    pytest.param(
        [*admitted(5), *admitted(1, part=Q), *run(5), *run(1, part=Q), *done(1, "q1", part=Q)],
        None,
        (),
        id="other-partition-finishing-does-not-free-this-one",
    ),
]


@pytest.mark.parametrize(("steps", "commit", "outputs"), FLUSH_CASES)
def test_what_may_flush(steps: list[Step], commit: int | None, outputs: tuple[str, ...]) -> None:
    flush = play(steps).flushable(P)
    if commit is None:
        assert flush is None
    else:
        assert flush is not None
        assert (flush.commit, flush.outputs) == (commit, outputs)


START_CASES = [
    pytest.param([("admit", P, 1, "a"), ("admit", P, 2, "b")], [1, 2], id="distinct-keys"),
    pytest.param(
        [("admit", P, 1, "a"), ("admit", P, 2, "a"), ("admit", P, 3, "b")],
        [1, 3],
        id="same-video-waits-for-the-earlier",
    ),
    pytest.param(
        [("admit", P, 1, "a"), ("start", P, 1, None), ("admit", P, 2, "a")],
        [],
        id="same-video-waits-while-earlier-runs",
    ),
    pytest.param(
        [("admit", P, 1, "a"), ("start", P, 1, None), ("finish", P, 1, ()), ("admit", P, 2, "a")],
        [2],
        id="earlier-finished-frees-the-key-though-not-flushed",
    ),
    pytest.param([("admit", P, 1, None), ("admit", P, 2, None)], [1, 2], id="keyless-never-wait"),
    pytest.param(
        [("admit", P, 1, "a"), ("start", P, 1, None), ("back", P, 1, None), ("admit", P, 2, "a")],
        [1],
        id="put-back-runs-again-before-its-successor",
    ),
]


@pytest.mark.parametrize(("steps", "startable"), START_CASES)
def test_what_may_start(steps: list[Step], startable: list[int]) -> None:
    assert play(steps).startable(P) == startable


def test_flushed_jobs_are_forgotten_and_the_rest_stay() -> None:
    ledger = play([*admitted(5, 6, 7), *run(5, 6, 7), *done(5, "r5"), *done(7, "r7")])
    flush = ledger.flushable(P)
    assert flush is not None and flush.offsets == (5,)
    ledger.flushed(P, flush)
    assert ledger.flushable(P) is None  # 6 still runs, 7 waits behind it
    assert (ledger.held(), ledger.active(), ledger.running()) == (2, 1, [(P, 6)])
    ledger.finish(P, 6, ("r6",))
    last = ledger.flushable(P)
    assert last is not None and (last.outputs, last.commit) == (("r6", "r7"), 8)
    ledger.flushed(P, last)
    assert ledger.held() == 0 and ledger.partitions() == set()


def test_a_refetched_record_is_not_admitted_twice() -> None:
    ledger = play([*admitted(5), *run(5)])
    assert not ledger.admit(P, 5, "video-5")
    assert ledger.running() == [(P, 5)]


def test_a_lost_partition_reports_its_running_jobs_and_is_forgotten() -> None:
    ledger = play([*admitted(1, 2, 3), *run(1, 3), *done(3, "r3"), *admitted(7, part=Q)])
    assert ledger.drop(P) == [1]
    assert ledger.partitions() == {Q} and ledger.flushable(P) is None


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param([*admitted(1), *done(1)], id="finish-unstarted"),
        pytest.param([*admitted(1), *run(1), *run(1)], id="start-twice"),
        pytest.param([*admitted(1), ("back", P, 1, None)], id="put-back-unstarted"),
    ],
)
def test_impossible_moves_are_refused(steps: list[Step]) -> None:
    with pytest.raises(ValueError):
        play(steps)
