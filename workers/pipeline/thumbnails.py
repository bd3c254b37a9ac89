"""A thumbnail per event, from frames the job decoded anyway (no decode pass of its own).

``FrameKeeper.tap`` sits on the frame stream the chunks are assembled from and keeps a small
JPEG of the frames passing by, thinned to at most ``max_kept`` spread evenly over the video (when
full, the spacing doubles and every other one goes), so a long job holds a few MB, not its
frames. After the merge, :func:`pick_thumbnails` gives each event the kept frame nearest its
middle, if one lies within the event or within one spacing of it.

Chunks answered from checkpoints (a long video merged from its spans: the merging member
localizes none itself; a resumed job) pass no frame by the keeper: their events take the frame
cache's kept frame nearest their middle (:func:`pick_times` too;
:mod:`workers.pipeline.cached_thumbnails`). With the cache off or unreadable they carry no
``thumbnail`` and the API answers ``thumbnail_not_found``.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from contracts import Timeline, TimelineEvent
from workers.types import FrameSample, RGBImage

MAX_KEPT = 600
LONG_SIDE = 320
JPEG_QUALITY = 80
FOLDER = "thumbnails"
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}")


def encode_thumbnail(image: RGBImage, long_side: int = LONG_SIDE) -> bytes:
    """A JPEG of ``image``, its longer side at most ``long_side`` px."""
    height, width = image.shape[:2]
    scale = min(1.0, long_side / max(height, width))
    small: Any = image
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError(f"cannot JPEG-encode a frame of shape {image.shape}")
    return bytes(buffer.tobytes())


def shrink_jpeg(jpeg: bytes, long_side: int = LONG_SIDE) -> bytes:
    """:func:`encode_thumbnail` of a JPEG's picture."""
    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("a kept frame is not a readable JPEG")
    rgb: RGBImage = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
    return encode_thumbnail(rgb, long_side)


class FrameKeeper:
    """Small JPEGs of the frames a job decoded, at most ``max_kept``, spread over time."""

    def __init__(self, max_kept: int = MAX_KEPT, step_s: float = 0.0) -> None:
        self.max_kept = max(2, max_kept)
        self.step_s = step_s  # 0: keep every frame until full
        self._kept: dict[float, bytes] = {}
        self._unshrunk: set[float] = set()  # kept as the JPEG sent, not yet a thumbnail
        self._cells: set[float] = set()

    def tap(self, frames: Iterable[FrameSample]) -> Iterator[FrameSample]:
        """Pass ``frames`` through unchanged, keeping what it needs on the way."""
        for frame in frames:
            self.offer(frame)
            yield frame

    def _cell(self, t: float) -> float:
        return t if self.step_s <= 0 else float(int(t // self.step_s))

    def offer(self, frame: FrameSample) -> None:
        cell = self._cell(frame.t_s)
        if cell in self._cells:
            return  # this spacing's cell already has its frame
        if frame.jpeg is not None:
            # The JPEG as sent, made a thumbnail only if an event picks it (nearest): most
            # kept frames are thinned away, and a frame-cache frame has no pixels to shrink.
            self._kept[frame.t_s] = frame.jpeg
            self._unshrunk.add(frame.t_s)
        else:
            self._kept[frame.t_s] = encode_thumbnail(frame.pixels())
        self._cells.add(cell)
        while len(self._kept) > self.max_kept:
            self._thin()

    def _thin(self) -> None:
        times = sorted(self._kept)
        if self.step_s <= 0:
            span = times[-1] - times[0]
            self.step_s = max(span / (self.max_kept / 2), 1e-3)
        else:
            self.step_s *= 2
        seen: set[float] = set()
        for t in times:
            cell = self._cell(t)
            if cell in seen:
                del self._kept[t]
                self._unshrunk.discard(t)
            seen.add(cell)
        self._cells = seen

    @property
    def times(self) -> list[float]:
        return sorted(self._kept)

    def nearest(self, t: float) -> tuple[float, bytes] | None:
        times = self.times
        if not times:
            return None
        i = bisect.bisect_left(times, t)
        best = min(times[max(0, i - 1) : i + 1], key=lambda x: abs(x - t))
        if best in self._unshrunk:
            self._kept[best] = shrink_jpeg(self._kept[best])
            self._unshrunk.discard(best)
        return best, self._kept[best]


def thumbnail_name(event_id: str) -> str:
    """``thumbnails/<id>.jpg`` for a key-safe id, else a digest of it (event ids are free text)."""
    stem = event_id if _SAFE.fullmatch(event_id) else hashlib.sha256(event_id.encode()).hexdigest()
    return f"{FOLDER}/{stem[:100]}.jpg"


@dataclass(frozen=True)
class Thumbnail:
    event_id: str
    name: str  # relative to the timeline's folder
    t_s: float
    jpeg: bytes


def pick_times(
    events: Sequence[TimelineEvent], times: Sequence[float], spacing: float
) -> dict[str, float]:
    """Each event's frame among ``times`` (ascending): the one nearest its middle, when it lies
    within the event or within ``max(spacing, 1 s)`` of it (else the event gets none)."""
    slack = max(spacing, 1.0)
    chosen: dict[str, float] = {}
    for event in events:
        if not times:
            break
        middle = (event.start_s + event.end_s) / 2
        i = bisect.bisect_left(times, middle)
        t = min(times[max(0, i - 1) : i + 1], key=lambda x: abs(x - middle))
        if event.start_s - slack <= t <= event.end_s + slack:
            chosen[event.id] = t
    return chosen


def pick_thumbnails(events: Sequence[TimelineEvent], keeper: FrameKeeper) -> list[Thumbnail]:
    """For each event, the kept frame nearest its middle (:func:`pick_times`, the keeper's
    spacing)."""
    chosen = []
    for event_id, t in pick_times(events, keeper.times, keeper.step_s).items():
        found = keeper.nearest(t)
        assert found is not None and found[0] == t
        chosen.append(Thumbnail(event_id, thumbnail_name(event_id), t, found[1]))
    return chosen


def with_thumbnails(timeline: Timeline, thumbs: Sequence[Thumbnail]) -> Timeline:
    """``timeline`` with each event that got a thumbnail naming it."""
    names = {thumb.event_id: thumb.name for thumb in thumbs}
    events = [
        e.model_copy(update={"thumbnail": names[e.id]}) if e.id in names else e
        for e in timeline.events
    ]
    return timeline.model_copy(update={"events": events})


def store_thumbnails(
    timeline: Timeline, keeper: FrameKeeper, put: Callable[[str, bytes], None]
) -> Timeline:
    """Pick, ``put(name, jpeg)`` each (``name`` relative to the timeline's folder), and return
    the timeline naming them: called before the timeline is stored, so it never names a
    thumbnail that is not there."""
    thumbs = pick_thumbnails(timeline.events, keeper)
    for thumb in thumbs:
        put(thumb.name, thumb.jpeg)
    return with_thumbnails(timeline, thumbs)
