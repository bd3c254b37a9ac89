"""Which frame source decodes a file: PyAV by default; decord, where it was measured right, when
``VIDLOC_FRAME_SOURCE=auto``.

The worker forces PyAV unless told otherwise (:func:`forced_source`): it was right on every file
of the decoder matrix, and decord, which must be checked against PyAV at run time, cost a short
clip 2.3x PyAV's CPU (bench/README.md, "Throughput"). The rule for ``auto``
(:func:`choose_source_name`, pure), from the decoder matrix (docs/decoders.md,
tests/unit/test_decoder_matrix.py: every container x codec decoded by both at the same times and
checked against the frame each picture must be):

1. a forced name (``force="decord"|"pyav"``) wins;
2. decord only for the containers and codecs where it gave the right picture at every time:
   MP4/MOV, Matroska/WebM and AVI, except AV1 (cannot open) and H.264 in AVI (cannot index).
   In MPEG-TS and MPEG-PS it returns wrong pictures (the last frame for every time, or frames
   shifted by up to half a second) with correct-looking times; it cannot open GIF. A rotated
   video goes to PyAV too (decord ignores the display matrix), and so does a file the probe
   found truncated or joined (decord cannot open a truncated MP4 at all);
3. big inputs go to PyAV: on 10 min of 1080p H.264 sampled at 1 fps (bench/README.md, one
   thread, best of 3 on a shared 2-core box) PyAV took 9.2 s / 67 MB peak RSS against decord's
   10.0 s / 114 MB and the full-decode floor's 7.9 s (PyAV was ahead in every run). So above
   ``DECORD_MAX_PIXEL_SECONDS`` (width x height x duration) PyAV decodes; below it the
   difference is about a second;
4. everything else: decord.

decord is checked, not trusted, at run time too (:class:`FallbackSource`): before it serves a
file, a few of the requested times are decoded by both decoders and must show the same picture
at the same time, and decord is asked whether it can serve the file at all (not open-GOP video,
where its pictures are a few frames off: too little for the picture check to see); every frame
it then serves must be the frame of its request (not later than the request by more than half
a frame). A decord that fails a check, refuses the file, or fails to open or decode
(DecodeFailed), is abandoned for PyAV, and the job's timeline says so with a
``decoder_fallback`` warning (:func:`source_warnings`).

Every decoder runs in a killable child process bounded by ``decode_timeout_s`` per message
(:mod:`workers.frames.isolated`): decord always, PyAV through :class:`IsolatedSource`, and the
probe too, so no file can hang a job thread in C code. A job's probe and sources share one
child (:func:`open_frame_source`); :func:`close_source` ends it when the job is done.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from vidloc.adapters.ranged_reader import RemoteObject
from vidloc.errors import ConfigError, DecodeFailed
from workers.frames.decord_source import DECORD_UNSUPPORTED_CODECS, DecordSource
from workers.frames.isolated import DecoderChild, IsolatedSource, PyAVInChild, probe_in_child
from workers.types import FrameSample, FrameSource, RGBImage, SourceWarning, VideoInfo

if TYPE_CHECKING:
    from contracts import JobWarning

logger = logging.getLogger(__name__)

SOURCE_NAMES = ("decord", "pyav")
# 720p for 5 minutes (~2.8e11 px*s): below this, decord's extra cost is about a second.
DECORD_MAX_PIXEL_SECONDS = 1280 * 720 * 300.0
# FFmpeg demuxer names of the containers decord decoded right in the matrix.
DECORD_CONTAINERS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi"})
# (container, codec) pairs inside those that decord still cannot serve.
DECORD_UNSUPPORTED_PAIRS = frozenset({("avi", "h264")})


def forced_source(setting: str) -> str | None:
    """``VIDLOC_FRAME_SOURCE`` as :func:`choose_source_name`'s ``force`` ("auto": the rule)."""
    return None if setting == "auto" else setting


def choose_source_name(info: VideoInfo, force: str | None = None) -> str:
    """The decoder for a probed file, by the rule in the module docstring."""
    if force is not None:
        if force not in SOURCE_NAMES:
            raise ConfigError(f"unknown frame source {force!r}; choose from {SOURCE_NAMES}")
        return force
    if info.container and info.container not in DECORD_CONTAINERS:
        return "pyav"
    if info.codec in DECORD_UNSUPPORTED_CODECS:
        return "pyav"
    if (info.container, info.codec) in DECORD_UNSUPPORTED_PAIRS or info.rotation:
        return "pyav"
    if info.warnings:  # truncated or joined files: the matrix measured PyAV on those
        return "pyav"
    if info.width * info.height * info.duration_s > DECORD_MAX_PIXEL_SECONDS:
        return "pyav"
    return "decord"


# Mean absolute grey difference (0-255) under which two decoders show "the same picture": one
# frame through decord's and FFmpeg's scalers differs by under 1 in the decoder matrix, wrong
# frames by 30-180. Neighbouring frames of a still shot also pass, which is harmless: what the
# localizer would see is the same.
SAME_PICTURE_MAX_DIFF = 8.0
# Requested times decoded by both decoders before decord may serve a file.
CHECK_POINTS = 4


def check_points(wanted: Sequence[float], count: int = CHECK_POINTS) -> list[float]:
    """``count`` requested times spread from the first to the last (ascending, distinct)."""
    if not wanted:
        return []
    last = len(wanted) - 1
    picks = {wanted[round(k * last / max(1, count - 1))] for k in range(count)}
    return sorted(picks)


def picture_difference(a: RGBImage, b: RGBImage) -> float:
    """Mean absolute difference of the two pictures' grey levels (0-255); inf if sizes differ."""
    if a.shape != b.shape:
        return float("inf")
    grey_a = a.astype(np.float32).mean(axis=2)
    grey_b = b.astype(np.float32).mean(axis=2)
    return float(np.abs(grey_a - grey_b).mean())


def disagreement(
    ours: Sequence[FrameSample], reference: Sequence[FrameSample], tolerance_s: float
) -> str | None:
    """Why ``ours`` are not the reference decoder's frames at the same requests, or None."""
    if len(ours) != len(reference):
        return f"returned {len(ours)} frames for {len(reference)} requests"
    for a, b in zip(ours, reference, strict=True):
        if abs(a.t_s - b.t_s) > tolerance_s:
            return f"returned the frame at {a.t_s:.3f} s where the one at {b.t_s:.3f} s is due"
        diff = picture_difference(a.pixels(), b.pixels())
        if diff > SAME_PICTURE_MAX_DIFF:
            return (
                f"returned a different picture for {b.t_s:.2f} s "
                f"(mean difference {diff:.0f} of 255)"
            )
    return None


def late_answer(requested_s: float, served_s: float, first_s: float, tolerance_s: float) -> bool:
    """Whether a frame at ``served_s`` cannot be the answer to ``requested_s``.

    The answer is the last frame at or before the request, or the first frame (at
    ``first_s``) for a request before it: never a frame later than both.
    """
    return served_s > max(requested_s, first_s) + tolerance_s


class FallbackSource:
    """decord, checked against PyAV, continuing with PyAV where it cannot be trusted."""

    name = "decord"

    def __init__(
        self, primary: FrameSource, fallback: FrameSource, frame_interval_s: float = 0.04
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        # Half a frame: how far a served frame's time may stray from the one due.
        self.tolerance_s = max(frame_interval_s / 2.0, 1e-3)
        self.used: list[str] = []  # which decoders served the last ``frames`` call
        self.warnings: list[SourceWarning] = []  # decord abandoned, and why (once per file)
        self._first_s: dict[str, float] = {}  # per path: the first frame's time, once checked
        self._abandoned: set[str] = set()

    def probe(self, path: str) -> VideoInfo:
        return self.primary.probe(path)

    def close(self) -> None:
        close_source(self.primary)
        close_source(self.fallback)

    def frames(
        self, path: str, times: Sequence[float], size: tuple[int, int]
    ) -> Iterator[FrameSample]:
        wanted = sorted(times)
        self.used = []
        if not wanted:
            return
        if path not in self._abandoned and path not in self._first_s:
            self._check(path, wanted, size)
        if path in self._abandoned:
            self.used = [self.fallback.name]
            yield from self.fallback.frames(path, wanted, size)
            return
        served = 0
        self.used = [self.primary.name]
        samples = self.primary.frames(path, wanted, size)
        try:
            for t in wanted:
                sample = next(samples, None)
                if sample is None:
                    reason = f"stopped after {served} of {len(wanted)} frames"
                    break
                if late_answer(t, sample.t_s, self._first_s[path], self.tolerance_s):
                    reason = f"answered {t:.3f} s with the frame at {sample.t_s:.3f} s"
                    break
                served += 1
                yield sample
            else:
                # Read the child's end of answer, so it stays for the job's next request.
                next(samples, None)
                return
        except DecodeFailed as exc:
            reason = f"failed after {served} of {len(wanted)} frames ({exc})"
        finally:
            close = getattr(samples, "close", None)
            if close is not None:
                close()
        self._abandon(path, reason)
        self.used.append(self.fallback.name)
        yield from self.fallback.frames(path, wanted[served:], size)

    def _check(self, path: str, wanted: Sequence[float], size: tuple[int, int]) -> None:
        """Decode a few of the requests with both decoders; abandon decord if they differ, or
        if it says it cannot serve the file (where its pictures are too close to tell)."""
        points = check_points(wanted)
        try:
            ours = list(self.primary.frames(path, points, size))
        except DecodeFailed as exc:
            self._abandon(path, f"cannot decode this file ({exc})")
            return
        try:
            reference = list(self.fallback.frames(path, points, size))
        except DecodeFailed as exc:
            # Nothing to check against; decord serves, and fails on its own if it must.
            logger.warning("%s could not check %s (%s)", self.fallback.name, path, exc)
            self._first_s[path] = ours[0].t_s if ours else 0.0
            return
        reason = disagreement(ours, reference, self.tolerance_s) or self._refusal(path)
        if reason is not None:
            self._abandon(path, reason)
            return
        self._first_s[path] = reference[0].t_s if reference else 0.0

    def _refusal(self, path: str) -> str | None:
        refuses = getattr(self.primary, "refuses", None)
        if refuses is None:
            return None
        try:
            reason: str | None = refuses(path)
        except DecodeFailed as exc:
            return f"cannot decode this file ({exc})"
        return reason

    def _abandon(self, path: str, reason: str) -> None:
        self._abandoned.add(path)
        message = f"{self.primary.name} {reason}; frames decoded with {self.fallback.name} instead"
        logger.warning("%s: %s", path, message)
        self.warnings.append(SourceWarning("decoder_fallback", message))


def source_warnings(source: object, info: VideoInfo) -> list[JobWarning]:
    """What the probe and the decoders could not do as asked, as the timeline's warnings.

    Call it after the frames were served: a decoder abandoned at run time is known only then.
    """
    # Imported here: every decoder child imports this package and needs no pydantic models.
    from contracts import JobWarning

    found: list[SourceWarning] = [*info.warnings, *getattr(source, "warnings", ())]
    return [JobWarning(code=w.code, message=w.message) for w in found]


def close_source(source: object) -> None:
    """End the decoder child behind a source (a no-op for sources without one)."""
    close = getattr(source, "close", None)
    if close is not None:
        close()


def make_source(
    name: str,
    *,
    decode_timeout_s: float = 600.0,
    threads: int = 0,
    fps: float = 0.0,
    child: DecoderChild | None = None,
) -> FrameSource:
    """A source by name; ``decord`` comes checked against and backed by PyAV; all run isolated,
    in ``child`` (one made here when not given), which :func:`close_source` ends.

    ``fps`` (the probe's) sets how far a served frame's time may stray: half a frame.
    """
    child = child or DecoderChild(decode_timeout_s)
    pyav = IsolatedSource(
        PyAVInChild(threads=threads), decode_timeout_s=decode_timeout_s, child=child
    )
    if name == "pyav":
        return pyav
    if name == "decord":
        return FallbackSource(
            DecordSource(threads=threads, decode_timeout_s=decode_timeout_s, child=child),
            pyav,
            frame_interval_s=1.0 / fps if fps > 0 else 0.04,
        )
    raise ConfigError(f"unknown frame source {name!r}; choose from {SOURCE_NAMES}")


def open_ranged_source(
    remote: RemoteObject, *, decode_timeout_s: float = 600.0, threads: int = 0
) -> IsolatedSource:
    """PyAV over ``remote`` read by ranges, in a decoder child of its own: a span's source.

    Not probed (the span carries the probe's facts) and never decord, which needs a file;
    its ``read_stats`` count what the decoder fetched from the store."""
    return IsolatedSource(
        PyAVInChild(threads=threads, remote=remote), decode_timeout_s=decode_timeout_s
    )


def open_frame_source(
    path: str,
    *,
    force: str | None = None,
    decode_timeout_s: float = 600.0,
    threads: int = 0,
) -> tuple[FrameSource, VideoInfo]:
    """Probe ``path`` and return the source chosen for it, with the probe's answer.

    The probe and every decode of the source run in one decoder child, kept between calls;
    :func:`close_source` ends it. Raises NotAVideo / DecodeFailed / ObjectMissing for files that
    cannot be sampled.
    """
    child = DecoderChild(decode_timeout_s)
    try:
        info = probe_in_child(path, decode_timeout_s, child)
    except BaseException:
        child.close()
        raise
    name = choose_source_name(info, force)
    logger.info(
        "frame source %s for %s (%s %dx%d, %.1f s)",
        name,
        path,
        info.codec,
        info.width,
        info.height,
        info.duration_s,
    )
    source = make_source(
        name, decode_timeout_s=decode_timeout_s, threads=threads, fps=info.fps, child=child
    )
    return source, info
