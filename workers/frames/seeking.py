"""When the PyAV source seeks, and what the first frames after a seek mean (pure).

Encoders put keyframes where they like: every N frames, at scene cuts (x264 ``scenecut``,
libvpx, hardware encoders), wherever ``-force_key_frames`` says; two keyframes 0.04 s apart
followed by five seconds of none is ordinary footage. So nothing here assumes the next keyframe is
as far away as the last two were apart:

* :class:`KeyframeGaps` decides whether a seek is worth it from the *longest* gap between
  consecutive keyframes decoded so far (a seek that lands behind the current frame costs a
  re-decode, one that is not made only a forward decode), and from what earlier seeks proved: a
  seek that landed behind the frames already decoded shows there is no keyframe up to its target,
  so the gap it sits in is at least that long.
* :class:`Seek` reads the first frames after a seek. A seek lands on the keyframe at or before
  its target, which may be *behind* the frames already decoded (those are skipped: seen before),
  which is not a clock restart; or, in MP4/MOV whose index holds decode times, on a keyframe
  shown a few frames *after* the target, so the frames just before it were never decoded: then the
  decoder must go back (:meth:`Seek.retreat`) rather than answer with an older frame.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from workers.frames.timing import TIME_EPS_S

# A frame further than this many nominal frame gaps after the last one decoded may have
# skipped frames before it.
_NEXT_FRAME_GAPS = 1.5


class Landing(enum.Enum):
    SEEN = "seen"  # at or before the last frame decoded before the seek: skip it
    LANDED = "landed"  # the seek is over: this frame and those after it are new
    OVERSHOT = "overshot"  # landed after the target with frames missing before it: go back


class KeyframeGaps:
    """How far apart keyframes are, from the ones decoded so far (no index needed)."""

    def __init__(self, default_gap_s: float) -> None:
        self.default_gap_s = default_gap_s  # assumed until two consecutive keyframes are seen
        self.longest_s: float | None = None
        self.last_s: float | None = None  # the latest keyframe decoded
        self._gap_from: float | None = None  # the keyframe the next gap is measured from
        self._keyless_until = -math.inf  # no keyframe between the decoded frames and this time

    def saw(self, t: float) -> None:
        """A keyframe at ``t`` (stream time) came out of the decoder."""
        if self._gap_from is not None and t > self._gap_from + TIME_EPS_S:
            gap = t - self._gap_from
            self.longest_s = gap if self.longest_s is None else max(self.longest_s, gap)
        self._gap_from = t
        self.last_s = t

    def seeking(self) -> None:
        """The decoder jumps: the next keyframe is not the neighbour of the last one."""
        self._gap_from = None

    def none_until(self, t: float) -> None:
        """A seek for ``t`` landed behind the frames decoded: the keyframe they started from is
        the last one up to ``t``, so keyframes are at least that far apart here.

        Growing the gap (rather than only remembering ``t``) keeps futile seeks rare: the next
        one needs a target more than ``gops`` times further away."""
        self._keyless_until = max(self._keyless_until, t)
        if self.last_s is not None:
            gap = t - self.last_s
            self.longest_s = gap if self.longest_s is None else max(self.longest_s, gap)
        self._gap_from = self.last_s  # decoding goes on from the same keyframe

    def worth_seeking(self, position_s: float, target_s: float, gops: float) -> bool:
        """Whether to jump from the frame at ``position_s`` to ``target_s`` rather than decode
        the gap: when the target is more than ``gops`` of the longest keyframe gap ahead of
        both the position and the stretch known to hold no keyframe."""
        gap = self.longest_s if self.longest_s is not None else self.default_gap_s
        return target_s - max(position_s, self._keyless_until) > gops * gap


@dataclass
class Seek:
    """A seek for the request at ``target_s``, made after decoding up to ``resume_s``.

    ``fallback_s``: the last keyframe decoded before it (at or before ``resume_s``), where the
    decoder can restart if the seek lands too late; None: restart from the stream start.
    """

    target_s: float
    resume_s: float
    frame_gap_s: float
    fallback_s: float | None
    behind: bool | None = None  # whether it landed at or before resume_s (None: no frame yet)
    retreats: int = 0

    def land(self, t: float) -> Landing:
        """What the next frame out of the decoder, at ``t``, means for this seek."""
        first = self.behind is None
        if t <= self.resume_s + TIME_EPS_S:
            if first:
                self.behind = True
            return Landing.SEEN
        if first:
            self.behind = False
            late = t > self.target_s + TIME_EPS_S
            skipped = t - self.resume_s > _NEXT_FRAME_GAPS * self.frame_gap_s
            if late and skipped and self.retreats < 2:
                return Landing.OVERSHOT
        return Landing.LANDED

    @property
    def futile(self) -> bool:
        """It landed behind the frames decoded before it: no keyframe up to its target."""
        return bool(self.behind) and self.retreats == 0

    def retreat(self) -> float | None:
        """Where to seek after an overshoot: the keyframe decoded last, then the stream start
        (None). After that the landing is accepted: at the start it cannot overshoot."""
        self.retreats += 1
        self.behind = None
        if self.retreats == 1 and self.fallback_s is not None:
            return self.fallback_s
        self.retreats = 2
        return None
