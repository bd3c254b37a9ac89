"""Decoding in a killable child process, bounded by a timeout per message.

Decoders (decord, PyAV/FFmpeg) run C/C++ code that Python cannot interrupt: a decode stuck on
a hostile file would pin the worker's job thread forever. So the decoder runs in a child
process that streams its results back through a pipe; the parent waits at most ``timeout_s``
for each message and kills the child when that passes (-> DecodeFailed). The pipe also gives
backpressure: the child blocks on ``send`` until the consumer takes the previous message, so at
most one message is in flight.

:class:`DecoderChild` is the mechanism: one child serves a job's requests (its probe, the
decord check, the coarse frames, the refinement's frames) one after another. A request is a
module-level generator function and its arguments (picklable); its items come back in order.
Errors raised in the child come back as the same vidloc error (DecodeFailed, NotAVideo,
ObjectMissing) with their message; anything else is a DecodeFailed naming the exception type.
A child that timed out, died, failed or was left half-way is killed, and the next request gets
a fresh one: a child only serves again after clean requests.

Children are forked from a decoder server (multiprocessing's ``forkserver``: a single-threaded
process started once per worker, NumPy, PyAV and our decoders preloaded), not spawned: a spawned
child paid an interpreter start and those imports, about 0.3 CPU s, per request; a fork costs
milliseconds and the child still starts clean of the worker's threads and sockets. The worker
itself never imports PyAV (:class:`PyAVInChild` stands for it); decord is imported by the
children that use it.

:class:`IsolatedSource` runs any picklable frame source (PyAV) this way, ``frames`` and
``probe`` both; :func:`stream_from_child` and :func:`call_in_child` run one request in a child
of its own.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import weakref
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import TYPE_CHECKING, Any

from vidloc.adapters.ranged_reader import ReadStats, RemoteObject
from vidloc.errors import (
    DecodeFailed,
    InputError,
    NotAVideo,
    ObjectMissing,
    StorageUnavailable,
    VidlocError,
)
from workers.priority import is_background
from workers.types import FrameSample, FrameSource, RangedProbe, VideoInfo

if TYPE_CHECKING:
    from workers.frames.pyav_source import PyAVSource

logger = logging.getLogger(__name__)

# The vidloc errors a child may raise that come back as themselves; others become DecodeFailed.
# StorageUnavailable: a source reading the object store by ranges lost it (transient: retried).
_RETURNED_ERRORS: dict[str, type[VidlocError]] = {
    cls.__name__: cls for cls in (DecodeFailed, NotAVideo, ObjectMissing, StorageUnavailable)
}
# How long a finished or killed child may take to be reaped.
_JOIN_S = 10.0
# The decoders of background work (a long video's span orders, workers/priority.py) run at
# this nice value: where the cores are short, the kernel gives them to a short video's, a
# lead-in span's or a merge's decoder first. Most of a worker's CPU is decoding.
BACKGROUND_NICENESS = 10
# Imported once by the decoder server, so that forked children start with them loaded.
_PRELOAD = [
    "workers.frames.pyav_source",
    "workers.frames.ranged_probe",
    "workers.frames.decord_source",
]

_context_lock = threading.Lock()
_context: BaseContext | None = None


def decoder_context() -> BaseContext:
    """The multiprocessing context decoder children start from (the preloaded fork server)."""
    global _context
    with _context_lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_PRELOAD)
            _context = context
        return _context


def start_decoder_server() -> None:
    """Start the decoder server now (a worker at start-up) rather than on the first job."""
    decoder_context()
    from multiprocessing import forkserver

    forkserver.ensure_running()


class DecoderChild:
    """One child process serving decode requests one after another, killed on any trouble.

    Not shared between jobs. A request made while another is still streaming (a decoder
    checking the file's end mid-stream) gets a child of its own for that request.
    """

    def __init__(self, timeout_s: float = 600.0) -> None:
        self.timeout_s = timeout_s
        self.started = 0  # children started so far (the bench and tests read it)
        self._lock = threading.Lock()
        self._busy = False
        # The live child and our end of its pipe (0 or 1 entry): a list, so that the finalizer
        # kills whatever child is live when this object is collected.
        self._live: list[tuple[Any, Connection]] = []
        self._finalizer = weakref.finalize(self, _stop_all, self._live)

    def stream(
        self, body: Callable[..., Iterable[Any]], args: tuple[Any, ...], *, label: str, path: str
    ) -> Generator[Any, None, None]:
        """Run ``body(*args)`` in the child and yield what it yields, in order.

        Each item must arrive within ``timeout_s`` of asking for it, or the child is killed and
        DecodeFailed raised. Closing the generator early kills the child.
        """
        with self._lock:
            mine = not self._busy
            self._busy = True
        if not mine:
            yield from stream_from_child(
                body, args, timeout_s=self.timeout_s, label=label, path=path
            )
            return
        clean = False
        try:
            process, pipe = self._ensure_started(label)
            try:
                pipe.send((body, args))
            except OSError as exc:  # the idle child is gone (killed from outside)
                raise DecodeFailed(f"{label} worker died before {path}") from exc
            while True:
                message = _receive(pipe, process, self.timeout_s, label, path)
                kind = message[0]
                if kind == "item":
                    yield message[1]
                elif kind == "end":
                    clean = True
                    return
                else:  # "error"
                    error = _RETURNED_ERRORS.get(message[1], DecodeFailed)
                    raise error(message[2])
        finally:
            if not clean:
                self.close()
            with self._lock:
                self._busy = False

    def call(
        self, body: Callable[..., Iterable[Any]], args: tuple[Any, ...], *, label: str, path: str
    ) -> Any:
        """The single item ``body(*args)`` yields, computed in the child."""
        items = list(self.stream(body, args, label=label, path=path))
        if len(items) != 1:
            raise DecodeFailed(f"{label}: expected one answer from the child, got {len(items)}")
        return items[0]

    def close(self) -> None:
        """Kill the live child, if any; a later request starts a new one."""
        _stop_all(self._live)

    def _ensure_started(self, label: str) -> tuple[Any, Connection]:
        if self._live and self._live[0][0].is_alive():
            return self._live[0]
        _stop_all(self._live)
        context = decoder_context()
        pipe, child_end = context.Pipe(duplex=True)
        process = context.Process(  # type: ignore[attr-defined]
            target=_serve_requests,
            args=(child_end, BACKGROUND_NICENESS if is_background() else 0),
            name=f"vidloc-{label}",
            daemon=True,
        )
        process.start()
        child_end.close()  # the child holds its own copy; EOF on ours means it is gone
        self.started += 1
        self._live.append((process, pipe))
        return process, pipe


def _stop_all(live: list[tuple[Any, Connection]]) -> None:
    # Another thread may stop the same child at once (a span decoded ahead is ended by its
    # consumer while the decoding thread's stream ends it too): pop, never check-then-pop.
    while True:
        try:
            process, pipe = live.pop()
        except IndexError:
            return
        # Killed first: a thread waiting on the pipe then reads its end (EOF), not a closed pipe.
        if process.is_alive():
            process.kill()
        pipe.close()
        process.join(timeout=_JOIN_S)
        if process.exitcode is not None:
            process.close()


def stream_from_child(
    body: Callable[..., Iterable[Any]],
    args: tuple[Any, ...],
    *,
    timeout_s: float,
    label: str,
    path: str,
) -> Generator[Any, None, None]:
    """:meth:`DecoderChild.stream` in a child of its own, ended with the request."""
    child = DecoderChild(timeout_s)
    try:
        yield from child.stream(body, args, label=label, path=path)
    finally:
        child.close()


def call_in_child(
    body: Callable[..., Iterable[Any]],
    args: tuple[Any, ...],
    *,
    timeout_s: float,
    label: str,
    path: str,
) -> Any:
    """The single item ``body(*args)`` yields, computed in a child of its own."""
    child = DecoderChild(timeout_s)
    try:
        return child.call(body, args, label=label, path=path)
    finally:
        child.close()


def _receive(pipe: Connection, child: Any, timeout_s: float, label: str, path: str) -> Any:
    try:
        if not pipe.poll(timeout_s):
            child.kill()
            raise DecodeFailed(f"{label} produced nothing for {timeout_s:g} s on {path}; killed")
        return pipe.recv()
    except (EOFError, ConnectionResetError) as exc:
        child.join(timeout=_JOIN_S)
        raise DecodeFailed(f"{label} worker died (exit code {child.exitcode}) on {path}") from exc
    except OSError as exc:
        # Our end closed by another thread that stopped the child (DecoderChild.close).
        raise DecodeFailed(f"{label} worker was stopped while reading {path}") from exc


def _serve_requests(pipe: Connection, niceness: int = 0) -> None:
    """Child process entry: answer requests until the parent hangs up."""
    if niceness:
        os.nice(niceness)  # a child serves one job: it never needs its priority back
    try:
        while True:
            try:
                request = pipe.recv()
            except (EOFError, OSError):
                return
            except Exception as exc:  # a request that cannot be unpickled here
                pipe.send(("error", "DecodeFailed", f"{type(exc).__name__}: {first_line(exc)}"))
                continue
            body, args = request
            if not _answer(pipe, body, args):
                return
    except (BrokenPipeError, EOFError):
        return
    finally:
        pipe.close()


def _answer(pipe: Connection, body: Callable[..., Iterable[Any]], args: tuple[Any, ...]) -> bool:
    """Send each item of ``body(*args)``, then "end" or the error; False once the parent left."""
    try:
        for item in body(*args):
            pipe.send(("item", item))
    except (BrokenPipeError, EOFError):
        return False
    except (InputError, StorageUnavailable) as exc:
        pipe.send(("error", type(exc).__name__, str(exc)))
        return True
    except Exception as exc:
        pipe.send(("error", "DecodeFailed", f"{type(exc).__name__}: {first_line(exc)}"))
        return True
    pipe.send(("end",))
    return True


def first_line(exc: BaseException) -> str:
    """The last line of an exception's text, capped: decoders put the useful part there."""
    text = str(exc).strip().splitlines()
    return text[-1][:300] if text else ""


class PyAVInChild:
    """A PyAVSource's settings, made into one where it runs (the decoder child).

    Pickled to the child instead of a PyAVSource, so that the worker never imports PyAV.
    """

    name = "pyav"

    def __init__(self, threads: int = 0, remote: RemoteObject | None = None) -> None:
        self.threads = threads
        self.remote = remote  # read by ranges from the store instead of the path
        self.read_stats = ReadStats()  # the last request's reads, where it ran (the child)

    def probe(self, path: str) -> VideoInfo:
        return self._source().probe(path)

    def frames(
        self, path: str, times: Sequence[float], size: tuple[int, int]
    ) -> Iterator[FrameSample]:
        source = self._source()
        self.read_stats = source.read_stats
        return source.frames(path, times, size)

    def _source(self) -> PyAVSource:
        from workers.frames.pyav_source import PyAVSource

        return PyAVSource(threads=self.threads, remote=self.remote)


class IsolatedSource:
    """Runs a picklable frame source (e.g. PyAVSource) in a killable child process.

    Frames come back in batches of ``batch_size`` (one pipe message each) and are the inner
    source's own samples: same true times, same images. Every call goes to ``child`` (made here
    when not given; a job's sources share one); :meth:`close` ends it.
    """

    def __init__(
        self,
        inner: FrameSource,
        decode_timeout_s: float = 600.0,
        batch_size: int = 8,
        child: DecoderChild | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.decode_timeout_s = decode_timeout_s
        self.batch_size = batch_size
        self.child = child or DecoderChild(decode_timeout_s)
        # What the inner source read from the object store by ranges (none from a local file).
        self.read_stats = ReadStats(size=getattr(getattr(inner, "remote", None), "size", 0))

    def probe(self, path: str) -> VideoInfo:
        info: VideoInfo = self.child.call(_probe, (self.inner, path), label=self.name, path=path)
        return info

    def probe_by_ranges(self) -> RangedProbe:
        """The object's probe from its header and end, for a source reading it by ranges."""
        remote = getattr(self.inner, "remote", None)
        if remote is None:
            raise DecodeFailed(f"{self.name}: not reading an object by ranges")
        found: RangedProbe = self.child.call(
            _probe_by_ranges, (remote,), label="probe", path=remote.where
        )
        self.read_stats.add(found.stats)
        return found

    def frames(
        self, path: str, times: Sequence[float], size: tuple[int, int]
    ) -> Generator[FrameSample, None, None]:
        # A generator: closing it early kills the child (DecoderChild.stream's finally).
        wanted = sorted(times)
        if not wanted:
            return
        batches = self.child.stream(
            _serve_frames,
            (self.inner, path, wanted, size, self.batch_size),
            label=self.name,
            path=path,
        )
        try:
            for batch in batches:
                if isinstance(batch, ReadStats):
                    self.read_stats.add(batch)
                else:
                    yield from batch
        finally:
            batches.close()

    def close(self) -> None:
        self.child.close()


def _probe(source: FrameSource, path: str) -> Iterator[VideoInfo]:
    yield source.probe(path)


def _probe_by_ranges(remote: RemoteObject) -> Iterator[RangedProbe]:
    from workers.frames.ranged_probe import probe_by_ranges  # PyAV: in the child only

    yield probe_by_ranges(remote)


def _serve_frames(
    source: FrameSource,
    path: str,
    wanted: list[float],
    size: tuple[int, int],
    batch_size: int,
) -> Iterator[list[FrameSample] | ReadStats]:
    batch: list[FrameSample] = []
    for sample in source.frames(path, wanted, size):
        batch.append(sample)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
    stats = getattr(source, "read_stats", None)
    if stats is not None and stats.requests:
        yield stats  # what the request read from the store, for the parent to count


def probe_in_child(path: str, timeout_s: float, child: DecoderChild | None = None) -> VideoInfo:
    """:func:`probe.probe_video` in ``child`` (or one of its own), killed after ``timeout_s``."""
    args = (PyAVInChild(), path)
    info: VideoInfo
    if child is None:
        info = call_in_child(_probe, args, timeout_s=timeout_s, label="probe", path=path)
    else:
        info = child.call(_probe, args, label="probe", path=path)
    return info
