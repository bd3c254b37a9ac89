"""How a finished job's outputs leave the worker together with its input offset.

A job's outcome (result event, final progress event, DLQ record) is not sent while the job runs:
the handler's ``publish`` is :func:`holding`, which puts it in the job's outbox (a context
variable the loop sets per job). The loop releases outboxes in offset order
(``workers/service/inflight.py``) through a :class:`Committer`:

- :class:`TransactionCommitter` (default): the records and the offset in one Kafka
  transaction, so a ``read_committed`` reader sees a result exactly when its offset is
  committed: no duplicate across SIGKILL, rebalance or broker restart;
- :class:`PlainCommitter` (``VIDLOC_WORKER_TRANSACTIONS=false``): publish, then commit;
  at-least-once, a kill between the two replays the message and announces it again.

What must happen only once a job's outputs are committed (its work marker turning ``done``)
is registered with :func:`after_commit`; the loop calls it with True after the commit, or with
False when the outputs will never leave from here (the partition moved, the job is retried,
the worker stops first).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from vidloc.adapters.kafka import OutRecord, Partition

log = logging.getLogger(__name__)

Publish = Callable[[str, str, bytes], None]
# Called once: True when the job's outputs were committed, False when they never will be here.
Settle = Callable[[bool], None]

_OUTBOX: contextvars.ContextVar[list[OutRecord] | None] = contextvars.ContextVar(
    "vidloc_outbox", default=None
)
_SETTLE: contextvars.ContextVar[list[Settle] | None] = contextvars.ContextVar(
    "vidloc_settle", default=None
)


def job_context(box: list[OutRecord], settle: list[Settle] | None = None) -> contextvars.Context:
    """A context whose :func:`holding` publishes land in ``box`` and whose :func:`after_commit`
    callbacks land in ``settle`` (run the job in it; whoever commits ``box`` settles them)."""
    ctx = contextvars.copy_context()
    ctx.run(_OUTBOX.set, box)
    ctx.run(_SETTLE.set, settle)
    return ctx


def after_commit(settle: Settle) -> None:
    """Call ``settle(True)`` once the current job's outputs are committed, ``settle(False)`` if
    they never will be from here. Outside a job whose outputs are held (they were sent at once)
    it is called now, with True."""
    pending = _SETTLE.get()
    if pending is None:
        settle(True)
    else:
        pending.append(settle)


def holding(publish: Publish) -> Publish:
    """``publish`` for a job's outcomes: held in the job's outbox; sent at once outside a job."""

    def hold(topic: str, key: str, value: bytes) -> None:
        box = _OUTBOX.get()
        if box is None:
            publish(topic, key, value)
        else:
            box.append((topic, key, value))

    return hold


class Settlements:
    """The :func:`after_commit` callbacks of finished jobs, held by (partition, offset) until
    their commit (True) or until their outputs are given up here (False).

    The callbacks run on one thread of their own, in order, so a slow store (a marker written
    after a commit) never holds up the loop that keeps the consumer in its group.
    """

    def __init__(self) -> None:
        self._held: dict[tuple[Partition, int], list[Settle]] = {}
        self._runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="settle")

    def hold(self, part: Partition, offset: int, callbacks: Sequence[Settle]) -> None:
        if callbacks:
            self._held[(part, offset)] = list(callbacks)

    def committed(self, part: Partition, offsets: Sequence[int]) -> None:
        for offset in offsets:
            self._run(self._held.pop((part, offset), []), True)

    def abandon(self, callbacks: Sequence[Settle]) -> None:
        self._run(list(callbacks), False)

    def drop(self, part: Partition) -> None:
        """``part`` moved away: what its finished jobs held never commits from here."""
        for where in [w for w in self._held if w[0] == part]:
            self._run(self._held.pop(where), False)

    def close(self) -> None:
        """Give up everything still held, and wait for the callbacks to have run."""
        for where in list(self._held):
            self._run(self._held.pop(where), False)
        self._runner.shutdown(wait=True)

    def _run(self, callbacks: list[Settle], committed: bool) -> None:
        for callback in callbacks:
            self._runner.submit(_settle_one, callback, committed)


def _settle_one(callback: Settle, committed: bool) -> None:
    try:
        callback(committed)
    except Exception:  # a callback's failure must not take the others, or the loop, with it
        log.exception("an after-commit step failed")


class Committer(Protocol):
    def commit(self, records: Sequence[OutRecord], offsets: Mapping[Partition, int]) -> None:
        """Send ``records``, commit ``offsets`` (next to read); raise BusUnavailable if not
        (code ``commit_ambiguous``: no answer, it may have committed)."""
        ...

    def recover(self) -> None:
        """Settle whatever an unanswered commit left open, so that the group's committed
        offsets read afterwards are final; raise BusUnavailable while that cannot be done."""
        ...


class OffsetSink(Protocol):
    def commit(self, offsets: Mapping[Partition, int]) -> None: ...


class GroupMember(Protocol):
    def group_metadata(self) -> object: ...


class Transactions(Protocol):
    def commit(
        self, records: Sequence[OutRecord], offsets: Mapping[Partition, int], group: object
    ) -> None: ...

    def recover(self) -> None: ...


class PlainCommitter:
    """At-least-once: every record acked, then the offsets committed."""

    def __init__(self, stream: OffsetSink, publish: Publish | None = None) -> None:
        self._stream = stream
        self._publish = publish

    def commit(self, records: Sequence[OutRecord], offsets: Mapping[Partition, int]) -> None:
        if records and self._publish is None:
            raise RuntimeError("records to send but no publisher")
        for topic, key, value in records:
            assert self._publish is not None
            self._publish(topic, key, value)
        self._stream.commit(offsets)

    def recover(self) -> None:
        """Nothing is left open: a plain commit is answered or failed."""


class TransactionCommitter:
    """Exactly-once for read_committed readers: records and offsets in one transaction.

    The group metadata is read at commit time, so the broker checks the offsets against the
    generation this member holds now (KIP-447 fencing of a zombie that lost its partitions).
    """

    def __init__(self, stream: GroupMember, transactions: Transactions) -> None:
        self._stream = stream
        self._transactions = transactions

    def commit(self, records: Sequence[OutRecord], offsets: Mapping[Partition, int]) -> None:
        self._transactions.commit(records, offsets, self._stream.group_metadata())

    def recover(self) -> None:
        self._transactions.recover()
