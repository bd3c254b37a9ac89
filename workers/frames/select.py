"""Which frame source decodes a file: decord first, PyAV where decord cannot or should not.

The rule (:func:`choose_source_name`, pure):

1. a forced name (``force="decord"|"pyav"``) wins;
2. codecs decord 0.6 cannot open (AV1) go to PyAV;
3. big inputs go to PyAV: on 10 min of 1080p H.264 sampled at 1 fps (bench/README.md, one
   thread, best of 3 on a shared 2-core box) PyAV took 9.2 s / 67 MB peak RSS against decord's
   10.0 s / 114 MB and the full-decode floor's 7.9 s (PyAV was ahead in every run). So above
   ``DECORD_MAX_PIXEL_SECONDS`` (width x height x duration) PyAV decodes; below it the
   difference is about a second;
4. everything else: decord.

And at run time, :class:`FallbackSource` switches to PyAV for the remaining times when decord
fails to open or decode a file (DecodeFailed), so an odd file decord chokes on is still served.

Every decoder runs in a killable child process bounded by ``decode_timeout_s`` per message
(:mod:`workers.frames.isolated`): decord always, PyAV through :class:`IsolatedSource`, and the
probe too, so no file can hang a job thread in C code.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from vidloc.errors import ConfigError, DecodeFailed
from workers.frames.decord_source import DECORD_UNSUPPORTED_CODECS, DecordSource
from workers.frames.isolated import IsolatedSource, probe_in_child
from workers.frames.pyav_source import PyAVSource
from workers.types import FrameSample, FrameSource, VideoInfo

logger = logging.getLogger(__name__)

SOURCE_NAMES = ("decord", "pyav")
# 720p for 5 minutes (~2.8e11 px*s): below this, decord's extra cost is about a second.
DECORD_MAX_PIXEL_SECONDS = 1280 * 720 * 300.0


def choose_source_name(info: VideoInfo, force: str | None = None) -> str:
    """The decoder for a probed file, by the rule in the module docstring."""
    if force is not None:
        if force not in SOURCE_NAMES:
            raise ConfigError(f"unknown frame source {force!r}; choose from {SOURCE_NAMES}")
        return force
    if info.codec in DECORD_UNSUPPORTED_CODECS:
        return "pyav"
    if info.width * info.height * info.duration_s > DECORD_MAX_PIXEL_SECONDS:
        return "pyav"
    return "decord"


class FallbackSource:
    """decord, continuing with PyAV from the first time decord could not serve."""

    name = "decord"

    def __init__(self, primary: FrameSource, fallback: FrameSource) -> None:
        self.primary = primary
        self.fallback = fallback
        self.used: list[str] = []  # which decoders served the last ``frames`` call

    def probe(self, path: str) -> VideoInfo:
        return self.primary.probe(path)

    def frames(
        self, path: str, times: Sequence[float], size: tuple[int, int]
    ) -> Iterator[FrameSample]:
        wanted = sorted(times)
        served = 0
        self.used = [self.primary.name]
        try:
            for sample in self.primary.frames(path, wanted, size):
                served += 1
                yield sample
            return
        except DecodeFailed as exc:
            logger.warning(
                "%s failed after %d of %d frames of %s (%s); continuing with %s",
                self.primary.name,
                served,
                len(wanted),
                path,
                exc,
                self.fallback.name,
            )
        self.used.append(self.fallback.name)
        yield from self.fallback.frames(path, wanted[served:], size)


def make_source(name: str, *, decode_timeout_s: float = 600.0, threads: int = 0) -> FrameSource:
    """A source by name; ``decord`` comes wrapped with the PyAV fallback; all run isolated."""
    pyav = IsolatedSource(PyAVSource(threads=threads), decode_timeout_s=decode_timeout_s)
    if name == "pyav":
        return pyav
    if name == "decord":
        return FallbackSource(
            DecordSource(threads=threads, decode_timeout_s=decode_timeout_s), pyav
        )
    raise ConfigError(f"unknown frame source {name!r}; choose from {SOURCE_NAMES}")


def open_frame_source(
    path: str,
    *,
    force: str | None = None,
    decode_timeout_s: float = 600.0,
    threads: int = 0,
) -> tuple[FrameSource, VideoInfo]:
    """Probe ``path`` and return the source chosen for it, with the probe's answer.

    Raises NotAVideo / DecodeFailed / ObjectMissing for files that cannot be sampled.
    """
    info = probe_in_child(path, decode_timeout_s)
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
    return make_source(name, decode_timeout_s=decode_timeout_s, threads=threads), info
