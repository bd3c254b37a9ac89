"""PyAV frame source: one forward pass of demux + decode, seeking only over long gaps.

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

import logging
from collections.abc import Iterator, Sequence

import av
import av.container
import av.video.stream

from vidloc.errors import DecodeFailed
from workers.frames.probe import open_input, probe_video, stream_origin_s, video_stream
from workers.types import FrameSample, RGBImage, VideoInfo

logger = logging.getLogger(__name__)

# Tolerance when comparing a frame time with a requested time: containers store times in
# integer ticks, decord in float32, and a sample exactly on a frame must pick that frame.
TIME_EPS_S = 1e-4
# Until two keyframes have been seen, assume keyframes this far apart when deciding to seek.
_DEFAULT_GOP_S = 10.0


def select_index(frame_times: Sequence[float], t: float) -> int:
    """Index of the frame shown at ``t`` in ascending ``frame_times`` (the rule above)."""
    lo, hi = 0, len(frame_times)
    while lo < hi:
        mid = (lo + hi) // 2
        if frame_times[mid] <= t + TIME_EPS_S:
            lo = mid + 1
        else:
            hi = mid
    return max(0, lo - 1)


def ends_early(
    last_frame_s: float, last_wanted_s: float, stated_s: float | None, fps: float
) -> bool:
    """Whether decoded frames stop well before both the last request and the stated duration.

    A stream may legitimately hold its last frame for a while (VFR, a still ending), so only a
    gap of more than ``max(1 s, 2 frames)`` against what the container claims counts as
    truncation.
    """
    if stated_s is None:
        return False
    slack = max(1.0, 2.0 / fps) if fps > 0 else 1.0
    return last_frame_s + slack < min(last_wanted_s, stated_s)


class PyAVSource:
    """Streams frames with PyAV (FFmpeg); decodes every codec FFmpeg knows, AV1 included."""

    name = "pyav"

    def __init__(self, threads: int = 0, seek_gops: float = 2.0) -> None:
        self.threads = threads  # 0 = let FFmpeg choose
        self.seek_gops = seek_gops

    def probe(self, path: str) -> VideoInfo:
        return probe_video(path)

    def frames(
        self, path: str, times: Sequence[float], size: tuple[int, int]
    ) -> Iterator[FrameSample]:
        wanted = sorted(times)
        if not wanted:
            return
        with open_input(path) as container:
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
        gop_s = _DEFAULT_GOP_S
        last_key: float | None = None
        candidate: tuple[float, av.VideoFrame] | None = None
        sought = -1.0  # the last seek's target: never seek twice for one target (no loops)
        next_i = 0
        restart = True
        while restart:
            restart = False
            for frame in _decode_forward(container, stream):
                t = _frame_time(frame, origin, candidate, frame_gap)
                if frame.key_frame:
                    if last_key is not None and t > last_key:
                        gop_s = max(t - last_key, frame_gap)
                    last_key = t
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
                if target - t > self.seek_gops * gop_s and target > sought:
                    sought = target
                    # Far ahead: jump to the keyframe before the target instead of decoding
                    # the gap. The candidate stays valid: it is still at or before the target.
                    pts = int((target + origin) / float(stream.time_base or 1))
                    container.seek(pts, stream=stream, backward=True, any_frame=False)
                    restart = True
                    break
        if next_i < len(wanted):
            candidate = _check_end(container, stream, wanted[-1], candidate)
            for _ in wanted[next_i:]:
                yield _sample(candidate, size)


def _check_end(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    last_wanted: float,
    candidate: tuple[float, av.VideoFrame] | None,
) -> tuple[float, av.VideoFrame]:
    """The stream ended before the last requests: fine only if the file says it ends there."""
    if candidate is None:
        raise DecodeFailed("the video stream holds no decodable frame")
    stated = _stated_duration_s(container, stream)
    rate = stream.average_rate or stream.guessed_rate
    if ends_early(candidate[0], last_wanted, stated, float(rate) if rate else 0.0):
        raise DecodeFailed(
            f"frames stop at {candidate[0]:.2f} s but the file claims {stated or 0:.2f} s "
            "(truncated or corrupt)"
        )
    return candidate


def _decode_forward(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> Iterator[av.VideoFrame]:
    for packet in container.demux(stream):
        yield from packet.decode()


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
    image: RGBImage = frame.to_ndarray(  # type: ignore[assignment]
        format="rgb24", width=w, height=h, interpolation="AREA"
    )
    return FrameSample(t_s=round(t, 6), image=image)


def _stated_duration_s(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> float | None:
    if stream.duration and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None
