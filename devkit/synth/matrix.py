"""Clips for the decoder matrix: every container x codec the worker may meet, each frame readable.

Every frame carries its own index as an 8-bit barcode (white/black blocks along the top) on a
background whose colour changes every second, so a decoded picture says exactly which frame it
is: "the right picture at time t" is checkable to the frame, not only to the colour. Clips are
tiny (192x112, 25 fps, 6 s) so the whole matrix encodes in a few seconds.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidloc.errors import VidlocError

WIDTH, HEIGHT = 192, 112
FPS = 25
DURATION_S = 6.0
FRAME_COUNT = int(DURATION_S * FPS)
BITS = 8
_BLOCK = WIDTH // BITS  # 24 px per bit
# One background per second: far apart in hue so a wrong second is obvious too.
BACKGROUNDS: tuple[tuple[int, int, int], ...] = (
    (200, 30, 30),
    (30, 160, 40),
    (40, 60, 200),
    (210, 190, 30),
    (150, 40, 170),
    (30, 170, 170),
)

# (name, file extension, ffmpeg output options); all pixel formats are 4:2:0 except GIF/MJPEG.
_ENCODERS: dict[str, str] = {
    "h264": "-c:v libx264 -preset veryfast -pix_fmt yuv420p",
    "h265": "-c:v libx265 -preset veryfast -pix_fmt yuv420p -x265-params log-level=error",
    "vp9": "-c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 0 -crf 30 -pix_fmt yuv420p",
    "av1": "-c:v libsvtav1 -preset 12 -crf 35 -pix_fmt yuv420p",
    "mpeg4": "-c:v mpeg4 -q:v 3 -pix_fmt yuv420p",
    "mpeg2": "-c:v mpeg2video -q:v 3 -pix_fmt yuv420p -g 12 -bf 2",
    "mpeg1": "-c:v mpeg1video -q:v 3 -pix_fmt yuv420p -g 12 -bf 2",
    "mjpeg": "-c:v mjpeg -q:v 3 -pix_fmt yuvj420p",
    "gif": "-c:v gif",
}
_MUXERS: dict[str, str] = {"ts": "-f mpegts", "mpg": "-f mpeg", "mov": "-f mov"}


@dataclass(frozen=True)
class MatrixClip:
    container: str  # file extension: mp4, mkv, webm, avi, mov, ts, mpg, gif
    codec: str  # encoder family, as in _ENCODERS

    @property
    def name(self) -> str:
        return f"{self.codec}_{self.container}"

    @property
    def filename(self) -> str:
        return f"matrix_{self.codec}.{self.container}"


MATRIX: tuple[MatrixClip, ...] = tuple(
    MatrixClip(container, codec)
    for container, codecs in (
        ("mp4", ("h264", "h265", "mpeg4", "av1")),
        ("mkv", ("h264", "h265", "vp9", "av1")),
        ("webm", ("vp9", "av1")),
        ("avi", ("mjpeg", "mpeg4", "h264")),
        ("mov", ("h264", "mjpeg")),
        ("ts", ("h264", "h265", "mpeg2")),
        ("mpg", ("mpeg2", "mpeg1")),
        ("gif", ("gif",)),
    )
    for codec in codecs
)


def draw_frame(index: int) -> np.ndarray:
    """Frame ``index`` (RGB): the second's background, the index as a barcode on top."""
    image = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[:] = BACKGROUNDS[(index // FPS) % len(BACKGROUNDS)]
    for bit in range(BITS):
        on = (index >> (BITS - 1 - bit)) & 1
        image[:_BLOCK, bit * _BLOCK : (bit + 1) * _BLOCK] = 255 if on else 0
    return image


def read_index(image: np.ndarray) -> int:
    """The frame index a decoded picture (any size) shows, read from its barcode."""
    h, w = image.shape[:2]
    grey = image.astype(np.float32).mean(axis=2)
    bar = round(h * _BLOCK / HEIGHT)
    block = w / BITS
    value = 0
    for bit in range(BITS):
        x0, x1 = int(bit * block + block / 4), int((bit + 0.75) * block)
        y0, y1 = bar // 4, max(bar // 4 + 1, 3 * bar // 4)
        value = (value << 1) | int(grey[y0:y1, x0:x1].mean() > 128)
    return value


def frame_at(t_s: float) -> int:
    """The frame a player shows at ``t_s``: the last one starting at or before it."""
    return min(FRAME_COUNT - 1, max(0, int(np.floor(t_s * FPS + 1e-6))))


def render_clip(clip: MatrixClip, directory: Path) -> Path:
    """Encode ``clip`` into ``directory`` (cached by file name) and return its path."""
    path = directory / clip.filename
    if path.exists():
        return path
    if shutil.which("ffmpeg") is None:
        raise VidlocError("ffmpeg not found on PATH", code="synth_failed")
    directory.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".partial.{clip.filename}")
    args = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}",
        "-framerate", str(FPS), "-i", "pipe:0", "-an", "-threads", "2",
        *_ENCODERS[clip.codec].split(), *_MUXERS.get(clip.container, "").split(), str(partial),
    ]  # fmt: skip
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=log)
        assert proc.stdin is not None
        try:
            for index in range(FRAME_COUNT):
                proc.stdin.write(draw_frame(index).tobytes())
        except BrokenPipeError:
            pass  # ffmpeg died; its status and log say why
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            rc = proc.wait()
        if rc != 0:
            log.seek(0)
            detail = log.read().decode("utf-8", "replace")[-2000:]
            partial.unlink(missing_ok=True)
            raise VidlocError(f"ffmpeg failed ({rc}) on {clip.name}: {detail}", code="synth_failed")
    partial.replace(path)
    return path
