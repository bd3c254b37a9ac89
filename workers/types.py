"""Plain values that flow between the worker's pure modules and its adapters."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from vidloc.adapters.ranged_reader import ReadStats

RGBImage = npt.NDArray[np.uint8]  # H x W x 3, RGB order


@dataclass(frozen=True)
class SourceWarning:
    """Something decoding could not do as asked; the job puts it on the timeline (JobWarning)."""

    code: str  # a stable slug, e.g. decoder_fallback, partly_decodable
    message: str


@dataclass(frozen=True)
class VideoInfo:
    """What a probe learned about a file before any frame is decoded.

    ``width``/``height`` are the display size (a phone video stored 1920x1080 with a 90 degree
    rotation is 1080x1920); ``rotation`` is the turn (degrees counter-clockwise, 0/90/180/270)
    a player applies to the stored picture. ``duration_s`` is the decodable span: for a file
    whose header claims more than its data holds, ``warnings`` says so.
    """

    duration_s: float
    fps: float
    width: int
    height: int
    codec: str
    frame_count: int | None = None
    container: str = ""  # FFmpeg's demuxer name, e.g. "mpegts", "mov,mp4,m4a,3gp,3g2,mj2"
    rotation: int = 0
    warnings: tuple[SourceWarning, ...] = ()


@dataclass(frozen=True)
class RangedProbe:
    """A probe of an object read by ranges (its header and end): ``info`` as the full probe
    gives it, or None when only downloading and scanning every packet can tell (``reason``);
    ``stats`` is what it read."""

    info: VideoInfo | None
    reason: str
    stats: ReadStats


@dataclass(frozen=True)
class FrameSample:
    """One decoded frame and its real presentation time (from container timestamps).

    ``jpeg``, when set, is the frame as the model is sent it (encoded once, kept in the frame
    cache, sent again by a later analysis as these very bytes). A frame read back from the
    frame cache has no ``image``: a later analysis sends the bytes and needs no pixels, and
    decoding every kept JPEG again cost most of its CPU (bench/bench_reask.py).
    """

    t_s: float
    image: RGBImage | None
    jpeg: bytes | None = None

    def pixels(self) -> RGBImage:
        """The decoded picture; a kept frame (JPEG only) has none to give."""
        if self.image is None:
            raise ValueError(f"the frame at {self.t_s:.3f} s is a kept JPEG without pixels")
        return self.image


@dataclass(frozen=True)
class Chunk:
    """A window of sample times sent to a localizer together."""

    index: int
    start_s: float
    end_s: float
    times: tuple[float, ...]


@dataclass(frozen=True)
class DetectedEvent:
    """An event as a localizer reports it, in absolute video seconds."""

    label: str
    start_s: float
    end_s: float
    description: str = ""
    confidence: float | None = None
    source: str = ""  # which localizer / pass produced it


@dataclass(frozen=True)
class TokenTally:
    """Tokens and requests counted while a job runs; priced into ``contracts.Usage`` at the end."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    # Prompt tokens the server read from its prefix cache (part of prompt_tokens); vLLM reports
    # them only when started with --enable-prompt-tokens-details, so 0 can also mean "unknown".
    cached_tokens: int = 0

    def __add__(self, other: TokenTally) -> TokenTally:
        return TokenTally(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.requests + other.requests,
            self.cached_tokens + other.cached_tokens,
        )


@dataclass(frozen=True)
class LocalizeRequest:
    """What the user asked for, as a localizer needs it."""

    prompt: str | None = None
    labels: tuple[str, ...] = ()
    video_duration_s: float = 0.0
    # Names the frames' source for the model server's caches: one object version of one video
    # (``<video id>@<version tag>``), so the same frame gets the same image uuid in every
    # analysis of that version and never one another video's frame has. "" sends no uuids.
    media_id: str = ""


@dataclass(frozen=True)
class AnswerReport:
    """How a chunk's model answers were read; all zero for localizers that ask no model."""

    answers: int = 0  # answers read, re-asks included
    unusable: int = 0  # answers that could not be read, or whose every event was rejected
    reasked: int = 0  # corrective re-asks sent after an unusable answer
    relative_shifted: int = 0  # events whose times counted from the request's first frame
    failed: bool = False  # no usable answer came back, even after re-asking
    dropped: tuple[tuple[str, int], ...] = ()  # why events were rejected, with counts

    def __add__(self, other: AnswerReport) -> AnswerReport:
        """Two requests for parts of one chunk: it failed only if every part that asked did."""
        dropped: dict[str, int] = dict(self.dropped)
        for reason, count in other.dropped:
            dropped[reason] = dropped.get(reason, 0) + count
        asked = [r for r in (self, other) if r.answers > 0]
        return AnswerReport(
            self.answers + other.answers,
            self.unusable + other.unusable,
            self.reasked + other.reasked,
            self.relative_shifted + other.relative_shifted,
            bool(asked) and all(r.failed for r in asked),
            tuple(dropped.items()),
        )


@dataclass(frozen=True)
class ChunkResult:
    chunk_index: int
    events: tuple[DetectedEvent, ...]
    usage: TokenTally = field(default_factory=TokenTally)
    rejected_events: int = 0  # answer items dropped by the defensive parser
    answer: AnswerReport = field(default_factory=AnswerReport)


class FrameSource(Protocol):
    """A video decoder adapter: probe a local file, then stream frames at planned times."""

    name: str

    def probe(self, path: str) -> VideoInfo: ...

    def frames(
        self, path: str, times: Sequence[float], size: tuple[int, int]
    ) -> Iterator[FrameSample]:
        """Yield one FrameSample per requested time (nearest decoded frame), in time order.

        ``size`` is (width, height) of the returned images. Implementations stream: they never
        hold more than a few decoded frames at once.
        """
        ...


class RangedFrameSource(FrameSource, Protocol):
    """A frame source reading one object version from the store by ranges."""

    read_stats: ReadStats

    def probe_by_ranges(self) -> RangedProbe:
        """The object's probe from its header and end (see :class:`RangedProbe`)."""
        ...


class Localizer(Protocol):
    """Turns the frames of one chunk into events."""

    name: str

    def localize(
        self, chunk: Chunk, frames: Sequence[FrameSample], request: LocalizeRequest
    ) -> ChunkResult: ...


def normalise_label(label: str) -> str:
    """The identity of a label for merging: case-folded, inner whitespace collapsed."""
    return " ".join(label.split()).casefold()
