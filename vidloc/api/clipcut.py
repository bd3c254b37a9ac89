"""Cut an event's clip out of a video file with PyAV: stream copy when a keyframe sits within one
frame of the asked start, else re-encoded (H.264) from the first frame at the asked start.

Stream copy is fast and lossless, but a cut can only begin at a keyframe: begun anywhere else the
clip would open on a frame that cannot be decoded. Re-encoding decodes from the keyframe before
the start, drops what comes before it and encodes the rest, so the clip's first frame is the
frame at the asked time (within one frame). The clip carries the video only (no audio yet).

A live stream's clip is cut from its segments (``cut_segments``): stream copy when one segment
holds the whole window and a keyframe starts it, else decoded across the segments on the stream
clock and re-encoded as one clip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import av.error

from contracts import TimelineEvent
from contracts.stream import SegmentPlace
from vidloc.errors import InputError

ClipMode = Literal["copy", "reencode"]


@dataclass(frozen=True)
class ClipWindow:
    start_s: float
    end_s: float


@dataclass(frozen=True)
class ClipCut:
    mode: ClipMode
    first_frame_s: float  # the source time of the clip's first frame
    frames: int


@dataclass(frozen=True)
class SegmentFile:
    """A downloaded segment and where it starts on the stream clock."""

    path: Path
    start_s: float


def segments_for(index: Sequence[SegmentPlace], window: ClipWindow) -> list[SegmentPlace]:
    """The indexed segments that overlap ``window``, in stream order (an empty list when the
    window lies in a span no indexed segment covers)."""
    return sorted(
        (
            p
            for p in index
            if p.start_s < window.end_s and p.start_s + p.duration_s > window.start_s
        ),
        key=lambda p: p.start_s,
    )


def clip_window(event: TimelineEvent, pad_s: float, duration_s: float, max_s: float) -> ClipWindow:
    """The event padded by ``pad_s`` on both sides, within the video; at least a second long
    (an instant event still makes a clip). ValueError when longer than ``max_s``."""
    start = max(0.0, event.start_s - pad_s)
    end = min(duration_s, event.end_s + pad_s) if duration_s > 0 else event.end_s + pad_s
    end = max(end, min(start + 1.0, duration_s) if duration_s > 0 else start + 1.0)
    if end - start > max_s:
        raise ValueError(f"the clip would be {end - start:.1f} s; at most {max_s:g} s")
    return ClipWindow(round(start, 3), round(end, 3))


def choose_mode(keyframe_s: float | None, start_s: float, frame_s: float) -> ClipMode:
    """Copy when the keyframe at or before the start is within one frame of it."""
    if keyframe_s is not None and start_s - keyframe_s <= frame_s + 1e-6:
        return "copy"
    return "reencode"


def cut_clip(source: Path, dest: Path, window: ClipWindow) -> ClipCut:
    """Write ``window`` of ``source`` to ``dest`` (MP4); InputError when it cannot be read."""
    try:
        return _cut(source, dest, window)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise InputError(f"cannot cut a clip: {exc}", code="clip_failed") from exc


def cut_segments(parts: Sequence[SegmentFile], dest: Path, window: ClipWindow) -> ClipCut:
    """Write ``window`` (stream clock) of a stream's consecutive ``parts`` to ``dest`` (MP4);
    ``first_frame_s`` is on the stream clock. InputError when a segment cannot be read."""
    try:
        if len(parts) == 1 and (cut := _copy_segment(parts[0], dest, window)) is not None:
            return cut
        return _reencode_across(parts, dest, window)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise InputError(f"cannot cut a clip: {exc}", code="clip_failed") from exc


def _copy_segment(part: SegmentFile, dest: Path, window: ClipWindow) -> ClipCut | None:
    """Stream copy of ``window`` from one segment when a keyframe starts it, else None. A
    segment is short: its packets are read from the start (MPEG-TS seeks land past the target)."""
    # File time = stream time + shift: a segment keeps the source's timestamps.
    shift = _origin_s(part.path) - part.start_s
    keyframe: float | None = None
    with av.open(str(part.path)) as probe:
        vs = probe.streams.video[0]
        tb = vs.time_base
        assert tb is not None
        frame_s = 1.0 / float(vs.average_rate or vs.guessed_rate or Fraction(25))
        for packet in probe.demux(vs):
            if packet.pts is None:
                continue
            t = float(packet.pts * tb) - shift
            if t > window.start_s + 1e-6:
                break
            if packet.is_keyframe:
                keyframe = t
    if keyframe is None or choose_mode(keyframe, window.start_s, frame_s) != "copy":
        return None
    frames = _copy(part.path, dest, keyframe + shift, window.end_s + shift, seek=False)
    return ClipCut("copy", keyframe, frames)


def _origin_s(path: Path) -> float:
    """The time of a file's first video frame in its own timestamps."""
    with av.open(str(path)) as probe:
        if not probe.streams.video:
            raise ValueError(f"{path.name} has no video stream")
        vs = probe.streams.video[0]
        if vs.start_time is not None and vs.time_base is not None:
            return float(vs.start_time * vs.time_base)
        return 0.0


def _cut(source: Path, dest: Path, window: ClipWindow) -> ClipCut:
    with av.open(str(source)) as probe:
        if not probe.streams.video:
            raise ValueError("the source has no video stream")
        vs = probe.streams.video[0]
        rate = vs.average_rate or vs.guessed_rate or Fraction(25)
        frame_s = 1.0 / float(rate)
        keyframe = _keyframe_at_or_before(probe, vs, window.start_s)
    mode = choose_mode(keyframe, window.start_s, frame_s)
    if mode == "copy" and keyframe is not None:
        frames = _copy(source, dest, keyframe, window.end_s)
        return ClipCut("copy", keyframe, frames)
    first, frames = _reencode(source, dest, window, frame_s)
    return ClipCut("reencode", first, frames)


def _keyframe_at_or_before(
    container: av.container.InputContainer, vs: av.VideoStream, t: float
) -> float | None:
    tb = vs.time_base
    assert tb is not None
    container.seek(int(t / tb), stream=vs, backward=True, any_frame=False)
    for packet in container.demux(vs):
        if packet.pts is None:
            continue
        if packet.is_keyframe:
            at = float(packet.pts * tb)
            return at if at <= t + 1e-6 else None
    return None


def _copy(source: Path, dest: Path, keyframe_s: float, end_s: float, *, seek: bool = True) -> int:
    with av.open(str(source)) as inp, av.open(str(dest), "w", format="mp4") as out:
        vs = inp.streams.video[0]
        tb = vs.time_base
        assert tb is not None
        ovs = out.add_stream_from_template(vs)
        if seek:
            inp.seek(int(keyframe_s / tb), stream=vs, backward=True, any_frame=False)
        origin: int | None = None
        frames = 0
        for packet in inp.demux(vs):
            if packet.pts is None or packet.dts is None:
                continue
            if origin is None and float(packet.pts * tb) < keyframe_s - 1e-6:
                continue  # before the keyframe the clip starts at
            if origin is None:
                origin = packet.dts if packet.dts < packet.pts else packet.pts
            if float(packet.pts * tb) >= end_s:
                break
            packet.pts -= origin
            packet.dts -= origin
            packet.stream = ovs
            out.mux(packet)
            frames += 1
    return frames


def _reencode(source: Path, dest: Path, window: ClipWindow, frame_s: float) -> tuple[float, int]:
    with av.open(str(source)) as inp, av.open(str(dest), "w", format="mp4") as out:
        vs = inp.streams.video[0]
        tb = vs.time_base
        assert tb is not None
        ovs = _h264(out, vs, vs.average_rate or Fraction(round(1 / frame_s)))
        inp.seek(int(window.start_s / tb), stream=vs, backward=True, any_frame=False)
        first: float | None = None
        frames = 0
        for frame in inp.decode(vs):
            if frame.pts is None:
                continue
            t = float(frame.pts * tb)
            if t < window.start_s - frame_s / 2:
                continue  # decoded only to reach the start
            if t >= window.end_s:
                break
            if first is None:
                first = t
            out_frame = frame.reformat(format="yuv420p")
            out_frame.pts = round((t - first) * 90000)
            out_frame.time_base = Fraction(1, 90000)
            for packet in ovs.encode(out_frame):
                out.mux(packet)
            frames += 1
        for packet in ovs.encode(None):
            out.mux(packet)
    if first is None:
        raise ValueError(f"no frame between {window.start_s:g} s and {window.end_s:g} s")
    return first, frames


def _h264(out: av.container.OutputContainer, vs: av.VideoStream, rate: Fraction) -> av.VideoStream:
    ovs = out.add_stream("libx264", rate=rate)
    ovs.width = vs.codec_context.width
    ovs.height = vs.codec_context.height
    ovs.pix_fmt = "yuv420p"
    ovs.options = {"preset": "veryfast", "crf": "20"}
    ovs.time_base = Fraction(1, 90000)
    return ovs


def _reencode_across(parts: Sequence[SegmentFile], dest: Path, window: ClipWindow) -> ClipCut:
    """Decode each segment from its start (a segment begins at a keyframe), keep the frames in
    ``window`` on the stream clock, and encode them as one clip."""
    first: float | None = None
    last_pts = -1
    frames = 0
    with av.open(str(dest), "w", format="mp4") as out:
        ovs: av.VideoStream | None = None
        for part in parts:
            shift = _origin_s(part.path) - part.start_s
            with av.open(str(part.path)) as inp:
                vs = inp.streams.video[0]
                tb = vs.time_base
                assert tb is not None
                rate = vs.average_rate or vs.guessed_rate or Fraction(25)
                frame_s = 1.0 / float(rate)
                if ovs is None:
                    ovs = _h264(out, vs, rate)
                for frame in inp.decode(vs):
                    if frame.pts is None:
                        continue
                    t = float(frame.pts * tb) - shift
                    if t < window.start_s - frame_s / 2:
                        continue
                    if t >= window.end_s:
                        break
                    if first is None:
                        first = t
                    pts = round((t - first) * 90000)
                    if pts <= last_pts:
                        continue  # a frame the previous segment already gave (edge overlap)
                    last_pts = pts
                    out_frame = frame.reformat(width=ovs.width, height=ovs.height, format="yuv420p")
                    out_frame.pts = pts
                    out_frame.time_base = Fraction(1, 90000)
                    for packet in ovs.encode(out_frame):
                        out.mux(packet)
                    frames += 1
        if ovs is not None:
            for packet in ovs.encode(None):
                out.mux(packet)
    if first is None:
        raise ValueError(f"no frame between {window.start_s:g} s and {window.end_s:g} s")
    return ClipCut("reencode", first, frames)


def cache_name(event_id_name: str, window: ClipWindow, source_etag: str) -> str:
    """The clip's key beside the timeline: one per event, window and source version."""
    tag = source_etag[:12] or "noetag"
    ms = f"{math.floor(window.start_s * 1000)}-{math.floor(window.end_s * 1000)}"
    return f"clips/{event_id_name}-{ms}-{tag}.mp4"
