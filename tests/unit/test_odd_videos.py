"""Files that lie about themselves (issue 16, item 7): rotated phone videos, MPEG-TS recordings
joined end to end with a resolution change, truncated uploads. The probe must report what a
player shows, and the worker's frame source must serve it (or say what it could not)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from devkit.synth.matrix import HEIGHT, WIDTH, MatrixClip, frame_at, read_index, render_clip
from workers.frames import choose_source_name, open_frame_source, source_warnings
from workers.frames.probe import probe_video

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

FFMPEG = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]


def ffmpeg(*args: str | Path) -> None:
    subprocess.run([*FFMPEG, *map(str, args)], check=True, timeout=120)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_clip(MatrixClip("mp4", "h264"), tmp_path_factory.mktemp("odd"))


@pytest.mark.parametrize("degrees", [90, 270])
def test_a_rotated_video_has_its_display_size_and_upright_frames(
    clip: Path, tmp_path: Path, degrees: int
) -> None:
    rotated = tmp_path / f"rot{degrees}.mp4"
    # The display matrix only (what phones write); the stored picture stays 192x112.
    ffmpeg("-i", clip, "-c", "copy", "-metadata:s:v", f"rotate={degrees}", rotated)
    info = probe_video(str(rotated))
    assert (info.width, info.height) == (HEIGHT, WIDTH)
    assert info.rotation in (90, 270)
    assert choose_source_name(info) == "pyav"  # decord ignores the display matrix

    # What a player shows: FFmpeg's own autorotation of the first frame.
    shown = tmp_path / "shown.rgb"
    ffmpeg("-i", rotated, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", shown)
    player = np.fromfile(shown, dtype=np.uint8).reshape(WIDTH, HEIGHT, 3)

    source, _ = open_frame_source(str(rotated))
    times = [0.0, 1.02, 3.5, 5.9]
    samples = list(source.frames(str(rotated), times, (info.width, info.height)))
    assert samples[0].image.shape == (WIDTH, HEIGHT, 3)  # portrait: 192 high, 112 wide
    assert np.abs(samples[0].image.astype(int) - player.astype(int)).mean() < 3.0
    for t, s in zip(times, samples, strict=True):
        # Turned back, the barcode says which frame it is.
        upright = np.rot90(s.image, -info.rotation // 90)
        assert read_index(upright) == frame_at(t), t


@pytest.fixture(scope="module")
def ts_parts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A 3 s red 320x180 recording, then a 3 s blue 640x360 one, as MPEG-TS."""
    d = tmp_path_factory.mktemp("ts")
    for name, colour, size in (("a", "red", "320x180"), ("b", "blue", "640x360")):
        ffmpeg("-f", "lavfi", "-i", f"color={colour}:s={size}:r=25:d=3", "-c:v", "libx264",
               "-pix_fmt", "yuv420p", "-f", "mpegts", d / f"{name}.ts")  # fmt: skip
    # The same second recording with its clock continuing where the first stopped.
    ffmpeg("-i", d / "b.ts", "-c", "copy", "-output_ts_offset", "3", "-f", "mpegts", d / "b3.ts")
    return d / "a.ts", d / "b.ts", d / "b3.ts"


def joined(parts: list[Path], out: Path) -> Path:
    out.write_bytes(b"".join(p.read_bytes() for p in parts))
    return out


def colour(image: np.ndarray) -> str:
    r, _, b = (int(v) for v in image.reshape(-1, 3).mean(axis=0))
    return "red" if r > 150 and b < 80 else "blue" if b > 150 and r < 80 else "other"


def test_joined_recordings_with_a_resolution_change_are_decoded_whole(
    ts_parts: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    a, _, b3 = ts_parts
    path = joined([a, b3], tmp_path / "joined.ts")
    source, info = open_frame_source(str(path))
    assert info.duration_s == pytest.approx(6.0, abs=0.2) and info.warnings == ()
    times = [0.5, 2.5, 3.5, 5.5]
    samples = list(source.frames(str(path), times, (160, 90)))
    # The second half (640x360) comes scaled to the same frame size, and in its own colour.
    assert [colour(s.image) for s in samples] == ["red", "red", "blue", "blue"]
    assert [s.image.shape for s in samples] == [(90, 160, 3)] * 4
    assert source_warnings(source, info) == []


def test_joined_recordings_whose_clock_restarts_say_what_is_left_out(
    ts_parts: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    a, b, _ = ts_parts
    path = joined([a, b], tmp_path / "restart.ts")  # `cat a.ts b.ts`: both clocks start at 1.4 s
    source, info = open_frame_source(str(path))
    assert info.duration_s == pytest.approx(3.0, abs=0.1)
    [warning] = source_warnings(source, info)
    assert warning.code == "timestamps_restart"
    assert "0-3.00 s" in warning.message and "75 later packets" in warning.message
    # Up to the end of the first recording, every picture is the first recording's: the second
    # one's frames (same clock values) never answer for it.
    times = [0.5, 2.5, 2.9, 2.99]
    samples = list(source.frames(str(path), times, (160, 90)))
    assert [colour(s.image) for s in samples] == ["red"] * 4
    assert all(s.t_s <= 3.0 for s in samples)
