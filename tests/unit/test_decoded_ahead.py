"""A span's frames decoded ahead of the model (workers/pipeline/ahead.py): the decoder is
drained and ended while the chunks still wait, one span decodes at a time per gate, a waiting
lead-in is let through at once and the span goes on from its next frame, errors arrive where
they happened, and a consumer that stops early ends the decoder at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from vidloc.errors import DecodeFailed
from workers.pipeline.ahead import decoded_ahead
from workers.priority import PrioritySlots, in_background
from workers.types import FrameSample

WAIT_S = 5.0
TIMES = tuple(float(t) for t in range(50))


class Decoder:
    """Stands in for a span's decoder child: frames on demand, a record of each opening."""

    def __init__(
        self,
        fail_at: float | None = None,
        hold: threading.Event | None = None,
        hold_from: float = 0.0,
    ) -> None:
        self.fail_at = fail_at
        self.hold = hold  # pulling waits on it (a decoder that is slow or stuck)
        self.hold_from = hold_from
        self.opened: list[float] = []  # the first time of each opening (a child started)
        self.pulled: list[float] = []
        self.ended = 0
        self.started = threading.Event()

    def frames(self, times: Sequence[float]) -> Iterator[FrameSample]:
        self.opened.append(times[0])
        for t in times:
            self.started.set()
            if self.hold is not None and t >= self.hold_from:
                self.hold.wait(WAIT_S)
            if t == self.fail_at:
                raise DecodeFailed(f"broken packet at {t:g} s")
            self.pulled.append(t)
            yield FrameSample(t, None, b"jpeg")

    def end(self) -> None:
        self.ended += 1


def ahead(
    decoder: Decoder, gate: PrioritySlots | None = None, **kw: object
) -> Iterator[FrameSample]:
    return decoded_ahead(decoder.frames, TIMES, gate=gate, decoding=None, ended=decoder.end, **kw)  # type: ignore[arg-type]


def test_every_frame_in_order_and_the_decoder_ended_before_the_consumer_is_done() -> None:
    decoder = Decoder()
    frames = ahead(decoder)
    first = next(frames)
    # The consumer has taken one frame; the decoder is drained and ended without it.
    deadline = time.monotonic() + WAIT_S
    while not decoder.ended and time.monotonic() < deadline:
        time.sleep(0.01)
    assert decoder.ended and decoder.pulled == list(TIMES)
    assert [first.t_s, *(f.t_s for f in frames)] == list(TIMES)
    assert decoder.opened == [0.0]  # one child, never restarted


def test_one_span_decodes_at_a_time_per_gate() -> None:
    gate = PrioritySlots(1)
    hold = threading.Event()
    first, second = Decoder(hold=hold, hold_from=1.0), Decoder()
    with in_background():  # span orders (a generator's body runs at its first next())
        a, b = ahead(first, gate), ahead(second, gate)
        assert next(a).t_s == 0.0  # the first span's decoder is running, stuck at 1 s
    waiter = threading.Thread(target=lambda: list(b))  # a second span order asks
    waiter.start()
    time.sleep(0.2)
    assert not second.started.is_set()  # it waits for the first span's decoder to end
    hold.set()
    assert [f.t_s for f in a] == list(TIMES[1:])
    waiter.join(WAIT_S)
    assert first.ended and second.ended and second.pulled == list(TIMES)


def test_a_span_gives_way_to_a_lead_in_and_goes_on_from_its_next_frame() -> None:
    gate = PrioritySlots(1)
    hold = threading.Event()
    span = Decoder(hold=hold, hold_from=10.0)
    with in_background():  # a span order (a generator's body runs at its first next())
        frames = ahead(span, gate)
        assert next(frames).t_s == 0.0
    deadline = time.monotonic() + WAIT_S
    while span.pulled[-1:] != [9.0] and time.monotonic() < deadline:
        time.sleep(0.01)
    lead_in = Decoder()
    got_lead_in: list[float] = []
    asks = threading.Thread(target=lambda: got_lead_in.extend(f.t_s for f in ahead(lead_in, gate)))
    asks.start()  # a lead-in (foreground) asks for the gate the span holds
    time.sleep(0.1)
    hold.set()  # the span's next pull sees the lead-in waiting
    asks.join(WAIT_S)
    assert got_lead_in == list(TIMES)
    rest = [f.t_s for f in frames]
    assert [0.0, *rest] == list(TIMES)  # every frame once, in order
    assert span.pulled == list(TIMES)  # none decoded twice
    assert len(span.opened) == 2 and span.opened[0] == 0.0  # restarted once, further on
    assert span.ended == 2


def test_a_decoder_error_is_raised_where_the_frame_would_have_been() -> None:
    decoder = Decoder(fail_at=4.0)
    got = []
    with pytest.raises(DecodeFailed, match="at 4 s"):
        for frame in ahead(decoder):
            got.append(frame.t_s)
    assert got == [0.0, 1.0, 2.0, 3.0]
    assert decoder.ended


def test_a_consumer_that_stops_early_ends_the_decoder_at_once() -> None:
    hold = threading.Event()
    decoder = Decoder(hold=hold, hold_from=1.0)  # stuck on the second frame
    ending = decoder.end

    def end() -> None:
        ending()
        hold.set()  # ending the child wakes a pull blocked on it

    decoder.end = end  # type: ignore[method-assign]
    gate = PrioritySlots(1)
    frames = ahead(decoder, gate)
    assert next(frames).t_s == 0.0
    started = time.monotonic()
    frames.close()  # a cancel: no more chunks for the model
    assert decoder.ended
    assert time.monotonic() - started < WAIT_S
    assert len(decoder.pulled) < len(TIMES)  # it stopped pulling
    assert gate.acquire(timeout=WAIT_S)  # and gave the gate back


def test_a_decoding_slot_is_held_only_while_pulling() -> None:
    slots = PrioritySlots(1)
    decoder = Decoder()
    frames = list(
        decoded_ahead(decoder.frames, TIMES, gate=None, decoding=slots, ended=decoder.end)
    )
    assert len(frames) == len(TIMES)
    assert slots.acquire(blocking=False)  # given back after the last pull


def test_no_more_than_max_ahead_frames_wait_and_the_rest_come_as_taken() -> None:
    decoder = Decoder()
    frames = decoded_ahead(
        decoder.frames, TIMES, gate=None, decoding=None, ended=decoder.end, max_ahead=5
    )
    first = next(frames)
    time.sleep(0.3)
    # One taken, five waiting, one more pulled and blocked on the full queue.
    assert len(decoder.pulled) <= 7 and not decoder.ended
    assert [first.t_s, *(f.t_s for f in frames)] == list(TIMES)
    assert decoder.ended == 1


def test_a_consumer_that_stops_while_the_queue_is_full_is_not_held_up() -> None:
    decoder = Decoder()
    frames = decoded_ahead(
        decoder.frames, TIMES, gate=None, decoding=None, ended=decoder.end, max_ahead=2
    )
    next(frames)
    time.sleep(0.2)
    started = time.monotonic()
    frames.close()
    assert time.monotonic() - started < WAIT_S
    assert decoder.ended and len(decoder.pulled) < len(TIMES)


def test_a_span_with_every_frame_pulled_does_not_give_way_for_nothing() -> None:
    gate = PrioritySlots(1)
    hold = threading.Event()
    span = Decoder(hold=hold, hold_from=TIMES[-1])  # stuck before its last frame
    with in_background():
        frames = ahead(span, gate)
        assert next(frames).t_s == 0.0
    assert span.started.wait(WAIT_S)
    lead_in = Decoder()
    asks = threading.Thread(target=lambda: list(ahead(lead_in, gate)))
    asks.start()  # a lead-in waits as the span's last frame comes
    time.sleep(0.1)
    hold.set()
    assert [0.0, *(f.t_s for f in frames)] == list(TIMES)
    assert span.opened == [0.0]  # not opened again for no frames
    asks.join(WAIT_S)
    assert lead_in.pulled == list(TIMES)
