"""Probe a local file with PyAV: is it a video, and what are its duration, rate, size and codec?

Both frame sources probe through here (decord exposes no codec name and no way to tell "not a
video" from "broken video"). PyAV/FFmpeg errors become :mod:`vidloc.errors`:

* missing file                                  -> ObjectMissing
* empty file, random bytes, text, an image,
  audio only, no video stream                   -> NotAVideo
* a recognisable video container that FFmpeg
  cannot open or whose first frame cannot be
  decoded (truncated, garbled)                  -> DecodeFailed

A single still image (PNG, JPEG, ... read by FFmpeg's image demuxers) is NotAVideo: there is no
time axis to localize events on.

Besides the header, the probe reads every packet once (demux only, no decoding; a few percent of
a decode) because two kinds of file lie about themselves and only the packets tell:

* a truncated upload whose header (MP4 ``moov``, Matroska ``Duration``) claims more than its data
  holds: the probe reports the decodable span as the duration, with a ``partly_decodable``
  warning, so the job localizes what is there instead of failing whole;
* recordings joined end to end whose clock restarts (``cat a.ts b.ts``): only the part before
  the restart has a place on one time axis; a ``timestamps_restart`` warning says what is left
  out.

The reported size is the display size: a rotation in the stream's display matrix (phones) swaps
width and height, and the frame sources turn the pictures the same way.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from fractions import Fraction

import av
import av.container
import av.video.stream

from vidloc.adapters.ranged_reader import RangedReader
from vidloc.errors import DecodeFailed, NotAVideo, ObjectMissing
from workers.frames.timing import RESTART_S, ends_early
from workers.types import SourceWarning, VideoInfo

logger = logging.getLogger(__name__)

# Leading bytes of containers that hold video: a file that starts like one but cannot be opened
# is a broken video (DecodeFailed), anything else is not a video at all (NotAVideo).
_VIDEO_MAGIC: tuple[tuple[int, bytes], ...] = (
    (4, b"ftyp"),  # MP4 / MOV / 3GP
    (4, b"moov"),
    (4, b"mdat"),
    (4, b"wide"),
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska / WebM (EBML)
    (8, b"AVI "),  # RIFF ... AVI
    (0, b"\x00\x00\x01\xba"),  # MPEG program stream
    (0, b"\x00\x00\x01\xb3"),  # MPEG-1/2 elementary video
    (0, b"FLV"),
    (0, b"\x30\x26\xb2\x75"),  # ASF / WMV
    (0, b"OggS"),
)
_TS_PACKET = 188
# FFmpeg's read size over a ranged reader; the reader's blocks make the requests, not this.
_RANGED_BUFFER = 64 * 1024


def looks_like_video_container(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) starts like a known video container."""
    if any(head[off : off + len(magic)] == magic for off, magic in _VIDEO_MAGIC):
        return True
    # MPEG-TS: sync byte every 188 bytes.
    return len(head) > 2 * _TS_PACKET and all(
        head[i] == 0x47 for i in range(0, 3 * _TS_PACKET, _TS_PACKET) if i < len(head)
    )


def is_still_image_format(format_name: str) -> bool:
    """FFmpeg demuxers that read single pictures: ``image2`` and the ``*_pipe`` family."""
    return any(name == "image2" or name.endswith("_pipe") for name in format_name.split(","))


def open_input(path: str) -> av.container.InputContainer:
    """``av.open`` for reading, with errors translated as the module docstring says."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError as exc:
        raise ObjectMissing(f"no such file: {path}") from exc
    if size == 0:
        raise NotAVideo("the file is empty")
    try:
        return av.open(path, mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        with open(path, "rb") as fh:
            head = fh.read(4 * _TS_PACKET)
        if looks_like_video_container(head):
            raise DecodeFailed(f"video container cannot be opened: {exc}") from exc
        raise NotAVideo(f"not a video file: {exc}") from exc


def open_ranged(reader: RangedReader) -> av.container.InputContainer:
    """``av.open`` over a file read by ranges (a span's video in the object store).

    The worker probed the file before it handed the spans out, so a container that does not
    open now is a broken one, not something else. Store errors raised by the reader (the object
    replaced, the store unreachable) come out as themselves."""
    try:
        return av.open(reader, mode="r", metadata_errors="ignore", buffer_size=_RANGED_BUFFER)
    except av.FFmpegError as exc:
        raise DecodeFailed(f"video container cannot be opened: {exc}") from exc


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The first video stream, or NotAVideo for images and audio-only files."""
    if is_still_image_format(container.format.name):
        raise NotAVideo(f"a still image ({container.format.name}), not a video")
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        raise NotAVideo(f"no video stream (streams: {', '.join(kinds) or 'none'})")
    return container.streams.video[0]


def stream_origin_s(stream: av.video.stream.VideoStream) -> float:
    """Presentation time of the stream's start, subtracted from every frame time.

    Players (and decord's ``get_frame_timestamp``) show time from the stream start, so an
    MPEG-TS whose clock starts at 1.4 s still has its first frame at 0.0.
    """
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def probe_video(path: str) -> VideoInfo:
    """Read the header, decode the first frame, scan the packets; see the module docstring."""
    with open_input(path) as container:
        header = read_header(container, video_stream(container))
    # A fresh pass from the first byte: seeking back is unreliable in unindexed containers.
    with open_input(path) as container:
        scan = scan_packets(container, video_stream(container))
    duration, warnings = decodable_duration(header.stated_s, scan, header.fps, header.frame_count)
    if duration <= 0:
        raise DecodeFailed("cannot tell the video's duration")
    logger.debug("probed %s: %s %.3f s", path, header, duration)
    return header.info(duration, warnings)


@dataclass(frozen=True)
class Header:
    """What a container's header and its first frame state, before any packet scan."""

    width: int
    height: int
    fps: float
    stated_s: float | None
    frame_count: int | None
    codec: str
    container: str
    rotation: int

    def info(self, duration_s: float, warnings: tuple[SourceWarning, ...] = ()) -> VideoInfo:
        return VideoInfo(
            duration_s=duration_s,
            fps=self.fps,
            width=self.width,
            height=self.height,
            codec=self.codec,
            frame_count=self.frame_count,
            container=self.container,
            rotation=self.rotation,
            warnings=warnings,
        )


def read_header(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> Header:
    """The stream's stated facts, and its first frame decoded (a garbled or unsupported stream
    fails here, cheaply: DecodeFailed)."""
    ctx = stream.codec_context
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    first = _first_frame(container, stream)
    if not width or not height:
        width, height = first.width, first.height
    rotation = display_rotation(first)
    if rotation in (90, 270):
        width, height = height, width
    return Header(
        width=width,
        height=height,
        fps=float(rate) if rate else 0.0,
        stated_s=stated_duration_s(container, stream),
        frame_count=int(stream.frames) or None,
        codec=ctx.codec.canonical_name,  # "av1", not the decoder "libdav1d"
        container=container.format.name,
        rotation=rotation,
    )


def display_rotation(frame: av.VideoFrame) -> int:
    """The turn a player gives ``frame`` (0/90/180/270, counter-clockwise; np.rot90's ``k``*90)."""
    degrees = float(getattr(frame, "rotation", 0) or 0)
    return (round(degrees / 90) % 4) * 90


@dataclass(frozen=True)
class PacketScan:
    """What one demux pass over the video stream found (times from the stream start)."""

    end_s: float  # end of the last packet before any restart
    restart_at_s: float | None = None  # the clock time it jumped back from
    packets_after_restart: int = 0


def scan_packets(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> PacketScan:
    """Demux every packet of ``stream`` (no decoding): where the data ends, clock restarts."""
    origin = stream_origin_s(stream)
    end = 0.0
    last_dts: float | None = None
    restart: float | None = None
    after = 0
    try:
        for packet in container.demux(stream):
            if packet.time_base is None or packet.size == 0:
                continue
            if restart is not None:
                after += 1
                continue
            dts = packet.dts if packet.dts is not None else packet.pts
            if dts is not None:
                t = float(dts * packet.time_base)
                if last_dts is not None and t < last_dts - RESTART_S:
                    restart, after = last_dts - origin, 1
                    continue
                last_dts = t
            if packet.pts is not None:
                tail = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                end = max(end, tail - origin)
    except av.FFmpegError as exc:
        # Damage after some good packets: what came before is still the decodable span.
        logger.debug("packet scan stopped at %.2f s: %s", end, exc)
    return PacketScan(end, restart, after)


def has_open_gop(path: str, keyframes: int = 8) -> bool:
    """Whether pictures decoded after a keyframe are shown before it, within the first
    ``keyframes`` keyframes: the leading pictures of an open GOP (x264 ``open-gop``, x265's
    default, MPEG-4 Part 2 with B-frames), which refer to the GOP before the keyframe.

    decord seeks to such keyframes and serves pictures 2-4 frames ahead (MP4/MOV) or a second
    behind (Matroska) under the right times (docs/decoders.md). Demux only, no decoding.
    """
    seen = 0
    key_pts: int | None = None
    with open_input(path) as container:
        stream = video_stream(container)
        try:
            for packet in container.demux(stream):
                if packet.pts is None or packet.size == 0:
                    continue
                if packet.is_keyframe:
                    seen += 1
                    if seen > keyframes:
                        return False
                    key_pts = packet.pts
                elif key_pts is not None and packet.pts < key_pts:
                    return True
        except av.FFmpegError as exc:
            logger.debug("GOP scan stopped: %s", exc)
    return False


def decodable_duration(
    stated: float | None, scan: PacketScan, fps: float, frame_count: int | None
) -> tuple[float, tuple[SourceWarning, ...]]:
    """The span to plan on, and what the job should say about the rest."""
    warnings: list[SourceWarning] = []
    duration = stated if stated and stated > 0 else scan.end_s
    if duration <= 0 and fps > 0 and frame_count:
        duration = frame_count / fps
    if scan.restart_at_s is not None:
        duration = min(duration, scan.end_s) if scan.end_s > 0 else duration
        warnings.append(
            SourceWarning(
                "timestamps_restart",
                f"the video's clock jumps back after {scan.restart_at_s:.2f} s (recordings "
                f"joined end to end?); only 0-{duration:.2f} s is on the timeline, "
                f"{scan.packets_after_restart} later packets were not decoded",
            )
        )
    elif stated and scan.end_s > 0 and ends_early(scan.end_s, stated, stated, fps):
        warnings.append(
            SourceWarning(
                "partly_decodable",
                f"the file holds data for 0-{scan.end_s:.2f} s of the {stated:.2f} s its "
                "header claims (truncated upload?); the timeline covers the decodable part",
            )
        )
        duration = scan.end_s
    return duration, tuple(warnings)


def stated_duration_s(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> float | None:
    if stream.duration and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return float(Fraction(container.duration, av.time_base))
    return None


def _first_frame(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> av.VideoFrame:
    try:
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError as exc:
        raise DecodeFailed(f"first frame cannot be decoded: {exc}") from exc
    raise DecodeFailed("the video stream holds no decodable frame")
