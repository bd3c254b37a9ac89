"""Which offsets of ``video.results`` / ``video.progress`` the deliverer may commit (pure).

A record's offset is settled once every delivery it started is delivered or dead-lettered; the
group's position per partition is the lowest offset not yet settled (or one past the highest
seen). Reading goes on past a slow delivery, so one receiver that is down holds back only the
commit, never the other receivers; after a crash the records from that commit on are delivered
again, under the same delivery ids (at least once).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vidloc.adapters.kafka import Partition


@dataclass
class _Track:
    pending: dict[int, int] = field(default_factory=dict)  # offset -> deliveries left
    next_offset: int | None = None


class OffsetLedger:
    def __init__(self) -> None:
        self._tracks: dict[Partition, _Track] = {}

    def seen(self, part: Partition, offset: int, deliveries: int) -> None:
        track = self._tracks.setdefault(part, _Track())
        if deliveries > 0:
            track.pending[offset] = track.pending.get(offset, 0) + deliveries
        if track.next_offset is None or offset + 1 > track.next_offset:
            track.next_offset = offset + 1

    def settle(self, part: Partition, offset: int) -> None:
        track = self._tracks.get(part)
        if track is None or offset not in track.pending:
            return  # the partition was revoked meanwhile: its new owner goes on from its commit
        track.pending[offset] -= 1
        if track.pending[offset] <= 0:
            del track.pending[offset]

    def forget(self, parts: set[Partition]) -> None:
        for part in parts:
            self._tracks.pop(part, None)

    def pending(self) -> int:
        return sum(sum(t.pending.values()) for t in self._tracks.values())

    def committable(self) -> dict[Partition, int]:
        out = {}
        for part, track in self._tracks.items():
            if track.pending:
                out[part] = min(track.pending)
            elif track.next_offset is not None:
                out[part] = track.next_offset
        return out
