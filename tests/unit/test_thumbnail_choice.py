"""Event thumbnails from the frames a job decoded: what is kept, what each event gets."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from api_fixtures import make_timeline

from workers.pipeline.thumbnails import (
    FrameKeeper,
    encode_thumbnail,
    pick_thumbnails,
    store_thumbnails,
    thumbnail_name,
)
from workers.types import FrameSample


def frame(t: float, shade: int = 0) -> FrameSample:
    image = np.full((256, 448, 3), shade, dtype=np.uint8)
    return FrameSample(t_s=t, image=image)


def test_a_thumbnail_is_a_small_jpeg_of_the_frame() -> None:
    image = np.zeros((256, 448, 3), dtype=np.uint8)
    image[:, :, 0] = 255  # red
    jpeg = encode_thumbnail(image)
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (183, 320, 3)
    b, g, r = decoded[90, 160]
    assert r > 240 and g < 15 and b < 15


def test_the_tap_passes_frames_through_unchanged() -> None:
    keeper = FrameKeeper()
    frames = [frame(t) for t in range(5)]
    assert list(keeper.tap(frames)) == frames
    assert keeper.times == [0, 1, 2, 3, 4]


def test_a_kept_jpeg_becomes_a_thumbnail_only_when_picked() -> None:
    # Frames of a later analysis come from the frame cache as JPEGs without pixels: the
    # keeper holds the bytes and shrinks only the one an event asks for.
    red = np.zeros((256, 448, 3), dtype=np.uint8)
    red[:, :, 0] = 255
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(red, cv2.COLOR_RGB2BGR))
    assert ok
    sent = bytes(buffer.tobytes())
    keeper = FrameKeeper()
    list(keeper.tap([FrameSample(t_s=float(t), image=None, jpeg=sent) for t in range(4)]))
    assert keeper._kept[1.0] == sent  # untouched until picked
    found = keeper.nearest(1.2)
    assert found is not None and found[0] == 1.0
    decoded = cv2.imdecode(np.frombuffer(found[1], np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (183, 320, 3)
    b, g, r = decoded[90, 160]
    assert r > 240 and g < 15 and b < 15
    assert keeper._kept[0.0] == sent  # the others were never shrunk


def test_the_keeper_thins_evenly_and_stays_bounded() -> None:
    keeper = FrameKeeper(max_kept=50)
    for t in range(3600):  # an hour at 1 fps
        keeper.offer(frame(float(t)))
    times = keeper.times
    assert len(times) <= 50
    gaps = np.diff(times)
    assert times[0] == 0 and times[-1] > 3400
    assert gaps.max() <= 2 * keeper.step_s


def test_each_event_gets_the_frame_nearest_its_middle() -> None:
    keeper = FrameKeeper()
    for t in range(0, 11):
        keeper.offer(frame(float(t), shade=t * 20))
    timeline = make_timeline()  # events e1 1-3 s, e2 5-7.5 s, e3 8-8 s, e4 6.5-9 s
    picked = {p.event_id: p.t_s for p in pick_thumbnails(timeline.events, keeper)}
    assert picked == {"e1": 2.0, "e2": 6.0, "e3": 8.0, "e4": 8.0}


def test_an_event_far_from_every_kept_frame_gets_none() -> None:
    keeper = FrameKeeper()
    keeper.offer(frame(20.0))  # every event ends by 9 s
    assert pick_thumbnails(make_timeline().events, keeper) == []
    assert pick_thumbnails(make_timeline().events, FrameKeeper()) == []


def test_stored_thumbnails_are_named_in_the_timeline() -> None:
    keeper = FrameKeeper()
    for t in range(0, 11):
        keeper.offer(frame(float(t)))
    put: dict[str, bytes] = {}
    timeline = store_thumbnails(make_timeline(), keeper, put.__setitem__)
    assert {e.id: e.thumbnail for e in timeline.events} == {
        f"e{i}": f"thumbnails/e{i}.jpg" for i in range(1, 5)
    }
    assert set(put) == {f"thumbnails/e{i}.jpg" for i in range(1, 5)}
    assert all(data[:2] == b"\xff\xd8" for data in put.values())


@pytest.mark.parametrize("event_id", ["a/b", "../x", "ev 1", "é", "x" * 300])
def test_unsafe_event_ids_become_digests(event_id: str) -> None:
    name = thumbnail_name(event_id)
    assert name.startswith("thumbnails/") and name.endswith(".jpg")
    stem = name.removeprefix("thumbnails/").removesuffix(".jpg")
    assert stem.isalnum() and len(stem) <= 100
