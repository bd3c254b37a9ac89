"""decord frame source, run in a child process so a hung or bloated decode can be killed.

decord decodes in C++ threads that Python cannot interrupt: a decode stuck on a hostile file
would pin a worker thread (and its memory) forever. So the VideoReader lives in a child process
(:mod:`workers.frames.isolated`, the job's one decoder child) that streams batches of frames
back; the parent waits at most ``decode_timeout_s`` for each batch and kills the child when that
passes (-> DecodeFailed).

decord decodes straight to the requested size (``width``/``height``), and true frame times come
from ``get_frame_timestamp`` (container timestamps relative to the stream start; on a
variable-frame-rate file frame index / average fps is off by seconds). The frame answering a
request follows the same rule as the PyAV source (:func:`pyav_source.select_index`).

Known limits of decord 0.6 (measured in docs/decoders.md): it cannot open AV1, GIF or H.264 in
AVI, and in MPEG-TS and MPEG-PS it returns other frames' pictures under the right times; ``select``
sends all of those to PyAV and checks decord against PyAV on the rest. In open-GOP streams it
serves pictures a few frames ahead (MP4/MOV) or a second behind (Matroska) under the right times,
often too close for the picture check to see: :meth:`DecordSource.refuses` says so, and PyAV
decodes them. Its memory grows with resolution and length (see ``bench/README.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator, Sequence
from typing import Any

import numpy as np

from vidloc.errors import DecodeFailed
from workers.frames.isolated import DecoderChild, first_line, probe_in_child
from workers.frames.timing import ends_early, select_index
from workers.types import FrameSample, VideoInfo

logger = logging.getLogger(__name__)

# Codecs decord 0.6 cannot open although FFmpeg (PyAV) can.
DECORD_UNSUPPORTED_CODECS = frozenset({"av1"})


class DecordSource:
    """Streams frames with decord in a killable child process (``child``: a job's sources
    share one; made here when not given; :meth:`close` ends it)."""

    name = "decord"

    def __init__(
        self,
        threads: int = 0,
        decode_timeout_s: float = 600.0,
        batch_size: int = 8,
        child: DecoderChild | None = None,
    ) -> None:
        self.threads = threads  # 0 = decord's choice
        self.decode_timeout_s = decode_timeout_s
        self.batch_size = batch_size
        self.child = child or DecoderChild(decode_timeout_s)

    def probe(self, path: str) -> VideoInfo:
        # decord names no codec and cannot tell "not a video" from "broken": probe with PyAV.
        return probe_in_child(path, self.decode_timeout_s, self.child)

    def close(self) -> None:
        self.child.close()

    def refuses(self, path: str) -> str | None:
        """Why decord must not serve ``path`` though it opens it, or None (asked by
        ``select.FallbackSource`` before decord serves a file)."""
        if self.child.call(_scan_gop, (path,), label="decord", path=path):
            return "cannot serve open-GOP video (its pictures are off by frames there)"
        return None

    def frames(
        self, path: str, times: Sequence[float], size: tuple[int, int]
    ) -> Generator[FrameSample, None, None]:
        # A generator: closing it early (``.close()``, garbage collection) kills the child.
        wanted = sorted(times)
        if not wanted:
            return
        messages = self.child.stream(
            _serve,
            (path, size, self.threads, wanted, self.batch_size),
            label="decord",
            path=path,
        )
        try:
            yield from self._receive(messages, path, wanted)
        finally:
            messages.close()

    def _receive(
        self, messages: Iterator[tuple[Any, ...]], path: str, wanted: list[float]
    ) -> Iterator[FrameSample]:
        last_wanted = wanted[-1]
        produced = 0
        for message in messages:
            if message[0] == "index":
                self._check_end(path, float(message[1]), float(message[2]), last_wanted)
            else:  # "frames"
                for t_s, image, repeats in message[1]:
                    for _ in range(repeats):
                        yield FrameSample(t_s=t_s, image=image)
                        produced += 1
        logger.debug("decord served %d frames from %s", produced, path)

    def _check_end(self, path: str, last_frame: float, fps: float, last_wanted: float) -> None:
        """decord answers late requests with its last indexed frame; a truncated file must fail."""
        if last_frame >= last_wanted:
            return  # the common case: no need to look at the container again
        stated = self.probe(path).duration_s
        if ends_early(last_frame, last_wanted, stated, fps):
            raise DecodeFailed(
                f"decord: frames stop at {last_frame:.2f} s but the file claims {stated:.2f} s "
                "(truncated or corrupt)"
            )


def _scan_gop(path: str) -> Iterator[bool]:
    """Child process body: whether the stream has open GOPs (PyAV, imported in the child)."""
    from workers.frames.probe import has_open_gop

    yield has_open_gop(path)


def _serve(
    path: str,
    size: tuple[int, int],
    threads: int,
    wanted: list[float],
    batch_size: int,
) -> Iterator[tuple[Any, ...]]:
    """Child process body: open, map requests to frames, yield the index then frame batches."""
    try:
        import decord

        width, height = size
        reader = decord.VideoReader(
            path, ctx=decord.cpu(0), width=width, height=height, num_threads=threads
        )
        count = len(reader)
        starts = [float(s) for s in reader.get_frame_timestamp(range(count))[:, 0]] if count else []
    except Exception as exc:  # decord raises its own DECORDError and plain RuntimeErrors
        raise DecodeFailed(f"decord: cannot open: {type(exc).__name__}: {first_line(exc)}") from exc
    if count == 0:
        raise DecodeFailed("decord: no frames")
    yield ("index", max(starts), float(reader.get_avg_fps()))
    # Distinct frames in order, each with how many consecutive requests it answers.
    picks: list[list[int]] = []
    for t in wanted:
        index = select_index(starts, t)
        if picks and picks[-1][0] == index:
            picks[-1][1] += 1
        else:
            picks.append([index, 1])
    for first in range(0, len(picks), batch_size):
        batch = picks[first : first + batch_size]
        try:
            images = reader.get_batch([index for index, _ in batch]).asnumpy()
        except Exception as exc:
            raise DecodeFailed(
                f"decord: decode failed: {type(exc).__name__}: {first_line(exc)}"
            ) from exc
        yield (
            "frames",
            [
                (round(starts[index], 6), np.ascontiguousarray(images[k]), repeats)
                for k, (index, repeats) in enumerate(batch)
            ],
        )
        del images
