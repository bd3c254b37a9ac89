"""Probe an object in the store by ranges: the header and the end, not every packet.

The member that receives a long video only plans it (duration, rate, size, codec) and hands its
spans to the group. Downloading the object and scanning every packet for that took about 30 s on
a 2-hour 1080p file, before the first span could start. In an indexed container (MP4/MOV,
Matroska/WebM) the header states what the plan needs; the full probe's packet scan
(:mod:`workers.frames.probe`) only checks two things the header may lie about, and here they
are checked without reading the middle of the file:

* truncation: the demuxer seeks to the keyframe a little before the stated end and reads the
  packets from there to the end of the data; when they stop well before the stated duration,
  the file is not what its header says;
* a clock that restarts (recordings joined end to end): MP4 cannot store one (its sample times
  are sums of unsigned durations); in Matroska a restart inside the last seconds is seen, an
  earlier one is not. (FFmpeg straightens the clock when it remuxes such a join: ``cat a.ts
  a.ts`` copied into Matroska plays 0-6 s with no restart; a file from another muxer with a
  restart mid-file is planned on its stated duration, and its span decoders stop at the
  restart.)

Whenever the answer could differ from the full probe's (another container, no stated duration,
an end that comes early, a restart, a header that does not open), the result is ``None`` with
the reason, and the caller downloads and probes the file as before: the full probe stays the
one authority for those files (MPEG-TS, AVI, FLV, program streams, truncated uploads), and the
errors it raises (NotAVideo against DecodeFailed) are its own. Runs in the decoder child.
"""

from __future__ import annotations

import logging

import av
import av.container

from vidloc.adapters.ranged_reader import RangedReader, RemoteObject
from vidloc.errors import DecodeFailed, NotAVideo
from workers.frames.probe import (
    decodable_duration,
    open_ranged,
    read_header,
    scan_packets,
    stream_origin_s,
    video_stream,
)
from workers.frames.timing import ends_early
from workers.types import RangedProbe, VideoInfo

logger = logging.getLogger(__name__)

# FFmpeg demuxers whose files index their packets: a seek near the end lands there.
INDEXED = frozenset({"mov", "mp4", "matroska", "webm"})
# How far before the stated end the check of the data's end starts (then back to a keyframe).
TAIL_S = 5.0


def probe_by_ranges(remote: RemoteObject) -> RangedProbe:
    """The probe's answer for ``remote`` from its header and end, or None and why not."""
    reader = RangedReader(remote)
    try:
        with reader, open_ranged(reader) as container:
            return RangedProbe(*_probe(container), reader.stats)
    except (DecodeFailed, NotAVideo, av.FFmpegError) as exc:
        return RangedProbe(None, f"not probed by ranges: {exc}", reader.stats)


def _probe(container: av.container.InputContainer) -> tuple[VideoInfo | None, str]:
    format_name = container.format.name
    if not INDEXED & set(format_name.split(",")):
        return None, f"{format_name} has no index: every packet must be scanned"
    stream = video_stream(container)
    header = read_header(container, stream)
    stated = header.stated_s
    if not stated or stated <= 0:
        return None, "the header states no duration"
    origin = stream_origin_s(stream)
    tail_s = max(0.0, stated - TAIL_S)
    container.seek(
        int((tail_s + origin) / float(stream.time_base or 1)),
        stream=stream,
        backward=True,
        any_frame=False,
    )
    tail = scan_packets(container, stream)
    if tail.restart_at_s is not None:
        return None, f"the clock restarts near {tail.restart_at_s:.2f} s"
    if tail.end_s <= 0 or ends_early(tail.end_s, stated, stated, header.fps):
        return None, f"the data ends at {tail.end_s:.2f} s of a stated {stated:.2f} s"
    duration, warnings = decodable_duration(stated, tail, header.fps, header.frame_count)
    return header.info(duration, warnings), f"header and the last {stated - tail_s:.1f} s"
