"""The frame cache's layout and documents (pure): what a later analysis of a video reads instead
of decoding it again.

A job keeps the frames it sends to the model *as sent* (the JPEG bytes of the request, their
real presentation times, the sampling that chose them) under one prefix per tenant, video and
object version (``vidloc.names.frame_cache_prefix``), in few objects::

    <prefix>part-00000.bin   the frames first needed by chunk 0 (a frame shared by two
    <prefix>part-00001.bin   overlapping chunks is kept once, in the first one's part)
    ...
    <prefix>manifest.json    probe facts, the plan (chunks and their times), the fingerprint,
                             when it was made, what it weighs; written last, once every part is

A part holds ``MAGIC``, a 4-byte big-endian header length, a JSON header (schema, fingerprint,
chunk, ``[planned time, real time, length]`` per frame) and the JPEGs one after another. The
fingerprint names the sampling (mode, rate, chunking, frame size, JPEG quality, the chunks'
times): a part or manifest of another sampling, a manifest older than the retention, or any
object that does not read back whole is a *miss*, never an error: the job decodes instead.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workers.types import Chunk, SourceWarning, VideoInfo

PART_SCHEMA = "vidloc.frames.v1"
MANIFEST_SCHEMA = "vidloc.frame_cache.v1"
MANIFEST_NAME = "manifest.json"
MAGIC = b"VLFRAMES1\n"
_HEADER_LEN = struct.Struct(">I")
_JPEG_START = b"\xff\xd8"
# What a JPEG of a resized frame weighs, per pixel, at the default quality (85): an assumed
# figure for camera footage (the flat synthetic test clips measured 0.07); an estimate only,
# the manifest records what a job really kept.
JPEG_BYTES_PER_PIXEL = 0.15
DAY_S = 86400.0

# Why a lookup missed (also the ``reason`` label of vidloc_frame_cache_lookups_total).
NEVER_CACHED = "never_cached"
EXPIRED = "expired"
OTHER_SAMPLING = "other_sampling"
UNREADABLE = "unreadable"
INCOMPLETE = "incomplete"
PIXELS_NEEDED = "pixels_needed"
CACHE_OFF = "off"
_MISS_TEXT = {
    CACHE_OFF: "the frame cache is off (VIDLOC_FRAME_CACHE_TTL_DAYS=0)",
    NEVER_CACHED: "no frames are kept for this object version",
    EXPIRED: "the kept frames are older than VIDLOC_FRAME_CACHE_TTL_DAYS",
    OTHER_SAMPLING: "the kept frames were sampled with another plan",
    UNREADABLE: "the kept frames could not be read back",
    INCOMPLETE: "some of the kept frames are missing",
    PIXELS_NEEDED: "the localizer reads decoded pixels, not the model's JPEGs",
}


class CacheUnreadable(ValueError):
    """A cache object that does not read back whole (becomes a miss, never a failed job)."""


@dataclass(frozen=True)
class Sampling:
    """What chose the frames and made them as sent: two samplings with one fingerprint send
    the model byte-identical frames."""

    mode: str
    sample_fps: float
    chunk_s: float
    overlap_s: float
    frame_size: tuple[int, int]
    jpeg_quality: int
    token_budget_per_min: float | None
    chunks: tuple[Chunk, ...]

    def fingerprint(self) -> str:
        doc = {
            "schema": PART_SCHEMA,
            "mode": self.mode,
            "sample_fps": self.sample_fps,
            "chunk_s": self.chunk_s,
            "overlap_s": self.overlap_s,
            "frame_size": list(self.frame_size),
            "jpeg_quality": self.jpeg_quality,
            "token_budget_per_min": self.token_budget_per_min,
            "chunks": [[c.index, c.start_s, c.end_s, list(c.times)] for c in self.chunks],
        }
        blob = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class CachedFrame:
    planned_s: float  # the plan's time, as chunks name it
    t_s: float  # the frame's real presentation time, as the model was told
    jpeg: bytes


@dataclass(frozen=True)
class Manifest:
    fingerprint: str
    created_at: float  # epoch seconds
    info: VideoInfo
    sampling: Sampling
    parts: tuple[int, ...]  # chunk indexes that own a part
    frames: int
    bytes: int
    object_size: int
    source: Mapping[str, str] = field(default_factory=dict)  # bucket, key, etag, version_tag
    cuts: tuple[float, ...] = ()

    def bytes_per_minute(self) -> float:
        return bytes_per_minute(self.bytes, self.info.duration_s)


@dataclass(frozen=True)
class Miss:
    reason: str  # one of the constants above
    detail: str = ""

    @property
    def message(self) -> str:
        said = _MISS_TEXT.get(self.reason, self.reason)
        return f"frames decoded again: {said}" + (f" ({self.detail})" if self.detail else "")


def manifest_key(prefix: str) -> str:
    return prefix + MANIFEST_NAME


def part_key(prefix: str, chunk_index: int) -> str:
    return f"{prefix}part-{chunk_index:05d}.bin"


def owners(chunks: Sequence[Chunk]) -> dict[float, int]:
    """Each planned time's owner: the first chunk showing it (its part keeps the frame)."""
    out: dict[float, int] = {}
    for chunk in sorted(chunks, key=lambda c: c.index):
        for t in chunk.times:
            out.setdefault(t, chunk.index)
    return out


def owned_frames(
    chunk: Chunk, frames: Sequence[Any], owner: Mapping[float, int]
) -> list[CachedFrame]:
    """The frames of ``chunk`` (a ``FrameSample`` per time of ``chunk.times``, in order; fewer
    when the decoder stopped early) that its part keeps; only frames carrying their JPEG."""
    return [
        CachedFrame(planned, frame.t_s, frame.jpeg)
        for planned, frame in zip(chunk.times, frames, strict=False)
        if owner.get(planned) == chunk.index and frame.jpeg is not None
    ]


def parts_for(chunks: Sequence[Chunk], owner: Mapping[float, int]) -> tuple[int, ...]:
    """The parts holding every frame of ``chunks``."""
    return tuple(sorted({owner[t] for c in chunks for t in c.times if t in owner}))


def expired(created_at: float, now: float, ttl_days: float) -> bool:
    return ttl_days <= 0 or now - created_at > ttl_days * DAY_S


def judge(manifest: Manifest, fingerprint: str, now: float, ttl_days: float) -> Miss | None:
    """None when ``manifest`` serves a job asking for ``fingerprint`` now; else why not."""
    if expired(manifest.created_at, now, ttl_days):
        return Miss(EXPIRED, f"made {(now - manifest.created_at) / DAY_S:.1f} days ago")
    if manifest.fingerprint != fingerprint:
        return Miss(OTHER_SAMPLING)
    return None


def bytes_per_minute(size: int, duration_s: float) -> float:
    return size / (duration_s / 60.0) if duration_s > 0 else 0.0


def estimated_bytes(frames: int, frame_size: tuple[int, int]) -> int:
    """What ``frames`` JPEGs of ``frame_size`` weigh, roughly (see JPEG_BYTES_PER_PIXEL)."""
    return math.ceil(frames * frame_size[0] * frame_size[1] * JPEG_BYTES_PER_PIXEL)


# -- parts --------------------------------------------------------------------------------------


def encode_part(chunk_index: int, fingerprint: str, frames: Sequence[CachedFrame]) -> bytes:
    header = {
        "schema": PART_SCHEMA,
        "fingerprint": fingerprint,
        "chunk": chunk_index,
        "frames": [[f.planned_s, f.t_s, len(f.jpeg)] for f in frames],
    }
    blob = json.dumps(header, separators=(",", ":")).encode()
    return b"".join([MAGIC, _HEADER_LEN.pack(len(blob)), blob, *(f.jpeg for f in frames)])


def decode_part(data: bytes, fingerprint: str, chunk_index: int) -> list[CachedFrame]:
    """The part's frames; :class:`CacheUnreadable` unless it is whole and of ``fingerprint``."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _HEADER_LEN.size:
        raise CacheUnreadable(f"part {chunk_index}: not a frame-cache part")
    at = len(MAGIC)
    (length,) = _HEADER_LEN.unpack_from(data, at)
    at += _HEADER_LEN.size
    try:
        header = json.loads(data[at : at + length])
        if header["schema"] != PART_SCHEMA or int(header["chunk"]) != chunk_index:
            raise CacheUnreadable(f"part {chunk_index}: another part's header")
        if header["fingerprint"] != fingerprint:
            raise CacheUnreadable(f"part {chunk_index}: frames of another sampling")
        rows = [(float(p), float(t), int(n)) for p, t, n in header["frames"]]
    except (ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, CacheUnreadable):
            raise
        raise CacheUnreadable(f"part {chunk_index}: unreadable header") from exc
    at += length
    out = []
    for planned, t_s, n in rows:
        jpeg = data[at : at + n]
        if n <= 0 or len(jpeg) != n or not jpeg.startswith(_JPEG_START):
            raise CacheUnreadable(f"part {chunk_index}: cut short or not JPEG")
        out.append(CachedFrame(planned, t_s, jpeg))
        at += n
    if at != len(data):
        raise CacheUnreadable(f"part {chunk_index}: {len(data) - at} bytes too many")
    return out


# -- the manifest -------------------------------------------------------------------------------


def encode_manifest(m: Manifest) -> bytes:
    s, info = m.sampling, m.info
    doc = {
        "schema": MANIFEST_SCHEMA,
        "fingerprint": m.fingerprint,
        "created_at": m.created_at,
        "source": dict(m.source),
        "object_size": m.object_size,
        "video": {
            "duration_s": info.duration_s,
            "fps": info.fps,
            "width": info.width,
            "height": info.height,
            "codec": info.codec,
            "frame_count": info.frame_count,
            "container": info.container,
            "rotation": info.rotation,
            "warnings": [[w.code, w.message] for w in info.warnings],
        },
        "sampling": {
            "mode": s.mode,
            "sample_fps": s.sample_fps,
            "chunk_s": s.chunk_s,
            "overlap_s": s.overlap_s,
            "frame_size": list(s.frame_size),
            "jpeg_quality": s.jpeg_quality,
            "token_budget_per_min": s.token_budget_per_min,
            "chunks": [[c.index, c.start_s, c.end_s, list(c.times)] for c in s.chunks],
        },
        "cuts": list(m.cuts),
        "parts": list(m.parts),
        "frames": m.frames,
        "bytes": m.bytes,
        "bytes_per_minute": round(m.bytes_per_minute()),
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def decode_manifest(data: bytes) -> Manifest:
    """The manifest; :class:`CacheUnreadable` for anything that is not one whole."""
    try:
        doc = json.loads(data)
        if doc.get("schema") != MANIFEST_SCHEMA:
            raise CacheUnreadable("not a frame-cache manifest")
        v, s = doc["video"], doc["sampling"]
        info = VideoInfo(
            duration_s=float(v["duration_s"]),
            fps=float(v["fps"]),
            width=int(v["width"]),
            height=int(v["height"]),
            codec=str(v["codec"]),
            frame_count=None if v.get("frame_count") is None else int(v["frame_count"]),
            container=str(v.get("container", "")),
            rotation=int(v.get("rotation", 0)),
            warnings=tuple(SourceWarning(str(c), str(m)) for c, m in v.get("warnings", [])),
        )
        width, height = s["frame_size"]
        budget = s.get("token_budget_per_min")
        sampling = Sampling(
            mode=str(s["mode"]),
            sample_fps=float(s["sample_fps"]),
            chunk_s=float(s["chunk_s"]),
            overlap_s=float(s["overlap_s"]),
            frame_size=(int(width), int(height)),
            jpeg_quality=int(s["jpeg_quality"]),
            token_budget_per_min=None if budget is None else float(budget),
            chunks=tuple(
                Chunk(int(i), float(a), float(b), tuple(float(t) for t in times))
                for i, a, b, times in s["chunks"]
            ),
        )
        manifest = Manifest(
            fingerprint=str(doc["fingerprint"]),
            created_at=float(doc["created_at"]),
            info=info,
            sampling=sampling,
            parts=tuple(int(i) for i in doc["parts"]),
            frames=int(doc["frames"]),
            bytes=int(doc["bytes"]),
            object_size=int(doc.get("object_size", 0)),
            source={str(k): str(val) for k, val in (doc.get("source") or {}).items()},
            cuts=tuple(float(t) for t in doc.get("cuts", [])),
        )
    except CacheUnreadable:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise CacheUnreadable(f"unreadable manifest: {type(exc).__name__}") from exc
    if sampling.fingerprint() != manifest.fingerprint:
        # Edited or cut: the plan it carries is not the one its parts were made with.
        raise CacheUnreadable("the manifest's plan does not match its fingerprint")
    return manifest
