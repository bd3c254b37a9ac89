"""HLS written to the bucket by an encoder, as a live stream (pure: text and numbers in and out).

An encoder that writes HLS to S3 puts its media playlist and its ``.ts`` segments under one
prefix, ``hls/<stream-id>/`` (or ``tenants/<t>/hls/<stream-id>/``), and rewrites the playlist
after each segment. The bridge bridges the *playlist*: each new version names the segments
it has not bridged yet, and each becomes a stream-segment ingest event like the ones
``vidloc stream`` publishes (docs/streams.md). Segments themselves are not bridged as videos.

The stream clock: ``seq`` is the playlist's media sequence number; consecutive segments follow
each other by their ``#EXTINF`` durations. Where the playlist says the clock broke
(``#EXT-X-DISCONTINUITY``, or sequence numbers that slid out of the window before the bridge
saw them) the clock re-anchors on ``#EXT-X-PROGRAM-DATE-TIME`` when the encoder writes it, else
on the wall clock (the playlist was written when its last segment ended); time lost there is a
gap. ``#EXT-X-ENDLIST`` ends the stream.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from contracts.common import SAFE_ID_PATTERN
from producers.segments import GAP_SLACK_S, stream_root
from vidloc import names

HLS_PREFIX = "hls"
PLAYLIST_EXTENSIONS = (".m3u8",)
STATE_VERSION = 1
_SAFE_ID = re.compile(SAFE_ID_PATTERN)


class PlaylistError(ValueError):
    """Not a media playlist the bridge can follow (a master playlist, not HLS at all)."""


@dataclass(frozen=True)
class PlaylistSegment:
    media_seq: int
    uri: str
    duration_s: float
    discontinuity: bool = False
    program_date_time: datetime | None = None


@dataclass(frozen=True)
class MediaPlaylist:
    media_sequence: int
    segments: tuple[PlaylistSegment, ...]
    ended: bool


def _attr(line: str) -> str:
    return line.split(":", 1)[1].strip() if ":" in line else ""


def _program_date_time(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None  # a naive time has no place on a clock


def parse_playlist(text: str) -> MediaPlaylist:
    """The segments of a media playlist (RFC 8216), in order; tags the bridge does not need
    are ignored. Raises :class:`PlaylistError` for a master playlist or a non-playlist."""
    lines = [line.strip() for line in text.splitlines()]
    if not lines or lines[0].lstrip("\ufeff") != "#EXTM3U":
        raise PlaylistError("no #EXTM3U header")
    media_sequence = 0
    ended = False
    segments: list[PlaylistSegment] = []
    duration: float | None = None
    discontinuity = False
    pdt: datetime | None = None
    for line in lines[1:]:
        if not line:
            continue
        if line.startswith("#EXT-X-STREAM-INF"):
            raise PlaylistError("a master playlist (variants), not a media playlist")
        if line.startswith("#EXT-X-MEDIA-SEQUENCE"):
            try:
                media_sequence = int(_attr(line))
            except ValueError as exc:
                raise PlaylistError(f"bad {line!r}") from exc
            if media_sequence < 0:
                raise PlaylistError(f"negative media sequence in {line!r}")
        elif line.startswith("#EXTINF"):
            try:
                duration = float(_attr(line).split(",", 1)[0])
            except ValueError as exc:
                raise PlaylistError(f"bad {line!r}") from exc
            if duration < 0:
                raise PlaylistError(f"negative duration in {line!r}")
        elif line.startswith("#EXT-X-DISCONTINUITY") and not line.startswith(
            "#EXT-X-DISCONTINUITY-SEQUENCE"
        ):
            discontinuity = True
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME"):
            pdt = _program_date_time(_attr(line))
        elif line.startswith("#EXT-X-ENDLIST"):
            ended = True
        elif not line.startswith("#"):
            if duration is None:
                raise PlaylistError(f"segment {line!r} has no #EXTINF")
            seq = media_sequence + len(segments)
            segments.append(PlaylistSegment(seq, line, duration, discontinuity, pdt))
            duration, discontinuity, pdt = None, False, None
    return MediaPlaylist(media_sequence, tuple(segments), ended)


@dataclass(frozen=True)
class HlsPrefix:
    """Where an HLS playlist sits: its stream, its tenant, the folder its URIs are relative to."""

    stream_id: str
    tenant: str | None
    folder: str  # the playlist's, ends with "/"

    @property
    def root(self) -> str:
        return f"{names.tenant_root(self.tenant)}{HLS_PREFIX}/{self.stream_id}/"


def hls_prefix_of(key: str) -> HlsPrefix | None:
    """The stream an object under ``[tenants/<t>/]hls/<stream-id>/`` belongs to, else None.

    Only the first folder below ``hls/`` names the stream (deeper folders are its own, e.g.
    segments in a sub-folder), so a stream id is one safe key segment.
    """
    tenant = None
    rest = key
    head = f"{names.TENANT_PREFIX}/"
    if key.startswith(head):
        tenant, _, rest = key[len(head) :].partition("/")
    top, _, rest = rest.partition("/")
    stream_id, sep, name = rest.partition("/")
    if top != HLS_PREFIX or not sep or not name or not _SAFE_ID.fullmatch(stream_id):
        return None
    if tenant is not None and not _SAFE_ID.fullmatch(tenant):
        return None
    return HlsPrefix(stream_id, tenant, posixpath.dirname(key) + "/")


def is_playlist_key(key: str) -> bool:
    return key.lower().endswith(PLAYLIST_EXTENSIONS)


def segment_object_key(prefix: HlsPrefix, uri: str) -> str | None:
    """The object key a segment URI names, relative to the playlist's folder; None for an
    absolute URL or a path that climbs out of the stream's prefix."""
    path = uri.split("?", 1)[0].split("#", 1)[0]
    if not path or "://" in path or path.startswith("/"):
        return None
    key = posixpath.normpath(posixpath.join(prefix.folder, path))
    return key if key.startswith(prefix.root) else None


def state_key(prefix: HlsPrefix) -> str:
    """Beside the producer's own state (``streams/<id>/``), not in the encoder's folder."""
    return f"{stream_root(prefix.stream_id, prefix.tenant)}hls-bridge.json"


@dataclass(frozen=True)
class BridgeState:
    """What the bridge remembers per HLS stream (stored in the bucket, written after publishing).

    ``next_seq``: the first media sequence number not bridged yet; ``end_s``: where the stream
    clock reached; ``origin_wall``: the wall time (epoch s) of stream second 0; ``last_source``:
    the last bridged segment (the end-of-stream marker names it).
    """

    stream_id: str
    next_seq: int = 0
    end_s: float = 0.0
    origin_wall: float | None = None
    ended: bool = False
    last_source: dict[str, Any] | None = field(default=None, compare=False)

    def encode(self) -> bytes:
        return json.dumps(
            {"version": STATE_VERSION, **self.__dict__}, sort_keys=True, default=str
        ).encode()

    @classmethod
    def decode(cls, data: bytes, stream_id: str) -> BridgeState:
        doc = json.loads(data)
        if doc.get("version") != STATE_VERSION or doc.get("stream_id") != stream_id:
            raise ValueError(f"not a version {STATE_VERSION} HLS state of stream {stream_id!r}")
        origin = doc.get("origin_wall")
        return cls(
            stream_id=stream_id,
            next_seq=int(doc["next_seq"]),
            end_s=float(doc["end_s"]),
            origin_wall=None if origin is None else float(origin),
            ended=bool(doc.get("ended", False)),
            last_source=doc.get("last_source"),
        )


@dataclass(frozen=True)
class PlannedSegment:
    seq: int
    uri: str
    start_s: float
    duration_s: float
    gap_before_s: float
    wall_clock: float  # epoch seconds of the segment's start


@dataclass(frozen=True)
class Plan:
    segments: tuple[PlannedSegment, ...]
    end_of_stream: bool  # announce the end after ``segments``
    state: BridgeState  # the state once all of it is published (without last_source)


def plan_segments(playlist: MediaPlaylist, state: BridgeState, *, now: float) -> Plan:
    """The segments of ``playlist`` not bridged yet, placed on the stream clock.

    ``now`` (epoch s) stands for when the playlist was written: as its last segment ended.
    """
    window = playlist.segments
    # When each segment started by the wall clock, were the playlist written just now.
    ends_by_wall: list[float] = []
    remaining = sum(s.duration_s for s in window)
    for seg in window:
        ends_by_wall.append(now - remaining)
        remaining -= seg.duration_s
    out: list[PlannedSegment] = []
    end_s, origin, next_seq = state.end_s, state.origin_wall, state.next_seq
    for seg, wall_start in zip(window, ends_by_wall, strict=True):
        if seg.media_seq < next_seq:
            continue
        anchor = seg.program_date_time.timestamp() if seg.program_date_time else wall_start
        if origin is None:
            origin = anchor - end_s
            start = end_s
        elif seg.discontinuity or seg.media_seq > next_seq:
            # The clock broke here (or segments slid out unseen): re-anchor, never backwards.
            start = max(end_s, anchor - origin)
        else:
            start = end_s
        gap = start - end_s
        if gap <= GAP_SLACK_S:
            start, gap = end_s, 0.0
        out.append(
            PlannedSegment(
                seq=seg.media_seq,
                uri=seg.uri,
                start_s=round(start, 6),
                duration_s=round(seg.duration_s, 6),
                gap_before_s=round(gap, 6),
                wall_clock=origin + start,
            )
        )
        end_s = start + seg.duration_s
        next_seq = seg.media_seq + 1
    # An ended stream's playlist sent again announces nothing; new segments reopen it.
    announce_end = playlist.ended and (bool(out) or not state.ended)
    new_state = replace(
        state,
        next_seq=next_seq + (1 if announce_end else 0),  # the end marker takes a number too
        end_s=round(end_s, 6),
        origin_wall=origin,
        ended=playlist.ended if out or not state.ended else state.ended,
    )
    return Plan(tuple(out), announce_end, new_state)
