"""Which of a worker's jobs may start, which finished outputs may leave, which offset may commit.

Pure bookkeeping, fed plain values by the consumer loop. A worker runs several jobs at once and
they finish in any order, but a partition's committed offset says "everything below me is done".
So a finished job's outputs are *held* until every earlier job of its partition has finished;
then the consecutive finished run at the front of the partition leaves together, with the
offset just past it (one Kafka transaction: outputs visible exactly when the offset commits).

::

    partition p:  offset  5      6      7      8
                  state   DONE   RUNS   DONE   PENDING
                  -> flush [5]'s outputs, commit 6; 7 waits for 6; 8 waits to start

A record waits to start while an earlier unfinished record of its partition has the same key
(the same video): two jobs of one video never race, and their outputs leave in order.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Part = TypeVar("Part")  # a partition, any hashable value (the loop uses kafka Partition)
Out = TypeVar("Out")  # one output record, opaque here


class State(enum.Enum):
    PENDING = "pending"  # fetched (or put back for a retry), not running
    RUNNING = "running"
    DONE = "done"  # finished; its outputs are held until it is at the front


@dataclass
class _Entry(Generic[Out]):
    key: str | None
    state: State = State.PENDING
    outputs: tuple[Out, ...] = ()


@dataclass(frozen=True)
class Flush(Generic[Out]):
    """What may leave for one partition: outputs in offset order, then commit ``commit``."""

    outputs: tuple[Out, ...]
    commit: int  # the next offset to read
    offsets: tuple[int, ...]  # the finished jobs this flush covers


@dataclass
class Ledger(Generic[Part, Out]):
    """Per partition, every record fetched and not yet committed, by offset."""

    _parts: dict[Part, dict[int, _Entry[Out]]] = field(default_factory=dict)

    # -- records entering and moving ------------------------------------------------------

    def admit(self, part: Part, offset: int, key: str | None) -> bool:
        """A fetched record; False (ignored) when it is already known (a re-fetch)."""
        entries = self._parts.setdefault(part, {})
        if offset in entries:
            return False
        entries[offset] = _Entry(key)
        return True

    def start(self, part: Part, offset: int) -> None:
        self._move(part, offset, State.PENDING, State.RUNNING)

    def finish(self, part: Part, offset: int, outputs: Iterable[Out]) -> None:
        entry = self._move(part, offset, State.RUNNING, State.DONE)
        entry.outputs = tuple(outputs)

    def put_back(self, part: Part, offset: int) -> None:
        """A job that will run again (a retry): it keeps its place and holds the offset."""
        self._move(part, offset, State.RUNNING, State.PENDING)

    def _move(self, part: Part, offset: int, was: State, now: State) -> _Entry[Out]:
        entry = self._parts[part][offset]
        if entry.state is not was:
            raise ValueError(f"offset {offset} is {entry.state.value}, not {was.value}")
        entry.state = now
        return entry

    # -- questions --------------------------------------------------------------------------

    def startable(self, part: Part) -> list[int]:
        """Pending offsets of ``part`` whose key no earlier unfinished record holds, in order."""
        busy: set[str] = set()
        ready: list[int] = []
        for offset, entry in sorted(self._parts.get(part, {}).items()):
            if entry.state is State.DONE:
                continue
            if entry.state is State.PENDING and (entry.key is None or entry.key not in busy):
                ready.append(offset)
            if entry.key is not None:
                busy.add(entry.key)
        return ready

    def flushable(self, part: Part) -> Flush[Out] | None:
        """The finished run at the front of ``part``, or None while its lowest job is unfinished."""
        outputs: list[Out] = []
        offsets: list[int] = []
        for offset, entry in sorted(self._parts.get(part, {}).items()):
            if entry.state is not State.DONE:
                break
            outputs.extend(entry.outputs)
            offsets.append(offset)
        if not offsets:
            return None
        return Flush(tuple(outputs), offsets[-1] + 1, tuple(offsets))

    def flushed(self, part: Part, flush: Flush[Out]) -> None:
        """``flush`` has left (outputs published and offset committed): forget those jobs."""
        entries = self._parts.get(part, {})
        for offset in flush.offsets:
            entries.pop(offset, None)
        if not entries:
            self._parts.pop(part, None)

    def running(self, part: Part | None = None) -> list[tuple[Part, int]]:
        return self._with(State.RUNNING, part)

    def pending(self, part: Part | None = None) -> list[tuple[Part, int]]:
        return self._with(State.PENDING, part)

    def _with(self, state: State, part: Part | None) -> list[tuple[Part, int]]:
        parts = self._parts.items() if part is None else [(part, self._parts.get(part, {}))]
        return [
            (p, offset)
            for p, entries in parts
            for offset, entry in sorted(entries.items())
            if entry.state is state
        ]

    def held(self) -> int:
        """Records fetched and not yet committed, finished ones included (a memory bound)."""
        return sum(len(entries) for entries in self._parts.values())

    def active(self) -> int:
        """Records running or waiting to run (what the job slots are for)."""
        return sum(
            entry.state is not State.DONE
            for entries in self._parts.values()
            for entry in entries.values()
        )

    def partitions(self) -> set[Part]:
        return set(self._parts)

    def drop(self, part: Part) -> list[int]:
        """Forget ``part`` (it moved to another member); returns the offsets that were running."""
        entries = self._parts.pop(part, {})
        return [offset for offset, entry in sorted(entries.items()) if entry.state is State.RUNNING]
