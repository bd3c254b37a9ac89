"""Thumbnails from the frame cache (a long video merged from its spans): each event lacking one
gets the kept frame nearest its middle, read from the parts holding those frames only; with the
cache off, no manifest or a broken part, the timeline is left as it was."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from api_fixtures import make_timeline

from contracts import Timeline
from vidloc.errors import ObjectMissing
from workers.localizers.prompt import encode_jpeg
from workers.pipeline.cached_thumbnails import kept_times, store_cached_thumbnails
from workers.pipeline.frame_cache import CachedFrame, Manifest, Sampling, encode_part
from workers.pipeline.frame_store import FrameStore
from workers.pipeline.thumbnails import pick_times, thumbnail_name
from workers.types import Chunk, FrameSample, VideoInfo

PREFIX = "frames/vid-1/tag/"
CHUNKS = (
    Chunk(0, 0.0, 4.0, (0.5, 1.5, 2.5, 3.5)),
    Chunk(1, 2.0, 6.0, (2.5, 3.5, 4.5, 5.5)),  # overlaps chunk 0: its part holds 4.5 and 5.5
    Chunk(2, 4.0, 8.0, (4.5, 5.5, 6.5, 7.5)),  # its part holds 6.5 and 7.5
)
SAMPLING = Sampling("uniform", 1.0, 4.0, 2.0, (448, 256), 85, None, CHUNKS)
INFO = VideoInfo(8.0, 25.0, 640, 360, "h264")


@dataclass
class _Info:
    key: str
    size: int


class CountingStore:
    """An in-memory bucket that remembers what was read."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.read: list[str] = []

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "") -> None:
        self.objects[key] = data

    def get_bytes(self, bucket: str, key: str) -> bytes:
        self.read.append(key)
        try:
            return self.objects[key]
        except KeyError:
            raise ObjectMissing(key) from None

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[_Info]:
        for key, data in sorted(self.objects.items()):
            if key.startswith(prefix):
                yield _Info(key, len(data))


def _shade(t: float) -> int:
    return int(t * 30)


def _frame(t: float) -> FrameSample:
    image = np.full((256, 448, 3), _shade(t), dtype=np.uint8)
    return FrameSample(t + 0.01, image, encode_jpeg(image))


def _filled() -> tuple[FrameStore, CountingStore, Manifest]:
    """The cache as a long video's spans leave it: a part per chunk, sealed at the merge."""
    memory = CountingStore()
    cache = FrameStore(memory, "timelines", ttl_days=30, clock=lambda: 100.0)
    writer = cache.writer(PREFIX, SAMPLING.fingerprint(), CHUNKS)
    for chunk in CHUNKS:
        writer.keep(chunk, [_frame(t) for t in chunk.times])
    unsealed = Manifest(SAMPLING.fingerprint(), 0.0, INFO, SAMPLING, (), 0, 0, 0)
    sealed = cache.seal(PREFIX, unsealed)
    assert sealed is not None
    memory.read.clear()
    return cache, memory, sealed


def _thumbnails(
    timeline: Timeline, cache: FrameStore | None, sealed: Manifest | None
) -> tuple[Timeline, dict[str, bytes]]:
    put: dict[str, bytes] = {}
    named = store_cached_thumbnails(
        timeline, cache, PREFIX, sealed, lambda name, jpeg: put.__setitem__(name, jpeg)
    )
    return named, put


def test_picking_is_the_keepers_rule() -> None:
    timeline = make_timeline()  # events e1 1-3 s, e2 5-7.5 s, e3 8-8 s, e4 6.5-9 s
    times = [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5]
    assert pick_times(timeline.events, times, 1.0) == {"e1": 1.5, "e2": 6.5, "e3": 7.5, "e4": 7.5}
    # Too far from an event (beyond the event and one spacing): none.
    assert pick_times(timeline.events, [20.0], 1.0) == {}
    assert pick_times(timeline.events, [10.0], 2.0) == {"e3": 10.0, "e4": 10.0}
    assert pick_times(timeline.events, [], 1.0) == {}


def test_every_event_gets_the_kept_frame_nearest_its_middle_reading_only_its_parts() -> None:
    cache, memory, sealed = _filled()
    assert kept_times(sealed) == [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5]
    named, put = _thumbnails(make_timeline(), cache, sealed)
    assert {e.id: e.thumbnail for e in named.events} == {
        e: thumbnail_name(e) for e in ("e1", "e2", "e3", "e4")
    }
    # 1.5 s lives in part 0, 6.5 and 7.5 s in part 2: part 1 is never read.
    assert sorted(memory.read) == [PREFIX + "part-00000.bin", PREFIX + "part-00002.bin"]
    picked = {"e1": 1.5, "e2": 6.5, "e3": 7.5, "e4": 7.5}
    for event_id, t in picked.items():
        jpeg = put[thumbnail_name(event_id)]
        picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert picture is not None and picture.shape == (183, 320, 3)  # shrunk like kept
        assert abs(int(picture[90, 160, 1]) - _shade(t)) <= 3


def test_without_the_sealed_manifest_the_stored_one_is_read() -> None:
    cache, _, _ = _filled()
    named, put = _thumbnails(make_timeline(), cache, None)
    assert all(e.thumbnail is not None for e in named.events) and len(put) == 4


def test_an_event_with_a_thumbnail_keeps_it_and_none_lacking_reads_nothing() -> None:
    cache, memory, sealed = _filled()
    timeline = make_timeline()
    events = [e.model_copy(update={"thumbnail": "thumbnails/mine.jpg"}) for e in timeline.events]
    whole = timeline.model_copy(update={"events": events})
    named, put = _thumbnails(whole, cache, sealed)
    assert named == whole and put == {} and memory.read == []
    events[0] = events[0].model_copy(update={"thumbnail": None})
    named, put = _thumbnails(timeline.model_copy(update={"events": events}), cache, sealed)
    assert [e.thumbnail for e in named.events] == [
        thumbnail_name("e1"),
        *(["thumbnails/mine.jpg"] * 3),
    ]
    assert list(put) == [thumbnail_name("e1")] and memory.read == [PREFIX + "part-00000.bin"]


@pytest.mark.parametrize("case", ["off", "never_cached", "broken_part", "not_jpeg"])
def test_no_kept_frames_leaves_the_timeline_as_it_was_and_says_why(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache, memory, sealed = _filled()
    given: FrameStore | None = cache
    if case == "off":
        given = None
    elif case == "never_cached":
        memory.objects.clear()
    elif case == "broken_part":
        memory.objects[PREFIX + "part-00002.bin"] = b"garbage"
    else:
        # A whole part whose frame is no picture: read back, but not shrinkable.
        frames = [CachedFrame(t, t, b"\xff\xd8 no picture") for t in (0.5, 1.5, 2.5, 3.5)]
        memory.objects[PREFIX + "part-00000.bin"] = encode_part(0, sealed.fingerprint, frames)
    timeline = make_timeline()
    caplog.set_level(logging.INFO, logger="workers.pipeline.cached_thumbnails")
    named, put = _thumbnails(timeline, given, None if case != "broken_part" else sealed)
    assert named == timeline and put == {}
    assert "4 events get no thumbnail" in caplog.text
