"""The frame cache in the timeline bucket: looked up, read and written (the I/O side of
:mod:`workers.pipeline.frame_cache`, which lays it out).

Writing never fails a job: a part or manifest that cannot be stored is logged and the next
analysis of the video decodes again. Reading never fails one either: a manifest that cannot be
read is a miss; a part that cannot be read in the middle of a job raises
:class:`~vidloc.errors.FrameCacheUnreadable`, which the runner answers by decoding.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from vidloc.errors import FrameCacheUnreadable, ObjectMissing, VidlocError
from workers.localizers.prompt import encode_jpeg
from workers.pipeline.frame_cache import (
    INCOMPLETE,
    NEVER_CACHED,
    UNREADABLE,
    CachedFrame,
    CacheUnreadable,
    Manifest,
    Miss,
    decode_manifest,
    decode_part,
    encode_manifest,
    encode_part,
    manifest_key,
    owned_frames,
    owners,
    part_key,
    parts_for,
)
from workers.types import Chunk, FrameSample

log = logging.getLogger(__name__)


class FrameCacheStore(Protocol):
    """The part of the object store the frame cache uses."""

    def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str = "application/json"
    ) -> Any: ...

    def get_bytes(self, bucket: str, key: str) -> bytes: ...

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[Any]: ...  # .key, .size


def as_sent(frames: Iterable[FrameSample], jpeg_quality: int) -> Iterator[FrameSample]:
    """``frames``, each carrying its JPEG: encoded once, here, and sent and kept as is."""
    for frame in frames:
        yield replace(frame, jpeg=encode_jpeg(frame.pixels(), jpeg_quality=jpeg_quality))


def jpeg_only(frames: Iterable[FrameSample], jpeg_quality: int) -> Iterator[FrameSample]:
    """``frames`` as the model is sent them: each its JPEG (encoded here unless it carries one)
    and no pixels. For a localizer that reads nothing else: a chunk waiting for the model then
    holds its frames' JPEGs (~25 KB each at 448x256) instead of their pictures (344 KB each),
    and a worker holds up to ``2 x VIDLOC_VLM_CONCURRENCY`` such chunks (bench/README.md)."""
    for frame in frames:
        jpeg = frame.jpeg
        if jpeg is None:
            jpeg = encode_jpeg(frame.pixels(), jpeg_quality=jpeg_quality)
        yield replace(frame, image=None, jpeg=jpeg)


@dataclass
class PartWriter:
    """Keeps each chunk's own frames as it is assembled (before the model sees it)."""

    store: FrameCacheStore
    bucket: str
    prefix: str
    fingerprint: str
    chunks: Sequence[Chunk]
    failed: bool = False
    written: int = 0  # bytes
    _owner: dict[float, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._owner = owners(self.chunks)

    def tap(
        self, assembled: Iterable[tuple[Chunk, list[FrameSample]]]
    ) -> Iterator[tuple[Chunk, list[FrameSample]]]:
        for chunk, frames in assembled:
            self.keep(chunk, frames)
            yield chunk, frames

    def keep(self, chunk: Chunk, frames: Sequence[FrameSample]) -> None:
        kept = owned_frames(chunk, frames, self._owner)
        if not kept or self.failed:
            return
        data = encode_part(chunk.index, self.fingerprint, kept)
        try:
            self.store.put_bytes(
                self.bucket, part_key(self.prefix, chunk.index), data, "application/octet-stream"
            )
        except VidlocError as exc:
            self.failed = True  # the manifest is not written: a later analysis decodes again
            log.warning("frame cache: part of chunk %d not stored (%s)", chunk.index, exc)
            return
        self.written += len(data)


@dataclass
class FrameStore:
    """One bucket's frame caches, read as of ``clock`` under a retention of ``ttl_days``."""

    store: FrameCacheStore
    bucket: str
    ttl_days: float
    clock: Callable[[], float] = time.time

    def manifest(self, prefix: str) -> Manifest | Miss:
        try:
            data = self.store.get_bytes(self.bucket, manifest_key(prefix))
        except ObjectMissing:
            return Miss(NEVER_CACHED)
        except VidlocError as exc:
            return Miss(UNREADABLE, str(exc)[:200])
        try:
            return decode_manifest(data)
        except CacheUnreadable as exc:
            log.warning("frame cache: %s%s: %s", prefix, "manifest.json", exc)
            return Miss(UNREADABLE, str(exc))

    def present(self, prefix: str, manifest: Manifest, chunks: Sequence[Chunk]) -> Miss | None:
        """None when every part ``chunks`` need is stored (one LIST); else the miss."""
        needed = set(parts_for(chunks, owners(manifest.sampling.chunks)))
        try:
            stored = {o.key for o in self.store.list_objects(self.bucket, prefix)}
        except VidlocError as exc:
            return Miss(UNREADABLE, str(exc)[:200])
        missing = sorted(i for i in needed if part_key(prefix, i) not in stored)
        if missing:
            return Miss(INCOMPLETE, f"{len(missing)} of {len(needed)} parts")
        return None

    def frames(
        self, prefix: str, manifest: Manifest, wanted: Sequence[float]
    ) -> Iterator[FrameSample]:
        """A frame per planned time of ``wanted`` (ascending), read part by part; only the part
        being read and the one before it (chunks overlap) are held."""
        owner = owners(manifest.sampling.chunks)
        held: dict[int, dict[float, CachedFrame]] = {}
        for t in wanted:
            index = owner.get(t)
            if index is None:
                raise FrameCacheUnreadable(f"no kept frame for {t:.3f} s")
            if index not in held:
                held = {i: part for i, part in held.items() if i >= index - 1}
                held[index] = self._part(prefix, manifest.fingerprint, index)
            kept = held[index].get(t)
            if kept is None:
                raise FrameCacheUnreadable(f"part {index} lacks the frame at {t:.3f} s")
            yield FrameSample(kept.t_s, None, kept.jpeg)

    def _part(self, prefix: str, fingerprint: str, index: int) -> dict[float, CachedFrame]:
        try:
            data = self.store.get_bytes(self.bucket, part_key(prefix, index))
            return {f.planned_s: f for f in decode_part(data, fingerprint, index)}
        except (VidlocError, CacheUnreadable) as exc:
            raise FrameCacheUnreadable(f"part {index}: {exc}") from exc

    def writer(self, prefix: str, fingerprint: str, chunks: Sequence[Chunk]) -> PartWriter:
        return PartWriter(self.store, self.bucket, prefix, fingerprint, chunks)

    def seal(self, prefix: str, manifest: Manifest) -> Manifest | None:
        """Write ``manifest`` (its parts, frames and bytes counted here from what is stored)
        once every part of its plan is; None when some part is missing or the write failed."""
        owner = owners(manifest.sampling.chunks)
        needed = parts_for(manifest.sampling.chunks, owner)
        try:
            sizes = {o.key: int(o.size) for o in self.store.list_objects(self.bucket, prefix)}
        except VidlocError as exc:
            log.warning("frame cache: %s not listed (%s); no manifest", prefix, exc)
            return None
        missing = [i for i in needed if part_key(prefix, i) not in sizes]
        if missing:
            log.warning(
                "frame cache: %d of %d parts missing under %s; no manifest",
                len(missing),
                len(needed),
                prefix,
            )
            return None
        whole = replace(
            manifest,
            created_at=self.clock(),
            parts=tuple(needed),
            frames=len(owner),
            bytes=sum(sizes[part_key(prefix, i)] for i in needed),
        )
        try:
            self.store.put_bytes(self.bucket, manifest_key(prefix), encode_manifest(whole))
        except VidlocError as exc:
            log.warning("frame cache: manifest of %s not stored (%s)", prefix, exc)
            return None
        return whole
