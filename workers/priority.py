"""Which work goes first when a worker's shared slots are scarce: span orders wait for the rest.

A worker shares three budgets between its jobs: the model's slots, the chunks of decoded frames
held at once, and the chunks decoded at once (workers/service/main.py). A long video's span
orders keep all three busy for minutes; a short video behind them, the lead-in span that brings
a long video's first partial timeline, or a merge would otherwise queue behind each of their
chunks in turn. So a span order runs as *background* work (:func:`in_background`), and
:class:`PrioritySlots` gives a freed slot to a waiting foreground job first. Background work is
not starved while it has the slots to itself, which is all the time a group runs only spans;
it yields for as long as something else waits, which is a chunk or two.

The mark is a context variable: the chunk pipeline copies the job's context into its threads
(workers/pipeline/fanout.py), so a span's model requests carry it without being told.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from types import TracebackType

_BACKGROUND: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "vidloc_background_work", default=False
)


@contextlib.contextmanager
def in_background() -> Iterator[None]:
    """Run the body as background work: its slot requests yield to foreground ones."""
    token = _BACKGROUND.set(True)
    try:
        yield
    finally:
        _BACKGROUND.reset(token)


def is_background() -> bool:
    return _BACKGROUND.get()


class PrioritySlots(threading.Semaphore):
    """A counting semaphore that gives a freed slot to foreground waiters before background ones.

    A ``threading.Semaphore`` to its users (``acquire``/``release``/``with``), so the budgets
    can be handed around as one; whether a caller waits in front is read from the context
    (:func:`in_background`) when it asks.
    """

    def __init__(self, value: int = 1) -> None:
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._ready = threading.Condition(threading.Lock())
        self._free = value
        self._waiting_foreground = 0

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        background = is_background()
        with self._ready:
            if not background:
                self._waiting_foreground += 1
            try:

                def may_take() -> bool:
                    return self._free > 0 and (not background or self._waiting_foreground == 0)

                taken = self._ready.wait_for(may_take, timeout) if blocking else may_take()
                if taken:
                    self._free -= 1
                return taken
            finally:
                if not background:
                    self._waiting_foreground -= 1
                    if self._waiting_foreground == 0:
                        # Background waiters held back only by this one may go now.
                        self._ready.notify_all()

    def release(self, n: int = 1) -> None:
        if n < 1:
            raise ValueError("n must be one or more")
        with self._ready:
            self._free += n
            self._ready.notify_all()

    def foreground_waiting(self) -> bool:
        """Whether a foreground job waits for a slot now (a holder that can give its slot
        back early, a span's decoder, then does: workers/pipeline/ahead.py)."""
        with self._ready:
            return self._waiting_foreground > 0

    # Semaphore binds its own acquire here, which would bypass the priority.
    __enter__ = acquire

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
