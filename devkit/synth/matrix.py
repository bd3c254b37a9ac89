"""Clips for the decoder matrix: every container x codec the worker may meet, each frame readable.

Every frame carries its own index as a 16-bit barcode (two rows of white/black blocks along the
top: the low byte, then the high byte) on a background whose colour changes every second, so a
decoded picture says exactly which frame it is: "the right picture at time t" is checkable to the
frame, not only to the colour. Clips are tiny (192x112, 25 fps, 6 s) so the whole matrix encodes
in a few seconds.

``IRREGULAR`` holds the same clips with keyframes where real encoders put them besides a fixed
interval (:data:`KEYFRAME_LAYOUTS`): seeking decoders meet those in real footage.
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
_ROW_BITS = 8
BITS = 2 * _ROW_BITS  # up to 65535 frames: 43 min at 25 fps
_BLOCK = WIDTH // _ROW_BITS  # 24 px per bit
# One background per second: far apart in hue so a wrong second is obvious too.
BACKGROUNDS: tuple[tuple[int, int, int], ...] = (
    (200, 30, 30),
    (30, 160, 40),
    (40, 60, 200),
    (210, 190, 30),
    (150, 40, 170),
    (30, 170, 170),
)
_BACKDROPS = tuple(np.full((HEIGHT, WIDTH, 3), colour, dtype=np.uint8) for colour in BACKGROUNDS)

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


# Encoders that take -g and -force_key_frames (libsvtav1 1.4 honours only a long -g: no forced
# keyframes, a single one at -g 1), and those whose B-frames can refer across a keyframe. The
# long-GOP layout leaves out x265 and MPEG-4, the all-keyframe one x265 (slow to encode; their
# decoders are met in the other layouts), to keep the family's test time down.
_TOLD = frozenset({"h264", "h265", "mpeg4", "vp9"})
_B_FRAMES = frozenset({"h264", "h265", "mpeg4"})


@dataclass(frozen=True)
class KeyframeLayout:
    """Where the encoder puts keyframes: every ``interval`` frames and at the ``forced`` times
    (on the frame nearest each), nowhere else (its own scene-cut placement is off)."""

    duration_s: float
    interval: int
    forced: tuple[float, ...] = ()
    open_gop: bool = False  # pictures just before a keyframe may refer to the GOP before it
    codecs: frozenset[str] = _TOLD


_SINGLE = 9999  # an interval longer than any clip: only forced keyframes
KEYFRAME_LAYOUTS: dict[str, KeyframeLayout] = {
    # The file of issue 21: libvpx's keyframe every 128 frames, one more at a scene cut 0.4 s
    # after one (25.6 s, 26.0 s).
    "scenecut45": KeyframeLayout(
        45.0, _SINGLE, (0, 5.12, 10.24, 15.36, 20.48, 25.6, 26.0, 30.72, 35.84, 40.96)
    ),
    # Scene cuts close together in a short clip: pairs 0.44 s and 0.04 s apart.
    "scenecut": KeyframeLayout(8.0, _SINGLE, (0, 2.56, 3.0, 3.04, 5.12, 5.56, 7.68)),
    # Open GOP needs B-frames that refer across a keyframe: x264, x265, MPEG-4 Part 2.
    "opengop": KeyframeLayout(6.0, 25, open_gop=True, codecs=_B_FRAMES),
    "longgop": KeyframeLayout(26.0, 600, codecs=frozenset({"h264", "vp9", "av1"})),  # 0, 24 s
    "allkey": KeyframeLayout(4.0, 1, codecs=frozenset({"h264", "mpeg4", "vp9"})),
    # -force_key_frames at odd times: 0.3 and 0.35 land on consecutive frames (0.32, 0.36).
    "oddforced": KeyframeLayout(9.0, _SINGLE, (0, 0.3, 0.35, 1.01, 4.44, 7.77, 8.5)),
}


@dataclass(frozen=True)
class MatrixClip:
    container: str  # file extension: mp4, mkv, webm, avi, mov, ts, mpg, gif
    codec: str  # encoder family, as in _ENCODERS
    keyframes: str = ""  # a KEYFRAME_LAYOUTS name; "" for the encoder's own placement

    @property
    def name(self) -> str:
        return "_".join(filter(None, (self.codec, self.container, self.keyframes)))

    @property
    def filename(self) -> str:
        return f"matrix_{'_'.join(filter(None, (self.codec, self.keyframes)))}.{self.container}"

    @property
    def frame_count(self) -> int:
        layout = KEYFRAME_LAYOUTS.get(self.keyframes)
        return round((layout.duration_s if layout else DURATION_S) * FPS)


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
# Containers with a keyframe index, where decoders seek: each of their codecs in every layout
# the codec can be told to make (MJPEG is all keyframes whatever it is told).
INDEXED_CONTAINERS = ("mp4", "mkv", "webm", "mov")
IRREGULAR: tuple[MatrixClip, ...] = (
    MatrixClip("webm", "vp9", "scenecut45"),
    *(
        MatrixClip(clip.container, clip.codec, name)
        for clip in MATRIX
        if clip.container in INDEXED_CONTAINERS
        for name, layout in KEYFRAME_LAYOUTS.items()
        if name != "scenecut45" and clip.codec in layout.codecs
    ),
)


def keyframe_args(layout: KeyframeLayout, codec: str) -> list[str]:
    """ffmpeg output options that make ``codec``'s encoder place keyframes as ``layout`` says."""
    args = ["-g", str(layout.interval)]
    if layout.forced:
        args += ["-force_key_frames", ",".join(f"{t:g}" for t in layout.forced)]
    if codec == "h264":
        x264 = "scenecut=0:open-gop=1" if layout.open_gop else "scenecut=0"
        args += ["-bf", "3", "-x264-params", x264]
    elif codec == "h265":
        open_gop = int(layout.open_gop)
        args += [
            "-forced-idr",
            "1",
            "-x265-params",
            f"log-level=error:scenecut=0:open-gop={open_gop}",
        ]
    elif codec == "mpeg4":
        args += ["-sc_threshold", "1000000000"]
        args += ["-bf", "2"] if layout.open_gop else []
    return args


def draw_frame(index: int) -> np.ndarray:
    """Frame ``index`` (RGB): the second's background, the index as a barcode on top."""
    image = _BACKDROPS[(index // FPS) % len(BACKGROUNDS)].copy()
    for row in range(BITS // _ROW_BITS):
        byte = (index >> (row * _ROW_BITS)) & 0xFF
        bits = np.array([(byte >> (_ROW_BITS - 1 - bit)) & 1 for bit in range(_ROW_BITS)])
        bar = np.repeat(bits.astype(np.uint8) * 255, _BLOCK)  # one value per column
        image[row * _BLOCK : (row + 1) * _BLOCK, : bar.size] = bar[None, :, None]
    return image


def read_index(image: np.ndarray) -> int:
    """The frame index a decoded picture (any size) shows, read from its barcode."""
    h, w = image.shape[:2]
    rows = BITS // _ROW_BITS
    bar = h * _BLOCK / HEIGHT
    grey = image[: int(np.ceil(rows * bar))].astype(np.float32).mean(axis=2)
    block = w / _ROW_BITS
    value = 0
    for row in range(rows):
        y0 = int((row + 0.25) * bar)
        y1 = max(y0 + 1, int((row + 0.75) * bar))
        for bit in range(_ROW_BITS):
            x0, x1 = int(bit * block + block / 4), int((bit + 0.75) * block)
            on = int(grey[y0:y1, x0:x1].mean() > 128)
            value |= on << (row * _ROW_BITS + _ROW_BITS - 1 - bit)
    return value


def frame_at(t_s: float, frame_count: int = FRAME_COUNT) -> int:
    """The frame a player shows at ``t_s``: the last one starting at or before it."""
    return min(frame_count - 1, max(0, int(np.floor(t_s * FPS + 1e-6))))


def render_clip(clip: MatrixClip, directory: Path) -> Path:
    """Encode ``clip`` into ``directory`` (cached by file name) and return its path."""
    path = directory / clip.filename
    if path.exists():
        return path
    if shutil.which("ffmpeg") is None:
        raise VidlocError("ffmpeg not found on PATH", code="synth_failed")
    directory.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".partial.{clip.filename}")
    layout = KEYFRAME_LAYOUTS.get(clip.keyframes)
    keyframes = keyframe_args(layout, clip.codec) if layout else []
    args = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}",
        "-framerate", str(FPS), "-i", "pipe:0", "-an", "-threads", "2",
        *_ENCODERS[clip.codec].split(), *keyframes, *_MUXERS.get(clip.container, "").split(),
        str(partial),
    ]  # fmt: skip
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=log)
        assert proc.stdin is not None
        try:
            for index in range(clip.frame_count):
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
