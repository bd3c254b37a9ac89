"""Shared slots: a span order's work waits while a short video's, a lead-in's or a merge's waits."""

from __future__ import annotations

import threading
import time

import pytest

from workers.priority import PrioritySlots, in_background, is_background


def _waiter(slots: PrioritySlots, background: bool, got: list[str], name: str) -> threading.Thread:
    def take() -> None:
        if background:
            with in_background():
                slots.acquire()
        else:
            slots.acquire()
        got.append(name)

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    return thread


def _wait_until(check: object, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.005)


def test_a_freed_slot_goes_to_foreground_work_before_background_work() -> None:
    slots = PrioritySlots(1)
    assert slots.acquire()
    got: list[str] = []
    background = [_waiter(slots, True, got, f"span-{i}") for i in range(3)]
    time.sleep(0.05)  # the spans are queued first
    foreground = _waiter(slots, False, got, "short")
    time.sleep(0.05)
    slots.release()
    _wait_until(lambda: got)
    assert got == ["short"]
    # Background work is not starved: with no one else waiting it takes the slots in turn.
    for taken in range(1, 4):
        slots.release()
        _wait_until(lambda taken=taken: len(got) > taken)
        assert len(got) == taken + 1
    assert sorted(got[1:]) == ["span-0", "span-1", "span-2"]
    for thread in [*background, foreground]:
        thread.join(1)


def test_background_work_takes_free_slots_when_nothing_else_waits() -> None:
    slots = PrioritySlots(2)
    with in_background():
        assert is_background()
        assert slots.acquire(timeout=1) and slots.acquire(timeout=1)
        assert not slots.acquire(blocking=False)
    assert not is_background()
    slots.release(2)
    with slots:  # the with-form takes a slot and gives it back
        assert slots.acquire(blocking=False)  # the second of two
        assert not slots.acquire(blocking=False)
        slots.release()
    assert slots.acquire(blocking=False) and slots.acquire(blocking=False)


def test_a_foreground_waiter_that_gives_up_lets_background_waiters_in() -> None:
    slots = PrioritySlots(1)
    assert slots.acquire()
    got: list[str] = []
    span = _waiter(slots, True, got, "span")
    assert not slots.acquire(timeout=0.05)  # a foreground wait that times out
    slots.release()
    _wait_until(lambda: got)
    assert got == ["span"]
    span.join(1)


def test_the_context_mark_reaches_threads_that_copy_the_context() -> None:
    import contextvars

    seen: list[bool] = []
    with in_background():
        ctx = contextvars.copy_context()
    thread = threading.Thread(target=lambda: seen.append(ctx.run(is_background)))
    thread.start()
    thread.join(1)
    assert seen == [True] and not is_background()


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(ValueError):
        PrioritySlots(-1)
