"""What the Kafka adapter hands out and takes in: plain values, no kafka-python types."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal


@dataclass(frozen=True, order=True)
class Partition:
    """One partition of one topic, as a plain value."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]"


@dataclass(frozen=True)
class BusRecord:
    """One consumed message as plain values, so loops never touch kafka-python types."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes

    @property
    def where(self) -> Partition:
        return Partition(self.topic, self.partition)


@dataclass(frozen=True)
class Start:
    """Where a replayed topic's partitions start: use the class methods."""

    kind: Literal["beginning", "end", "last", "time"]
    last_n: int = 0
    at: datetime | None = None

    @classmethod
    def beginning(cls) -> Start:
        return cls("beginning")

    @classmethod
    def end(cls) -> Start:
        """Only what is published from now on."""
        return cls("end")

    @classmethod
    def last(cls, n: int) -> Start:
        """The newest ``n`` records of each partition (fewer where retention kept fewer)."""
        return cls("last", last_n=max(0, n))

    @classmethod
    def at_time(cls, when: datetime) -> Start:
        """The first record stamped at or after ``when`` (the end where none is)."""
        return cls("time", at=when)


AssignmentCallback = Callable[[set[Partition]], None]
