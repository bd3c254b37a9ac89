"""Group a stream of sampled frames into chunks without holding more than the open chunks.

Chunks overlap, so one frame may belong to two chunks; a chunk is handed out as soon as its last
planned time has arrived, and forgotten by the assembler at that moment.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from workers.types import Chunk, FrameSample


class ChunkAssembler:
    """Feed ``(planned_time, frame)`` pairs in time order; get back completed chunks."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self._members: dict[float, list[Chunk]] = {}
        for chunk in chunks:
            for t in chunk.times:
                self._members.setdefault(t, []).append(chunk)
        self._open: dict[int, list[FrameSample]] = {}

    @property
    def wanted_times(self) -> tuple[float, ...]:
        """Every planned time some chunk needs, ascending."""
        return tuple(sorted(self._members))

    def feed(self, planned_t: float, frame: FrameSample) -> list[tuple[Chunk, list[FrameSample]]]:
        done: list[tuple[Chunk, list[FrameSample]]] = []
        for chunk in self._members.get(planned_t, ()):
            frames = self._open.setdefault(chunk.index, [])
            frames.append(frame)
            if len(frames) == len(chunk.times):
                done.append((chunk, self._open.pop(chunk.index)))
        return done

    def leftovers(self) -> list[tuple[Chunk, list[FrameSample]]]:
        """Chunks that never got all their frames (the decoder stopped early), as they are."""
        out: list[tuple[Chunk, list[FrameSample]]] = []
        by_index = {c.index: c for chunks in self._members.values() for c in chunks}
        for index in sorted(self._open):
            out.append((by_index[index], self._open.pop(index)))
        return out


def assemble(
    chunks: Sequence[Chunk], planned: Sequence[float], frames: Iterable[FrameSample]
) -> Iterator[tuple[Chunk, list[FrameSample]]]:
    """Pair each planned time with the frame the source yielded for it and emit whole chunks."""
    assembler = ChunkAssembler(chunks)
    # The source first: after the last planned time it is asked once more and ends, so a
    # decoder child sees its request finished and stays for the job's next one.
    for frame, planned_t in zip(frames, planned, strict=False):
        yield from assembler.feed(planned_t, frame)
    yield from assembler.leftovers()


def wanted_times(chunks: Sequence[Chunk]) -> tuple[float, ...]:
    """Every planned time some of ``chunks`` needs, ascending: what to ask the decoder for."""
    return tuple(sorted({t for chunk in chunks for t in chunk.times}))
