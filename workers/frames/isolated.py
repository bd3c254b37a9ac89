"""Decoding in a killable child process, bounded by a timeout per message.

Decoders (decord, PyAV/FFmpeg) run C/C++ code that Python cannot interrupt: a decode stuck on
a hostile file would pin the worker's job thread forever. So the decoder runs in a spawned child
process (fork is unsafe beside Kafka/HTTP threads) that streams its results back through a
pipe; the parent waits at most ``timeout_s`` for each message and kills the child when that
passes (-> DecodeFailed). The pipe also gives backpressure: the child blocks on ``send`` until
the consumer takes the previous message, so at most one message is in flight.

:func:`stream_from_child` is the mechanism: the child body is a module-level generator function
(picklable, so spawn can find it) whose items come back to the parent in order. Errors raised
in the child come back as the same vidloc error (DecodeFailed, NotAVideo, ObjectMissing) with
their message; anything else is a DecodeFailed naming the exception type. :class:`IsolatedSource`
runs any picklable frame source (PyAV) this way, ``frames`` and ``probe`` both.

Cost (bench/README.md): about 0.15 s to start a child (interpreter, numpy, av) per ``frames`` or
``probe`` call, and under 1 ms per 448x256 frame to pickle it through the pipe; on 600 frames of
1080p PyAV took 0.5-0.8 s (5-9 %) longer isolated than in-process.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from multiprocessing.connection import Connection
from typing import Any

from vidloc.errors import DecodeFailed, InputError, NotAVideo, ObjectMissing
from workers.frames.probe import probe_video
from workers.types import FrameSample, FrameSource, VideoInfo

logger = logging.getLogger(__name__)

# The vidloc errors a child may raise that come back as themselves; others become DecodeFailed.
_RETURNED_ERRORS: dict[str, type[InputError]] = {
    cls.__name__: cls for cls in (DecodeFailed, NotAVideo, ObjectMissing)
}
# How long a finished or killed child may take to be reaped.
_JOIN_S = 10.0


def stream_from_child(
    body: Callable[..., Iterable[Any]],
    args: tuple[Any, ...],
    *,
    timeout_s: float,
    label: str,
    path: str,
) -> Generator[Any, None, None]:
    """Run ``body(*args)`` in a spawned child and yield what it yields, in order.

    Each item must arrive within ``timeout_s`` of asking for it, or the child is killed and
    DecodeFailed raised. Closing the generator early (``.close()``, garbage collection) kills
    the child. ``label`` names the decoder and ``path`` the file in error messages.
    """
    mp = multiprocessing.get_context("spawn")
    receiver, sender = mp.Pipe(duplex=False)
    child = mp.Process(
        target=_child_main, args=(sender, body, args), name=f"vidloc-{label}", daemon=True
    )
    child.start()
    sender.close()  # the child holds its own copy; EOF on ours means it is gone
    try:
        while True:
            message = _receive(receiver, child, timeout_s, label, path)
            kind = message[0]
            if kind == "item":
                yield message[1]
            elif kind == "end":
                return
            else:  # "error"
                error = _RETURNED_ERRORS.get(message[1], DecodeFailed)
                raise error(message[2])
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join(timeout=_JOIN_S)
        if child.exitcode is not None:
            child.close()


def call_in_child(
    body: Callable[..., Iterable[Any]],
    args: tuple[Any, ...],
    *,
    timeout_s: float,
    label: str,
    path: str,
) -> Any:
    """The single item ``body(*args)`` yields, computed in a child within ``timeout_s``."""
    items = list(stream_from_child(body, args, timeout_s=timeout_s, label=label, path=path))
    if len(items) != 1:
        raise DecodeFailed(f"{label}: expected one answer from the child, got {len(items)}")
    return items[0]


def _receive(
    receiver: Connection, child: Any, timeout_s: float, label: str, path: str
) -> tuple[Any, ...]:
    if not receiver.poll(timeout_s):
        child.kill()
        raise DecodeFailed(f"{label} produced nothing for {timeout_s:g} s on {path}; killed")
    try:
        message: tuple[Any, ...] = receiver.recv()
    except EOFError as exc:
        child.join(timeout=_JOIN_S)
        raise DecodeFailed(f"{label} worker died (exit code {child.exitcode}) on {path}") from exc
    return message


def _child_main(out: Connection, body: Callable[..., Iterable[Any]], args: tuple[Any, ...]) -> None:
    """Child process entry: send each item of ``body(*args)``, then "end" or the error."""
    try:
        try:
            for item in body(*args):
                out.send(("item", item))
        except (BrokenPipeError, EOFError):
            return  # the consumer stopped early
        except InputError as exc:
            out.send(("error", type(exc).__name__, str(exc)))
            return
        except Exception as exc:
            out.send(("error", "DecodeFailed", f"{type(exc).__name__}: {first_line(exc)}"))
            return
        out.send(("end",))
    except (BrokenPipeError, EOFError):
        return
    finally:
        out.close()


def first_line(exc: BaseException) -> str:
    """The last line of an exception's text, capped: decoders put the useful part there."""
    text = str(exc).strip().splitlines()
    return text[-1][:300] if text else ""


class IsolatedSource:
    """Runs a picklable frame source (e.g. PyAVSource) in a killable child process.

    Frames come back in batches of ``batch_size`` (one pipe message each) and are the inner
    source's own samples: same true times, same images.
    """

    def __init__(
        self, inner: FrameSource, decode_timeout_s: float = 600.0, batch_size: int = 8
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.decode_timeout_s = decode_timeout_s
        self.batch_size = batch_size

    def probe(self, path: str) -> VideoInfo:
        info: VideoInfo = call_in_child(
            _probe, (self.inner, path), timeout_s=self.decode_timeout_s, label=self.name, path=path
        )
        return info

    def frames(
        self, path: str, times: Sequence[float], size: tuple[int, int]
    ) -> Generator[FrameSample, None, None]:
        # A generator: closing it early kills the child (stream_from_child's finally).
        wanted = sorted(times)
        if not wanted:
            return
        batches = stream_from_child(
            _serve_frames,
            (self.inner, path, wanted, size, self.batch_size),
            timeout_s=self.decode_timeout_s,
            label=self.name,
            path=path,
        )
        try:
            for batch in batches:
                yield from batch
        finally:
            batches.close()


def _probe(source: FrameSource, path: str) -> Iterator[VideoInfo]:
    yield source.probe(path)


def _serve_frames(
    source: FrameSource,
    path: str,
    wanted: list[float],
    size: tuple[int, int],
    batch_size: int,
) -> Iterator[list[FrameSample]]:
    batch: list[FrameSample] = []
    for sample in source.frames(path, wanted, size):
        batch.append(sample)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def probe_in_child(path: str, timeout_s: float) -> VideoInfo:
    """:func:`probe.probe_video` in a child, killed after ``timeout_s`` (-> DecodeFailed)."""
    info: VideoInfo = call_in_child(
        _probe_video, (path,), timeout_s=timeout_s, label="probe", path=path
    )
    return info


def _probe_video(path: str) -> Iterator[VideoInfo]:
    yield probe_video(path)
