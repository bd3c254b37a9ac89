"""The frame cache's layout, fingerprint, expiry and reading back (pure module, and the store
side on an in-memory store): every broken, foreign or old object is a miss, never a crash."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
import pytest

from contracts import IngestEvent, derive_version_tag
from vidloc import names
from vidloc.errors import FrameCacheUnreadable, ObjectMissing
from workers.localizers.prompt import build_messages, encode_jpeg
from workers.pipeline.frame_cache import (
    EXPIRED,
    INCOMPLETE,
    NEVER_CACHED,
    OTHER_SAMPLING,
    UNREADABLE,
    CachedFrame,
    CacheUnreadable,
    Manifest,
    Miss,
    Sampling,
    decode_manifest,
    decode_part,
    encode_manifest,
    encode_part,
    estimated_bytes,
    expired,
    judge,
    manifest_key,
    owned_frames,
    owners,
    part_key,
    parts_for,
)
from workers.pipeline.frame_store import FrameStore, as_sent
from workers.service.dedup import work_id
from workers.types import Chunk, FrameSample, LocalizeRequest, VideoInfo

DAY = 86400.0
CHUNKS = (
    Chunk(0, 0.0, 4.0, (0.5, 1.5, 2.5, 3.5)),
    Chunk(1, 2.0, 6.0, (2.5, 3.5, 4.5, 5.5)),  # overlaps chunk 0 by two frames
    Chunk(2, 4.0, 8.0, (4.5, 5.5, 6.5, 7.5)),
)
INFO = VideoInfo(8.0, 25.0, 640, 360, "h264", frame_count=200, container="mp4")


def _sampling(**changes: Any) -> Sampling:
    base = Sampling("uniform", 1.0, 4.0, 2.0, (448, 256), 85, None, CHUNKS)
    return replace(base, **changes)


def _image(value: int) -> np.ndarray:
    return np.full((256, 448, 3), value, dtype=np.uint8)


def _frame(t: float) -> FrameSample:
    image = _image(int(t * 20) % 255)
    return FrameSample(t + 0.01, image, encode_jpeg(image))


def _manifest(created_at: float = 1000.0, **changes: Any) -> Manifest:
    sampling = _sampling(**changes)
    return Manifest(
        sampling.fingerprint(), created_at, INFO, sampling, (0, 1, 2), 8, 1234, 99, {"etag": "e"}
    )


# -- fingerprint, layout, expiry ----------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"sample_fps": 2.0}, id="rate"),
        pytest.param({"chunk_s": 10.0}, id="chunking"),
        pytest.param({"frame_size": (320, 192)}, id="frame-size"),
        pytest.param({"jpeg_quality": 70}, id="jpeg-quality"),
        pytest.param({"mode": "adaptive"}, id="mode"),
        pytest.param({"chunks": CHUNKS[:2]}, id="chunks"),
    ],
)
def test_another_sampling_has_another_fingerprint(change: dict[str, Any]) -> None:
    assert _sampling(**change).fingerprint() != _sampling().fingerprint()
    assert _sampling().fingerprint() == _sampling().fingerprint()


def test_keys_name_tenant_video_and_object_version() -> None:
    mine = names.frame_cache_prefix(
        "v1", derive_version_tag("videos", "tenants/a/x.mp4", "e1"), "a"
    )
    theirs = names.frame_cache_prefix(
        "v1", derive_version_tag("videos", "tenants/b/x.mp4", "e1"), "b"
    )
    reupload = names.frame_cache_prefix(
        "v1", derive_version_tag("videos", "tenants/a/x.mp4", "e2"), "a"
    )
    assert mine.startswith("tenants/a/frames/v1/") and theirs.startswith("tenants/b/frames/v1/")
    assert len({mine, theirs, reupload}) == 3
    assert manifest_key(mine) == mine + "manifest.json"
    assert part_key(mine, 7) == mine + "part-00007.bin"


def test_each_frame_is_kept_once_in_its_first_chunks_part() -> None:
    owner = owners(CHUNKS)
    assert owner[2.5] == 0 and owner[3.5] == 0 and owner[4.5] == 1 and owner[6.5] == 2
    frames = [_frame(t) for t in CHUNKS[1].times]
    kept = owned_frames(CHUNKS[1], frames, owner)
    assert [f.planned_s for f in kept] == [4.5, 5.5]
    assert parts_for(CHUNKS[1:2], owner) == (0, 1)
    assert parts_for(CHUNKS, owner) == (0, 1, 2)


def test_expiry_and_judgement() -> None:
    assert not expired(0.0, 29 * DAY, 30)
    assert expired(0.0, 31 * DAY, 30)
    assert expired(0.0, 1.0, 0)  # 0: off
    manifest = _manifest(created_at=0.0)
    assert judge(manifest, manifest.fingerprint, 10 * DAY, 30) is None
    miss = judge(manifest, manifest.fingerprint, 40 * DAY, 30)
    assert miss is not None and miss.reason == EXPIRED and "40.0 days" in miss.message
    other = judge(manifest, _sampling(sample_fps=2.0).fingerprint(), DAY, 30)
    assert other is not None and other.reason == OTHER_SAMPLING


def test_size_estimate_is_proportional_to_frames_and_pixels() -> None:
    assert estimated_bytes(60, (448, 256)) == 2 * estimated_bytes(30, (448, 256))
    assert 10_000 < estimated_bytes(1, (448, 256)) < 30_000


# -- parts and manifests round-trip; anything else reads as unreadable --------------------------


def test_a_part_round_trips_byte_for_byte() -> None:
    frames = [CachedFrame(t, t + 0.01, _frame(t).jpeg or b"") for t in (0.5, 1.5)]
    data = encode_part(3, "fp", frames)
    assert decode_part(data, "fp", 3) == frames


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda d: d[: len(d) // 2], id="cut-short"),
        pytest.param(lambda d: d + b"x", id="trailing-bytes"),
        pytest.param(lambda d: b"junk" + d, id="no-magic"),
        pytest.param(lambda d: b"", id="empty"),
        pytest.param(lambda d: d.replace(b'"fp"', b'"zz"'), id="another-sampling"),
        pytest.param(lambda d: d.replace(b'"chunk":3', b'"chunk":4'), id="another-chunk"),
        pytest.param(lambda d: d.replace(b"\xff\xd8", b"\x00\x00", 1), id="not-jpeg"),
        pytest.param(lambda d: d.replace(b'"frames"', b'"framez"'), id="bad-header"),
    ],
)
def test_a_broken_or_foreign_part_is_unreadable(mangle: Any) -> None:
    frames = [CachedFrame(0.5, 0.51, _frame(0.5).jpeg or b"")]
    with pytest.raises(CacheUnreadable):
        decode_part(mangle(encode_part(3, "fp", frames)), "fp", 3)


def test_a_manifest_round_trips_and_a_tampered_one_is_unreadable() -> None:
    manifest = _manifest()
    assert decode_manifest(encode_manifest(manifest)) == manifest
    data = encode_manifest(manifest)
    for bad in (
        data[:-5],
        b"[]",
        b"{}",
        data.replace(b'"sample_fps":1.0', b'"sample_fps":2.0'),  # plan edited: fingerprint
        data.replace(b"vidloc.frame_cache.v1", b"vidloc.frame_cache.v9"),
    ):
        with pytest.raises(CacheUnreadable):
            decode_manifest(bad)


# -- the store side: a miss with a reason, never an exception -----------------------------------


@dataclass
class _Info:
    key: str
    size: int


class MemoryStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "") -> None:
        self.objects[key] = data

    def get_bytes(self, bucket: str, key: str) -> bytes:
        try:
            return self.objects[key]
        except KeyError:
            raise ObjectMissing(key) from None

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[_Info]:
        for key, data in sorted(self.objects.items()):
            if key.startswith(prefix):
                yield _Info(key, len(data))


def _filled(prefix: str = "frames/v/t/") -> tuple[FrameStore, MemoryStore, Manifest]:
    memory = MemoryStore()
    cache = FrameStore(memory, "timelines", ttl_days=30, clock=lambda: 5 * DAY)
    sampling = _sampling()
    writer = cache.writer(prefix, sampling.fingerprint(), CHUNKS)
    for chunk in CHUNKS:
        writer.keep(chunk, [_frame(t) for t in chunk.times])
    sealed = cache.seal(prefix, _manifest(created_at=0.0))
    assert sealed is not None
    return cache, memory, sealed


def test_written_then_read_back_as_sent() -> None:
    cache, memory, sealed = _filled()
    assert sealed.frames == 8 and sealed.parts == (0, 1, 2) and sealed.created_at == 5 * DAY
    assert sealed.bytes == sum(len(v) for k, v in memory.objects.items() if k.endswith(".bin"))
    assert len(memory.objects) == 4  # three parts and the manifest: few objects
    read = cache.manifest("frames/v/t/")
    assert isinstance(read, Manifest) and read == sealed
    wanted = sorted(owners(CHUNKS))
    frames = list(cache.frames("frames/v/t/", read, wanted))
    assert [f.t_s for f in frames] == [t + 0.01 for t in wanted]
    assert all(f.jpeg == _frame(t).jpeg for f, t in zip(frames, wanted, strict=True))
    # Read back as the JPEGs sent, not decoded again: a later analysis needs no pixels.
    assert all(f.image is None for f in frames)
    with pytest.raises(ValueError, match="without pixels"):
        frames[0].pixels()
    picture = cv2.imdecode(np.frombuffer(frames[0].jpeg or b"", np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (256, 448, 3)
    assert cache.present("frames/v/t/", read, CHUNKS) is None


def test_never_cached_unreadable_and_incomplete_are_misses() -> None:
    cache, memory, sealed = _filled()
    assert cache.manifest("frames/other/") == Miss(NEVER_CACHED)
    memory.objects["frames/v/t/manifest.json"] = b"{not json"
    miss = cache.manifest("frames/v/t/")
    assert isinstance(miss, Miss) and miss.reason == UNREADABLE
    del memory.objects["frames/v/t/part-00001.bin"]
    partial = cache.present("frames/v/t/", sealed, CHUNKS[1:2])
    assert partial is not None and partial.reason == INCOMPLETE
    assert cache.present("frames/v/t/", sealed, CHUNKS[:1]) is None  # chunk 0 needs part 0 only


def test_a_part_broken_after_the_lookup_raises_the_runners_error() -> None:
    cache, memory, sealed = _filled()
    memory.objects["frames/v/t/part-00001.bin"] = b"garbage"
    frames = cache.frames("frames/v/t/", sealed, sorted(owners(CHUNKS)))
    with pytest.raises(FrameCacheUnreadable):
        list(frames)


def test_no_manifest_until_every_part_is_stored() -> None:
    memory = MemoryStore()
    cache = FrameStore(memory, "timelines", ttl_days=30)
    writer = cache.writer("p/", _sampling().fingerprint(), CHUNKS)
    writer.keep(CHUNKS[0], [_frame(t) for t in CHUNKS[0].times])  # a span's share only
    assert cache.seal("p/", _manifest()) is None
    assert "p/manifest.json" not in memory.objects


def test_frames_are_encoded_once_and_sent_as_kept() -> None:
    image = _image(40)
    (frame,) = as_sent([FrameSample(1.0, image)], 85)
    assert frame.jpeg == encode_jpeg(image, jpeg_quality=85)
    chunk = Chunk(0, 0.0, 2.0, (1.0,))
    messages = build_messages([frame], LocalizeRequest(), chunk)
    url = messages[1]["content"][1]["image_url"]["url"]
    assert base64.b64decode(url.split(",", 1)[1]) == frame.jpeg


def test_the_event_names_its_version() -> None:
    def event(etag: str) -> IngestEvent:
        return IngestEvent.model_validate(
            {
                "event_id": "e",
                "source": {"bucket": "videos", "key": "x.mp4", "etag": etag, "size": 1},
                "submitted_at": "2026-12-04T00:00:00Z",
            }
        )

    assert event("a").version_tag != event("b").version_tag


def test_two_analyses_asking_one_question_are_two_works() -> None:
    base = {
        "event_id": "e",
        "source": {"bucket": "videos", "key": "x.mp4", "etag": "a", "size": 1},
        "options": {"labels": ["dog"]},
        "submitted_at": "2026-12-04T00:00:00Z",
    }
    first = IngestEvent.model_validate(base)
    later = [
        IngestEvent.model_validate({**base, "schema": "vidloc.ingest.v2", "analysis": {"id": a}})
        for a in ("a-1", "a-2")
    ]
    ids = {work_id(e, "vlm") for e in (first, *later)}
    assert len(ids) == 3
