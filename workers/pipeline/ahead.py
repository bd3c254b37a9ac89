"""A span's frames decoded ahead of the model, so its decoder child lives seconds, not minutes.

A span order's chunks wait for the model far longer than they take to decode. Streamed chunk by
chunk (workers/pipeline/fanout.py), the decoder child of each span a worker runs stayed alive,
blocked on its pipe, for as long as the span's model calls took: a worker running two span
orders kept two decoder children (~70 MB each) for the whole of a long video (bench/README.md,
"A 2-hour 1080p span run"). Here one thread decodes the whole span as fast as the cores allow,
keeping each frame as the JPEG the model is sent (the frames come JPEG-only), and then ends the
decoder child; the chunks are assembled from what it decoded.

A worker-wide ``gate`` (``VIDLOC_SPAN_DECODERS``, one by default) lets that many spans decode
at once: the next span order's decoder starts when this one's has ended, while the model still
works through the first span's chunks. A lead-in (foreground work, workers/priority.py) takes
the gate too, and never waits for a span's decode: a background decode that sees a foreground
waiter ends its decoder, gives the gate up and, once it has it back, goes on from the next
frame with a new decoder (one child start and one seek).

Held meanwhile: the span's JPEGs not yet handed to the model (a 300 s span at 1 fps and
448x256 is ~300 frames of 10-40 KB), at most :data:`MAX_AHEAD_FRAMES`: a span longer than that
(a large ``VIDLOC_SPAN_S``) decodes the rest as the model takes it, its child alive meanwhile.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext

from workers.priority import PrioritySlots, is_background
from workers.types import FrameSample

log = logging.getLogger(__name__)

_END = object()
# Frames decoded ahead and not yet taken: 15 minutes at 1 fps, 9-36 MB of JPEGs at 448x256.
MAX_AHEAD_FRAMES = 900
# How often a decoding thread blocked on a full queue looks whether the consumer stopped.
_POLL_S = 0.5
# How long closing waits for the decoding thread to stop on its own (it looks between frames),
# and then, once its decoder is ended from outside, to notice.
_GRACE_S = 2.0
_JOIN_S = 30.0


def decoded_ahead(
    open_frames: Callable[[Sequence[float]], Iterable[FrameSample]],
    times: Sequence[float],
    *,
    gate: PrioritySlots | None,
    decoding: threading.Semaphore | None,
    ended: Callable[[], None],
    max_ahead: int = MAX_AHEAD_FRAMES,
) -> Iterator[FrameSample]:
    """The frames ``open_frames(times)`` yields, pulled to the end by a thread of their own
    (holding ``gate``, and a ``decoding`` slot for each pull, so a short video's decode still
    gets the cores first), then ``ended()`` (the decoder child goes). A decoder error is raised
    here, where the frame it stopped at would have been. Closing this iterator early stops the
    thread, which ends the decoder at its next frame (a decode stuck past 2 s is ended from
    here)."""
    ready: queue.Queue[object] = queue.Queue(maxsize=max_ahead)
    stop = threading.Event()
    decoding_now = threading.Event()
    yields = is_background()  # gives the gate up to a waiting lead-in

    def pull() -> None:
        delivered = 0
        try:
            while not stop.is_set():
                with gate if gate is not None else nullcontext():
                    if stop.is_set():
                        break
                    decoding_now.set()
                    pulled, finished = _decode(
                        iter(open_frames(times[delivered:])),
                        len(times) - delivered,
                        ready,
                        stop,
                        decoding,
                        ended,
                        lambda: yields and gate is not None and gate.foreground_waiting(),
                    )
                    decoding_now.clear()
                delivered += pulled
                if finished:
                    break
            _put(ready, _END, stop)
        except BaseException as exc:  # handed to the consumer, who raises it
            _put(ready, exc, stop)

    # The job's context (its ids in log lines, background or foreground priority) goes along.
    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(pull,), name="decode-ahead", daemon=True
    )
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, FrameSample)
            yield item
    finally:
        stop.set()
        if decoding_now.is_set() and thread.is_alive():
            # A consumer that stopped early (a cancel, a chunk's error): the thread sees the
            # stop at its next frame and ends its decoder itself. One stuck on a frame is ended
            # from here (the child killed, which wakes the thread with the pipe's end). A
            # thread still waiting for the gate sees the stop when it gets the gate, and gives
            # it back without decoding.
            thread.join(_GRACE_S)
            if thread.is_alive():
                ended()
                thread.join(_JOIN_S)
                if thread.is_alive():
                    log.warning("the span's decoding thread did not stop within %.0f s", _JOIN_S)


def _decode(
    source: Iterator[FrameSample],
    wanted: int,
    ready: queue.Queue[object],
    stop: threading.Event,
    decoding: threading.Semaphore | None,
    ended: Callable[[], None],
    give_way: Callable[[], bool],
) -> tuple[int, bool]:
    """Frames from ``source`` (``wanted`` of them at most) into ``ready`` until it ends
    (finished), the consumer stops, or ``give_way`` says a lead-in waits while frames are
    still wanted; the decoder is ended either way. (pulled, finished)."""
    pulled = 0
    try:
        while not stop.is_set():
            if 0 < pulled < wanted and give_way():
                log.info("span decoding gives way to a lead-in after %d frames", pulled)
                return pulled, False
            with decoding if decoding is not None else nullcontext():
                frame = next(source, _END)
            if frame is _END:
                return pulled, True
            if not _put(ready, frame, stop):
                break
            pulled += 1
        return pulled, True
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()  # a generator left half-way kills its child
        ended()


def _put(ready: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    """``item`` queued once there is room; False if the consumer stopped meanwhile."""
    while True:
        try:
            ready.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            if stop.is_set():
                return False
