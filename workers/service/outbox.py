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
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from vidloc.adapters.kafka import OutRecord, Partition

Publish = Callable[[str, str, bytes], None]

_OUTBOX: contextvars.ContextVar[list[OutRecord] | None] = contextvars.ContextVar(
    "vidloc_outbox", default=None
)


def job_context(box: list[OutRecord]) -> contextvars.Context:
    """A context whose :func:`holding` publishes land in ``box`` (run the job in it)."""
    ctx = contextvars.copy_context()
    ctx.run(_OUTBOX.set, box)
    return ctx


def holding(publish: Publish) -> Publish:
    """``publish`` for a job's outcomes: held in the job's outbox; sent at once outside a job."""

    def hold(topic: str, key: str, value: bytes) -> None:
        box = _OUTBOX.get()
        if box is None:
            publish(topic, key, value)
        else:
            box.append((topic, key, value))

    return hold


class Committer(Protocol):
    def commit(self, records: Sequence[OutRecord], offsets: Mapping[Partition, int]) -> None:
        """Send ``records``, commit ``offsets`` (next to read); raise BusUnavailable if not."""
        ...


class OffsetSink(Protocol):
    def commit(self, offsets: Mapping[Partition, int]) -> None: ...


class GroupMember(Protocol):
    def group_metadata(self) -> object: ...


class Transactions(Protocol):
    def commit(
        self, records: Sequence[OutRecord], offsets: Mapping[Partition, int], group: object
    ) -> None: ...


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
