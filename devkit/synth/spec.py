"""What a synthetic video contains (its spec) and what is true about it (its ground truth).

Pure values: no drawing, no encoding. ``render.render(spec, path)`` turns a spec into a file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from devkit.synth.palette import BACKGROUNDS, entry_for_label

Codec = Literal["h264", "h265", "vp9", "av1", "mpeg4", "mjpeg"]

# The container each codec goes into by default.
DEFAULT_CONTAINER: dict[str, str] = {
    "h264": "mp4",
    "h265": "mkv",
    "vp9": "webm",
    "av1": "mkv",
    "mpeg4": "mp4",
    "mjpeg": "avi",
}


@dataclass(frozen=True)
class SyntheticEvent:
    """One palette shape, visible on every frame whose time is in ``[start_s, end_s)``."""

    label: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Segment:
    """A stretch ``[start_s, end_s)`` of black frames or of one frozen (repeated) frame."""

    start_s: float
    end_s: float


@dataclass(frozen=True)
class VfrStretch:
    """Inside ``[start_s, end_s)`` keep only every ``keep_every``-th source frame."""

    start_s: float
    end_s: float
    keep_every: int


@dataclass(frozen=True)
class VideoSpec:
    """A synthetic video: shots (hard cuts), palette events, black/frozen stretches, VFR thinning.

    Frames are drawn at ``i / fps``. A frozen segment repeats the frame drawn at its start;
    a black segment is pure black. Events must not overlap black segments and event edges
    and cuts must not fall inside frozen ones, so the ground truth stays exact.
    """

    name: str
    duration_s: float
    fps: float
    width: int
    height: int
    codec: Codec = "h264"
    container: str = ""  # file extension without dot; "" = DEFAULT_CONTAINER[codec]
    cuts: tuple[float, ...] = ()
    events: tuple[SyntheticEvent, ...] = ()
    black_segments: tuple[Segment, ...] = ()
    frozen_segments: tuple[Segment, ...] = ()
    vfr_stretches: tuple[VfrStretch, ...] = ()
    gop: int = 0  # keyframe interval in frames; 0 = encoder default
    seed: int = 0
    # Motion that is not an event (all off by default). The truth stays exact: a moving shape
    # stays whole inside the frame, in a lane of its own, so it is visible exactly while its
    # event lasts.
    moving_shapes: bool = False  # each shape travels to and fro across its own lane
    pan_px_per_s: float = 0.0  # the textured background scrolls (a camera pan)
    clock: bool = False  # an on-screen clock ticking every second
    noise: float = 0.0  # standard deviation of per-frame Gaussian noise (0-255 scale)

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2 or self.width < 64 or self.height < 64:
            raise ValueError(f"{self.name}: size must be even and >= 64, got {self.size}")
        if self.duration_s <= 0 or self.fps <= 0:
            raise ValueError(f"{self.name}: duration and fps must be > 0")
        if self.codec not in DEFAULT_CONTAINER:
            raise ValueError(f"{self.name}: unknown codec {self.codec}")
        for event in self.events:
            entry_for_label(event.label)  # KeyError for labels outside the palette
            if not 0 <= event.start_s < event.end_s <= self.duration_s:
                raise ValueError(f"{self.name}: bad event {event}")
            if any(_overlaps(event.start_s, event.end_s, b) for b in self.black_segments):
                raise ValueError(f"{self.name}: event {event} overlaps a black segment")
            for t in (event.start_s, event.end_s):
                if any(f.start_s < t < f.end_s for f in self.frozen_segments):
                    raise ValueError(f"{self.name}: event edge {t} inside a frozen segment")
        for cut in self.cuts:
            if any(f.start_s < cut < f.end_s for f in self.frozen_segments):
                raise ValueError(f"{self.name}: cut {cut} inside a frozen segment")

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def ext(self) -> str:
        return self.container or DEFAULT_CONTAINER[self.codec]

    @property
    def filename(self) -> str:
        return f"{self.name}.{self.ext}"

    @property
    def vfr(self) -> bool:
        return bool(self.vfr_stretches)

    @property
    def source_frame_count(self) -> int:
        """Frames drawn before any VFR thinning."""
        return max(1, math.ceil(self.duration_s * self.fps - 1e-9))

    def keeps(self, index: int) -> bool:
        """Whether VFR thinning keeps source frame ``index``."""
        t = index / self.fps
        return all(
            not (s.start_s <= t < s.end_s) or index % s.keep_every == 0 for s in self.vfr_stretches
        )

    def frame_times(self) -> tuple[float, ...]:
        """Presentation times of the frames the encoded file holds."""
        return tuple(i / self.fps for i in range(self.source_frame_count) if self.keeps(i))

    def shot_index(self, t: float) -> int:
        return sum(1 for cut in self.cuts if cut <= t)

    def background(self, t: float) -> tuple[int, int, int]:
        return BACKGROUNDS[(self.shot_index(t) + self.seed) % len(BACKGROUNDS)]

    def labels_at(self, t: float) -> tuple[str, ...]:
        """Labels visible on the frame drawn at ``t`` (what a viewer sees then)."""
        t = self.content_time(t)
        if self.is_black(t):
            return ()
        return tuple(e.label for e in self.events if e.start_s <= t < e.end_s)

    def is_black(self, t: float) -> bool:
        return any(b.start_s <= t < b.end_s for b in self.black_segments)

    def content_time(self, t: float) -> float:
        """The instant whose picture a frame at ``t`` shows (a frozen stretch repeats its start)."""
        for frozen in self.frozen_segments:
            if frozen.start_s <= t < frozen.end_s:
                return frozen.start_s
        return t

    def ground_truth(self) -> GroundTruth:
        return GroundTruth(
            video=self.name,
            events=tuple(sorted(self.events, key=lambda e: (e.start_s, e.label))),
            cuts=tuple(sorted(self.cuts)),
            black_segments=self.black_segments,
            frozen_segments=self.frozen_segments,
            duration_s=self.duration_s,
        )

    def fingerprint(self) -> str:
        """Stable text identifying this spec; a cached render is reused only if it matches."""
        fields = asdict(self)
        # Motion fields left at their defaults are omitted, so still clips keep their old
        # fingerprints (and their cached renders).
        for name, default in _MOTION_DEFAULTS.items():
            if fields[name] == default:
                del fields[name]
        return json.dumps(fields, sort_keys=True)


_MOTION_DEFAULTS: dict[str, object] = {
    "moving_shapes": False,
    "pan_px_per_s": 0.0,
    "clock": False,
    "noise": 0.0,
}


def _overlaps(start: float, end: float, seg: Segment) -> bool:
    return start < seg.end_s and seg.start_s < end


@dataclass(frozen=True)
class GroundTruth:
    """What is really in a synthetic video, in real (presentation) seconds."""

    video: str
    events: tuple[SyntheticEvent, ...]
    cuts: tuple[float, ...] = ()
    black_segments: tuple[Segment, ...] = ()
    frozen_segments: tuple[Segment, ...] = ()
    duration_s: float = 0.0

    def records(self) -> list[dict[str, object]]:
        """One JSON-able record per fact; ``kind`` is event | cut | black | frozen."""
        rows: list[dict[str, object]] = [
            {
                "video": self.video,
                "kind": "event",
                "label": e.label,
                "start_s": e.start_s,
                "end_s": e.end_s,
            }
            for e in self.events
        ]
        rows += [{"video": self.video, "kind": "cut", "t_s": c} for c in self.cuts]
        for kind, segments in (("black", self.black_segments), ("frozen", self.frozen_segments)):
            rows += [
                {"video": self.video, "kind": kind, "start_s": s.start_s, "end_s": s.end_s}
                for s in segments
            ]
        return rows


def write_ground_truth_jsonl(truths: Iterable[GroundTruth], path: Path) -> None:
    """Write one JSON line per fact: ``{"video", "kind", "label", "start_s", "end_s"}`` etc."""
    with path.open("w", encoding="utf-8") as out:
        for truth in truths:
            for row in truth.records():
                out.write(json.dumps(row, sort_keys=True) + "\n")


def read_ground_truth_jsonl(path: Path) -> dict[str, GroundTruth]:
    """Inverse of :func:`write_ground_truth_jsonl`, keyed by video name."""
    events: dict[str, list[SyntheticEvent]] = {}
    cuts: dict[str, list[float]] = {}
    segments: dict[tuple[str, str], list[Segment]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        video = str(row["video"])
        events.setdefault(video, [])
        kind = row.get("kind", "event")
        if kind == "event":
            events[video].append(
                SyntheticEvent(str(row["label"]), float(row["start_s"]), float(row["end_s"]))
            )
        elif kind == "cut":
            cuts.setdefault(video, []).append(float(row["t_s"]))
        else:
            segments.setdefault((video, kind), []).append(
                Segment(float(row["start_s"]), float(row["end_s"]))
            )
    return {
        video: GroundTruth(
            video=video,
            events=tuple(found),
            cuts=tuple(cuts.get(video, ())),
            black_segments=tuple(segments.get((video, "black"), ())),
            frozen_segments=tuple(segments.get((video, "frozen"), ())),
        )
        for video, found in events.items()
    }
