"""Encode synthetic videos with the system ffmpeg, plus broken and non-video inputs for tests.

Frames are drawn one at a time and piped to ffmpeg as raw RGB, so memory stays at one frame
whatever the length. ffmpeg failures become :class:`vidloc.errors.VidlocError` with code
``synth_failed``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from devkit.synth.draw import FrameDrawer
from devkit.synth.spec import GroundTruth, VideoSpec
from vidloc.errors import VidlocError

logger = logging.getLogger(__name__)

# Encoder options per codec (space-separated; no value contains a space).
_CODEC_ARGS: dict[str, str] = {
    "h264": "-c:v libx264 -preset ultrafast -pix_fmt yuv420p",
    "h265": "-c:v libx265 -preset ultrafast -pix_fmt yuv420p -x265-params log-level=error",
    "vp9": (
        "-c:v libvpx-vp9 -deadline realtime -cpu-used 8 -row-mt 1 -b:v 0 -crf 36 -pix_fmt yuv420p"
    ),
    "av1": "-c:v libsvtav1 -preset 12 -crf 40 -pix_fmt yuv420p",
    "mpeg4": "-c:v mpeg4 -q:v 4 -pix_fmt yuv420p",
    "mjpeg": "-c:v mjpeg -q:v 4 -pix_fmt yuvj420p",
}


def synth_error(message: str) -> VidlocError:
    return VidlocError(message, code="synth_failed")


def encode_args(spec: VideoSpec, path: Path, *, threads: int = 2) -> list[str]:
    """The ffmpeg command line that turns raw RGB frames on stdin into ``spec``'s file."""
    w, h = spec.size
    args = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
        "-framerate", f"{spec.fps:g}", "-i", "pipe:0",
        "-an", "-threads", str(threads),
    ]  # fmt: skip
    if spec.vfr:
        # Drop frames inside each stretch; kept frames keep their original timestamps, so the
        # container holds irregular times while the ground truth stays in real seconds.
        terms = "*".join(
            f"not(gte(t,{s.start_s:g})*lt(t,{s.end_s:g})*mod(n,{s.keep_every}))"
            for s in spec.vfr_stretches
        )
        args += ["-vf", f"select='{terms}'", "-fps_mode", "vfr"]
    args += _CODEC_ARGS[spec.codec].split()
    if spec.gop:
        if spec.codec == "h265":
            args[args.index("log-level=error")] = f"log-level=error:keyint={spec.gop}"
        else:
            args += ["-g", str(spec.gop)]
    if spec.ext in ("mp4", "mov"):
        args += ["-movflags", "+faststart"]  # header first: a truncated copy still opens
    args.append(str(path))
    return args


def render(spec: VideoSpec, path: Path, *, threads: int = 2) -> GroundTruth:
    """Draw and encode ``spec`` into ``path`` (written atomically); return its ground truth."""
    if shutil.which("ffmpeg") is None:
        raise synth_error("ffmpeg not found on PATH (Debian: apt-get install ffmpeg)")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    drawer = FrameDrawer(spec)
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            encode_args(spec, partial, threads=threads),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        assert proc.stdin is not None
        try:
            for index in range(spec.source_frame_count):
                proc.stdin.write(drawer.draw(index).tobytes())
        except BrokenPipeError:
            pass  # ffmpeg died; its exit status and log say why
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            rc = proc.wait()
        if rc != 0:
            log.seek(0)
            detail = log.read().decode("utf-8", "replace").strip()[-2000:]
            partial.unlink(missing_ok=True)
            raise synth_error(f"ffmpeg failed ({rc}) encoding {spec.name}: {detail}")
    os.replace(partial, path)
    logger.info("rendered %s (%s, %.1f s) to %s", spec.name, spec.codec, spec.duration_s, path)
    return spec.ground_truth()


def ensure_rendered(spec: VideoSpec, directory: Path) -> Path:
    """Render ``spec`` into ``directory`` unless an identical render is already there."""
    path = directory / spec.filename
    stamp = directory / f"{spec.filename}.spec.json"
    fingerprint = spec.fingerprint()
    if path.exists() and stamp.exists() and stamp.read_text(encoding="utf-8") == fingerprint:
        return path
    render(spec, path)
    stamp.write_text(fingerprint, encoding="utf-8")
    return path


def corrupt_copy(
    src: Path, dst: Path, mode: Literal["truncate", "garble"] = "truncate", seed: int = 0
) -> Path:
    """Copy ``src`` to ``dst`` broken: cut at half its length, or its middle third garbled."""
    data = bytearray(src.read_bytes())
    if mode == "truncate":
        data = data[: len(data) // 2]
    else:
        rng = random.Random(seed)
        third = len(data) // 3
        data[third : 2 * third] = rng.randbytes(third)
    dst.write_bytes(bytes(data))
    return dst


def write_audio_only(path: Path, duration_s: float = 2.0) -> Path:
    """A file with one sine audio stream and no video (lavfi ``sine`` source)."""
    _run_ffmpeg(["-f", "lavfi", "-i", f"sine=frequency=440:duration={duration_s:g}", str(path)])
    return path


def write_still_image(path: Path, width: int = 320, height: int = 180) -> Path:
    """One still picture (format from the suffix: .png, .jpg) drawn like a synthetic frame."""
    image = np.full((height, width, 3), 128, dtype=np.uint8)
    cv2.circle(image, (width // 2, height // 2), height // 3, (30, 30, 230), -1)
    if not cv2.imwrite(str(path), image):
        raise synth_error(f"could not write image {path}")
    return path


def _run_ffmpeg(args: list[str]) -> None:
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    except FileNotFoundError as exc:
        raise synth_error("ffmpeg not found on PATH") from exc
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode("utf-8", "replace").strip()[-2000:]
        raise synth_error(f"ffmpeg failed: {detail}") from exc
    except subprocess.TimeoutExpired as exc:
        raise synth_error("ffmpeg timed out") from exc
