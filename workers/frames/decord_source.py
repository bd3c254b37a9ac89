"""decord frame source, run in a child process so a hung or bloated decode can be killed.

decord decodes in C++ threads that Python cannot interrupt: a decode stuck on a hostile file
would pin a worker thread (and its memory) forever. So the VideoReader lives in a spawned child
process that streams batches of frames back through a pipe; the parent waits at most
``decode_timeout_s`` for each message and kills the child when that passes (-> DecodeFailed).
The pipe also gives backpressure: the child blocks on ``send`` until the consumer takes the
previous batch, so at most one batch is in flight.

decord decodes straight to the requested size (``width``/``height``), and true frame times come
from ``get_frame_timestamp`` (container timestamps relative to the stream start; on a
variable-frame-rate file frame index / average fps is off by seconds). The frame answering a
request follows the same rule as the PyAV source (:func:`pyav_source.select_index`).

Known limits of decord 0.6: it cannot open AV1 (``select`` routes AV1 to PyAV), and its memory
grows with resolution and length (see ``bench/README.md``).
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Generator, Iterator, Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from vidloc.errors import DecodeFailed
from workers.frames.probe import probe_video
from workers.frames.pyav_source import ends_early, select_index
from workers.types import FrameSample, VideoInfo

logger = logging.getLogger(__name__)

# Codecs decord 0.6 cannot open although FFmpeg (PyAV) can.
DECORD_UNSUPPORTED_CODECS = frozenset({"av1"})


class DecordSource:
    """Streams frames with decord in a killable child process."""

    name = "decord"

    def __init__(
        self, threads: int = 0, decode_timeout_s: float = 600.0, batch_size: int = 8
    ) -> None:
        self.threads = threads  # 0 = decord's choice
        self.decode_timeout_s = decode_timeout_s
        self.batch_size = batch_size

    def probe(self, path: str) -> VideoInfo:
        # decord names no codec and cannot tell "not a video" from "broken": probe with PyAV.
        return probe_video(path)

    def frames(
        self, path: str, times: Sequence[float], size: tuple[int, int]
    ) -> Generator[FrameSample, None, None]:
        # A generator: closing it early (``.close()``, garbage collection) kills the child.
        wanted = sorted(times)
        if not wanted:
            return
        mp = multiprocessing.get_context("spawn")  # fork is unsafe beside Kafka/HTTP threads
        receiver, sender = mp.Pipe(duplex=False)
        child = mp.Process(
            target=_serve,
            args=(sender, path, size, self.threads, wanted, self.batch_size),
            name="vidloc-decord",
            daemon=True,
        )
        child.start()
        sender.close()  # the child holds its own copy; EOF on ours means it is gone
        try:
            yield from self._receive(receiver, child, path, wanted)
        finally:
            receiver.close()
            if child.is_alive():
                child.kill()
            child.join(timeout=10)
            if child.exitcode is not None:
                child.close()

    def _receive(
        self, receiver: Connection, child: Any, path: str, wanted: list[float]
    ) -> Iterator[FrameSample]:
        count, last_wanted = len(wanted), wanted[-1]
        produced = 0
        while produced < count:
            message = self._next(receiver, child, path)
            kind = message[0]
            if kind == "error":
                raise DecodeFailed(f"decord: {message[1]}")
            if kind == "index":
                self._check_end(path, float(message[1]), float(message[2]), last_wanted)
            if kind == "frames":
                for t_s, image, repeats in message[1]:
                    for _ in range(repeats):
                        yield FrameSample(t_s=t_s, image=image)
                        produced += 1
        logger.debug("decord served %d frames from %s", produced, path)

    def _check_end(self, path: str, last_frame: float, fps: float, last_wanted: float) -> None:
        """decord answers late requests with its last indexed frame; a truncated file must fail."""
        if last_frame >= last_wanted:
            return  # the common case: no need to look at the container again
        stated = probe_video(path).duration_s
        if ends_early(last_frame, last_wanted, stated, fps):
            raise DecodeFailed(
                f"decord: frames stop at {last_frame:.2f} s but the file claims {stated:.2f} s "
                "(truncated or corrupt)"
            )

    def _next(self, receiver: Connection, child: Any, path: str) -> tuple[Any, ...]:
        if not receiver.poll(self.decode_timeout_s):
            child.kill()
            raise DecodeFailed(
                f"decord produced nothing for {self.decode_timeout_s:.0f} s on {path}; killed"
            )
        try:
            message: tuple[Any, ...] = receiver.recv()
        except EOFError as exc:
            child.join(timeout=5)
            raise DecodeFailed(
                f"decord worker died (exit code {child.exitcode}) on {path}"
            ) from exc
        return message


def _serve(
    out: Connection,
    path: str,
    size: tuple[int, int],
    threads: int,
    wanted: list[float],
    batch_size: int,
) -> None:
    """Child process body: open, map requests to frames, send batches, then exit."""
    try:
        import decord

        width, height = size
        reader = decord.VideoReader(
            path, ctx=decord.cpu(0), width=width, height=height, num_threads=threads
        )
        count = len(reader)
        if count == 0:
            out.send(("error", "no frames"))
            return
        starts = [float(s) for s in reader.get_frame_timestamp(range(count))[:, 0]]
    except Exception as exc:  # decord raises its own DECORDError and plain RuntimeErrors
        out.send(("error", f"cannot open: {type(exc).__name__}: {_first_line(exc)}"))
        return
    try:
        out.send(("index", max(starts), float(reader.get_avg_fps())))
    except (BrokenPipeError, EOFError):
        return
    # Distinct frames in order, each with how many consecutive requests it answers.
    picks: list[list[int]] = []
    for t in wanted:
        index = select_index(starts, t)
        if picks and picks[-1][0] == index:
            picks[-1][1] += 1
        else:
            picks.append([index, 1])
    try:
        for first in range(0, len(picks), batch_size):
            batch = picks[first : first + batch_size]
            images = reader.get_batch([index for index, _ in batch]).asnumpy()
            out.send(
                (
                    "frames",
                    [
                        (round(starts[index], 6), np.ascontiguousarray(images[k]), repeats)
                        for k, (index, repeats) in enumerate(batch)
                    ],
                )
            )
            del images
    except (BrokenPipeError, EOFError):
        return  # the consumer stopped early
    except Exception as exc:
        out.send(("error", f"decode failed: {type(exc).__name__}: {_first_line(exc)}"))
    finally:
        out.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:300] if text else ""
