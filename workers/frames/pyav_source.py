"""PyAV frame source: one forward pass of demux + decode, seeking only over long gaps in
indexed containers (MP4/MOV, Matroska/WebM).

Which frame answers a requested time ``t``: the last frame whose presentation time is at or
before ``t`` -- the frame a player shows at ``t`` -- or the first frame when ``t`` precedes it.
Both sources use this rule, and both report ``FrameSample.t_s`` as that frame's real time from
the container timestamps (relative to the stream start), never the requested time. Two requests
answered by the same frame each get it (one sample per request, in order).

Memory is flat: besides the frame being decoded, only the current candidate is kept.

This class decodes in-process with no time limit; the worker runs it in a killable child
through :class:`workers.frames.isolated.IsolatedSource` (see ``select.make_source``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence

import av
import av.container
import av.video.stream
import numpy as np

from vidloc.adapters.ranged_reader import RangedReader, ReadStats, RemoteObject
from vidloc.errors import DecodeFailed
from workers.frames.probe import (
    display_rotation,
    open_input,
    open_ranged,
    probe_video,
    stated_duration_s,
    stream_origin_s,
    video_stream,
)
from workers.frames.seeking import KeyframeGaps, Landing, Seek
from workers.frames.timing import RESTART_S, TIME_EPS_S, ends_early
from workers.types import FrameSample, RGBImage, VideoInfo

logger = logging.getLogger(__name__)

# FFmpeg demuxers whose files index their keyframes (seeking lands where it should).
_INDEXED = frozenset({"mov", "mp4", "matroska", "webm"})
# Until two consecutive keyframes have been decoded, assume keyframes this far apart.
_DEFAULT_GOP_S = 10.0


class PyAVSource:
    """Streams frames with PyAV (FFmpeg); decodes every codec FFmpeg knows, AV1 included."""

    name = "pyav"

    def __init__(
        self, threads: int = 0, seek_gops: float = 2.0, remote: RemoteObject | None = None
    ) -> None:
        self.threads = threads  # 0 = let FFmpeg choose
        self.seek_gops = seek_gops
        # Read the video by ranges from the object store instead of from ``path`` (which then
        # only names it): a span worker reads the part it decodes, not the whole object.
        self.remote = remote
        self.read_stats = ReadStats(size=remote.size if remote else 0)

    def probe(self, path: str) -> VideoInfo:
        if self.remote is not None:
            raise DecodeFailed(f"{path}: a ranged source decodes spans only; it does not probe")
        return probe_video(path)

    def frames(
        self, path: str, times: Sequence[float], size: tuple[int, int]
    ) -> Iterator[FrameSample]:
        wanted = sorted(times)
        if not wanted:
            return
        with contextlib.ExitStack() as opened:
            if self.remote is None:
                container = opened.enter_context(open_input(path))
            else:
                reader = opened.enter_context(RangedReader(self.remote))
                opened.callback(self.read_stats.add, reader.stats)
                container = opened.enter_context(open_ranged(reader))
            stream = video_stream(container)
            stream.thread_type = "AUTO"
            if self.threads:
                stream.codec_context.thread_count = self.threads
            try:
                yield from self._stream(container, stream, wanted, size)
            except av.FFmpegError as exc:
                raise DecodeFailed(f"decoding failed: {exc}") from exc

    def _stream(
        self,
        container: av.container.InputContainer,
        stream: av.video.stream.VideoStream,
        wanted: list[float],
        size: tuple[int, int],
    ) -> Iterator[FrameSample]:
        origin = stream_origin_s(stream)
        rate = stream.average_rate or stream.guessed_rate
        frame_gap = 1.0 / float(rate) if rate else 0.04
        # AVI stores no presentation times: FFmpeg numbers its packets in decode order, so with
        # B-frames the pictures come out one or two frames off their numbers (measured:
        # docs/decoders.md). AVI is constant-rate by design: the n-th picture out is at n/rate.
        # Counting needs every frame from the start, so no seeking there.
        counted = container.format.name == "avi"
        decoded = 0
        # Seek only in containers with an index: in MPEG-TS a seek lands on a keyframe after
        # the target or yields no frame at all (measured, docs/decoders.md); there, and in
        # program streams, decoding forward is the only right way.
        seekable = not counted and bool(_INDEXED & set(container.format.name.split(",")))
        keys = KeyframeGaps(_DEFAULT_GOP_S)
        demuxed = _Demuxed()
        candidate: tuple[float, av.VideoFrame] | None = None
        seek: Seek | None = None  # the last seek, until its first new frame
        sought = -1.0  # the last seek's target: never seek twice for one target (no loops)
        next_i = 0
        restart = True
        while restart:
            restart = False
            for frame in _decode_forward(container, stream, demuxed):
                if counted:
                    t = decoded * frame_gap
                    decoded += 1
                else:
                    t = _frame_time(frame, origin, candidate, frame_gap)
                if seek is not None:
                    landing = seek.land(t)
                    if landing is Landing.SEEN:
                        continue  # decoded before the seek, and considered then
                    if landing is Landing.OVERSHOT:
                        # Frames just before the target were jumped over: decode them.
                        logger.debug(
                            "seek for %.3f s landed at %.3f s; going back", seek.target_s, t
                        )
                        _seek(container, stream, seek.retreat(), origin, demuxed.reorder_s)
                        restart = True
                        break
                    if seek.futile:
                        keys.none_until(seek.target_s)
                    seek = None
                elif candidate is not None and t < candidate[0] - RESTART_S:
                    # The clock restarted (files joined end to end): the probe ended the
                    # timeline here, and later pictures must not answer earlier times.
                    break
                if frame.key_frame:
                    keys.saw(t)
                # Every request before this frame is answered by the candidate (or, for a
                # request before the very first frame, by this one).
                while next_i < len(wanted) and t > wanted[next_i] + TIME_EPS_S:
                    chosen = candidate or (t, frame)
                    yield _sample(chosen, size)
                    next_i += 1
                if next_i >= len(wanted):
                    return
                candidate = (t, frame)
                target = wanted[next_i]
                if seekable and target > sought and keys.worth_seeking(t, target, self.seek_gops):
                    # Far ahead: jump to the keyframe before the target instead of decoding
                    # the gap. The candidate stays valid: it is still at or before the target.
                    sought = target
                    seek = Seek(target, resume_s=t, frame_gap_s=frame_gap, fallback_s=keys.last_s)
                    keys.seeking()
                    _seek(container, stream, target, origin, demuxed.reorder_s)
                    restart = True
                    break
        if next_i < len(wanted):
            candidate = _check_end(container, stream, wanted[-1], candidate)
            for _ in wanted[next_i:]:
                yield _sample(candidate, size)


def _seek(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    target_s: float | None,
    origin: float,
    reorder_s: float,
) -> None:
    """Jump to the keyframe at or before ``target_s`` (None: the stream start).

    MP4/MOV index keyframes by decode time, which runs ahead of presentation by the B-frame
    delay: aiming that much earlier lands on a keyframe shown at or before the target.
    """
    if target_s is None:
        pts = stream.start_time or 0
    else:
        pts = int((target_s - reorder_s + origin) / float(stream.time_base or 1))
    container.seek(pts, stream=stream, backward=True, any_frame=False)


class _Demuxed:
    """What the packets read so far say about the stream."""

    def __init__(self) -> None:
        self.reorder_s = 0.0  # how far presentation follows decoding (B-frames), at most
        self._reorder_ticks = 0

    def saw(self, packet: av.Packet) -> None:
        if packet.pts is None or packet.dts is None or packet.time_base is None:
            return
        ticks = packet.pts - packet.dts
        if ticks > self._reorder_ticks:  # rare: no fraction arithmetic per packet
            self._reorder_ticks = ticks
            self.reorder_s = float(ticks * packet.time_base)


def _check_end(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    last_wanted: float,
    candidate: tuple[float, av.VideoFrame] | None,
) -> tuple[float, av.VideoFrame]:
    """The stream ended before the last requests: fine only if the file says it ends there."""
    if candidate is None:
        raise DecodeFailed("the video stream holds no decodable frame")
    stated = stated_duration_s(container, stream)
    rate = stream.average_rate or stream.guessed_rate
    if ends_early(candidate[0], last_wanted, stated, float(rate) if rate else 0.0):
        raise DecodeFailed(
            f"frames stop at {candidate[0]:.2f} s but the file claims {stated or 0:.2f} s "
            "(truncated or corrupt)"
        )
    return candidate


def _decode_forward(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    demuxed: _Demuxed,
) -> Iterator[av.VideoFrame]:
    """Frames in presentation order until the data ends or cannot be decoded any further.

    A truncated file ends in a partial packet the decoder refuses: that is the end of what can
    be decoded, and ``_check_end`` decides whether the file claimed more than the requests need.
    """
    frames = 0
    try:
        for packet in container.demux(stream):
            demuxed.saw(packet)
            for frame in packet.decode():
                frames += 1
                yield frame
    except av.FFmpegError as exc:
        if frames == 0:
            raise
        logger.info("decoding stopped after %d frames: %s", frames, exc)


def _frame_time(
    frame: av.VideoFrame,
    origin: float,
    previous: tuple[float, av.VideoFrame] | None,
    frame_gap: float,
) -> float:
    if frame.time is not None:
        return float(frame.time) - origin
    # No pts (some AVI/raw streams): one nominal frame after the previous one.
    return previous[0] + frame_gap if previous else 0.0


def _sample(chosen: tuple[float, av.VideoFrame], size: tuple[int, int]) -> FrameSample:
    t, frame = chosen
    w, h = size
    # AREA (box) filtering: the right kernel for large downscales, and 1.6 ms instead of the
    # default bicubic's 4.4 ms per 1080p frame (bench/README.md) -- the difference between
    # beating and missing the full-decode floor.
    # A player turns the stored picture by the display matrix (phone videos); so do we, so the
    # model sees what a viewer sees. ``size`` is the display size: scale first, then turn.
    turns = display_rotation(frame) // 90
    if turns % 2:
        w, h = h, w
    image: RGBImage = frame.to_ndarray(  # type: ignore[assignment]
        format="rgb24", width=w, height=h, interpolation="AREA"
    )
    if turns:
        image = np.ascontiguousarray(np.rot90(image, turns))
    return FrameSample(t_s=round(t, 6), image=image)
