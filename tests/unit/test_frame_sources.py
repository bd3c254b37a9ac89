"""Frame sources on generated media: probe values, true frame times, events visible where the
ground truth says, decord/PyAV agreement, AV1 fallback and errors for bad inputs."""

from __future__ import annotations

import multiprocessing
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import decord
import numpy as np
import pytest

from devkit.synth.catalogue import spec_named, standard_specs
from devkit.synth.draw import visible_labels
from devkit.synth.palette import PALETTE
from devkit.synth.render import (
    corrupt_copy,
    ensure_rendered,
    write_audio_only,
    write_still_image,
)
from devkit.synth.spec import VideoSpec
from vidloc.errors import ConfigError, DecodeFailed, NotAVideo, ObjectMissing
from workers.frames import choose_source_name, open_frame_source
from workers.frames.decord_source import DecordSource
from workers.frames.probe import looks_like_video_container
from workers.frames.pyav_source import PyAVSource
from workers.frames.seeking import KeyframeGaps, Landing, Seek
from workers.frames.select import FallbackSource
from workers.frames.timing import select_index
from workers.types import FrameSource, VideoInfo

SIZE = (320, 192)
CODEC_NAMES = {"h264": "h264", "h265": "hevc", "vp9": "vp9", "av1": "av1"}
CODEC_NAMES |= {"mpeg4": "mpeg4", "mjpeg": "mjpeg"}
ALL = [pytest.param(s.name, id=s.name) for s in standard_specs()]
DECORDABLE = [pytest.param(s.name, id=s.name) for s in standard_specs() if s.codec != "av1"]
SOURCES: dict[str, Callable[[], FrameSource]] = {"decord": DecordSource, "pyav": PyAVSource}


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("synth")
    for spec in standard_specs():
        ensure_rendered(spec, directory)
    return directory


def path_of(media: Path, name: str) -> str:
    return str(media / spec_named(name).filename)


def expected_labels(spec: VideoSpec, t: float) -> tuple[str, ...]:
    shown = spec.labels_at(t)
    return tuple(e.label for e in PALETTE if e.label in shown)


def odd_times(spec: VideoSpec, step: float = 0.71) -> list[float]:
    """Request times that fall between frames, so the choice rule matters."""
    return [round(0.37 + k * step, 3) for k in range(int((spec.duration_s - 0.4) / step))]


# ---------------------------------------------------------------- probe


@pytest.mark.parametrize("name", ALL)
def test_probe_reports_duration_rate_size_codec(media: Path, name: str) -> None:
    spec = spec_named(name)
    info = PyAVSource().probe(path_of(media, name))
    assert (info.width, info.height) == spec.size
    assert info.codec == CODEC_NAMES[spec.codec]
    assert info.duration_s == pytest.approx(spec.duration_s, abs=1.5 / spec.fps)
    expected_fps = len(spec.frame_times()) / spec.duration_s if spec.vfr else spec.fps
    assert info.fps == pytest.approx(expected_fps, rel=0.02)
    if info.frame_count is not None:
        assert info.frame_count == len(spec.frame_times())


# ---------------------------------------------------------------- frames


@pytest.mark.parametrize("source_name", ["decord", "pyav"])
@pytest.mark.parametrize("name", DECORDABLE)
def test_frames_are_the_real_frames_at_the_requested_times(
    media: Path, name: str, source_name: str
) -> None:
    spec = spec_named(name)
    frame_times = spec.frame_times()
    times = odd_times(spec)
    samples = list(SOURCES[source_name]().frames(path_of(media, name), times, SIZE))
    assert len(samples) == len(times)
    half_frame = 0.5 / spec.fps
    for t, sample in zip(times, samples, strict=True):
        truth_t = frame_times[select_index(frame_times, t)]
        # t_s is the frame's own container time, not the request.
        assert sample.t_s == pytest.approx(truth_t, abs=1e-3), t
        assert sample.t_s <= t + 1e-3 or t < frame_times[0]  # decord times are float32
        if not spec.vfr:
            assert abs(sample.t_s - t) <= 2 * half_frame
        assert sample.image.shape == (SIZE[1], SIZE[0], 3)
        assert sample.image.dtype == np.uint8
        assert visible_labels(sample.image) == expected_labels(spec, truth_t), (t, sample.t_s)


@pytest.mark.parametrize("source_name", ["decord", "pyav"])
def test_vfr_times_come_from_timestamps_not_from_index_over_fps(
    media: Path, source_name: str
) -> None:
    spec = spec_named("vfr_h264")
    path = path_of(media, "vfr_h264")
    reader = decord.VideoReader(path, ctx=decord.cpu(0))
    true_starts = reader.get_frame_timestamp(range(len(reader)))[:, 0]
    by_index = np.arange(len(reader)) / reader.get_avg_fps()
    assert np.max(np.abs(true_starts - by_index)) > 2.0  # index / avg fps is off by seconds
    assert true_starts == pytest.approx(spec.frame_times(), abs=1e-3)
    del reader

    # In [3, 9) only every 5th frame is kept: 3.9 shows the frame from 3.5 (no triangle yet),
    # 4.2 the one from 4.0 (triangle from 4.0 s), 12.34 a normal-rate frame with the star.
    times = [3.9, 4.2, 8.7, 12.34]
    samples = list(SOURCES[source_name]().frames(path, times, SIZE))
    assert [s.t_s for s in samples] == pytest.approx([3.5, 4.0, 8.5, 12.3], abs=1e-3)
    assert [visible_labels(s.image) for s in samples] == [
        (),
        ("blue triangle",),
        (),
        ("yellow star",),
    ]


@pytest.mark.parametrize("name", ["h264_mp4", "long_h264", "mjpeg_avi", "vp9_webm"])
def test_decord_and_pyav_agree(media: Path, name: str) -> None:
    spec = spec_named(name)
    times = odd_times(spec, step=1.0)
    a = list(DecordSource().frames(path_of(media, name), times, SIZE))
    b = list(PyAVSource().frames(path_of(media, name), times, SIZE))
    assert [x.t_s for x in a] == pytest.approx([y.t_s for y in b], abs=1e-4)
    for x, y in zip(a, b, strict=True):
        # Same frame, possibly a different scaler: tiny pixel differences only.
        assert np.abs(x.image.astype(int) - y.image.astype(int)).mean() < 3.0, x.t_s


@pytest.mark.parametrize("source_name", ["decord", "pyav"])
def test_one_sample_per_request_in_time_order(media: Path, source_name: str) -> None:
    path = path_of(media, "h264_mp4")
    samples = list(SOURCES[source_name]().frames(path, [5.03, 1.05, 1.06, 0.0], SIZE))
    assert [s.t_s for s in samples] == pytest.approx([0.0, 1.0, 1.0, 5.0], abs=1e-3)
    assert list(SOURCES[source_name]().frames(path, [], SIZE)) == []


def test_pyav_seeks_over_long_gaps_and_still_finds_the_right_frames(media: Path) -> None:
    spec = spec_named("long_h264")  # keyframes every 10 s: gaps of 40 s are seeked over
    times = [2.1, 11.1, 59.9, 61.0, 99.7]
    samples = list(PyAVSource().frames(path_of(media, "long_h264"), times, SIZE))
    assert [s.t_s for s in samples] == pytest.approx([2.0, 11.0, 59.8, 61.0, 99.6], abs=1e-3)
    for s in samples:
        assert visible_labels(s.image) == expected_labels(spec, s.t_s), s.t_s


def test_mpeg_ts_times_start_at_zero_in_both_sources(media: Path, tmp_path: Path) -> None:
    ts = tmp_path / "clip.ts"  # MPEG-TS clocks start at 1.4 s; players and timelines at 0
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", path_of(media, "h264_mp4"), "-c", "copy", ts],
        check=True,
    )
    for source in (DecordSource(), PyAVSource()):
        samples = list(source.frames(str(ts), [0.05, 1.55], SIZE))
        assert [s.t_s for s in samples] == pytest.approx([0.0, 1.5], abs=1e-3), source.name
        assert visible_labels(samples[1].image) == ("red circle",)


# ---------------------------------------------------------------- choosing a source


def test_av1_goes_to_pyav_and_decord_cannot_open_it(media: Path) -> None:
    path = path_of(media, "av1_mkv")
    source, info = open_frame_source(path)
    assert source.name == "pyav" and info.codec == "av1"
    with pytest.raises(DecodeFailed, match="cannot open"):
        list(DecordSource().frames(path, [1.0], SIZE))
    fallback = FallbackSource(DecordSource(), PyAVSource(), frame_interval_s=0.1)
    samples = list(fallback.frames(path, [1.55, 4.55], SIZE))
    # decord fails its check on the first call: PyAV serves everything, and the timeline hears.
    assert fallback.used == ["pyav"]
    assert [w.code for w in fallback.warnings] == ["decoder_fallback"]
    assert "cannot decode" in fallback.warnings[0].message
    assert [s.t_s for s in samples] == pytest.approx([1.5, 4.5], abs=1e-3)
    assert [visible_labels(s.image) for s in samples] == [("yellow star",), ("red circle",)]


def test_small_files_go_to_decord(media: Path) -> None:
    source, _ = open_frame_source(path_of(media, "h264_mp4"))
    assert isinstance(source, FallbackSource) and source.primary.name == "decord"
    [sample] = list(source.frames(path_of(media, "h264_mp4"), [2.0], SIZE))
    assert sample.t_s == 2.0
    assert source.used == ["decord"]
    forced, _ = open_frame_source(path_of(media, "h264_mp4"), force="pyav")
    assert forced.name == "pyav"


def info(codec: str, w: int, h: int, duration: float) -> VideoInfo:
    return VideoInfo(duration_s=duration, fps=25.0, width=w, height=h, codec=codec)


@pytest.mark.parametrize(
    ("probe", "force", "expected"),
    [
        pytest.param(info("h264", 640, 360, 60), None, "decord", id="small"),
        pytest.param(info("av1", 640, 360, 60), None, "pyav", id="av1"),
        pytest.param(info("h264", 1920, 1080, 600), None, "pyav", id="1080p-10min"),
        pytest.param(info("h264", 1280, 720, 120), None, "decord", id="720p-2min"),
        pytest.param(info("h264", 1920, 1080, 600), "decord", "decord", id="forced"),
    ],
)
def test_choice_rule(probe: VideoInfo, force: str | None, expected: str) -> None:
    assert choose_source_name(probe, force) == expected


def test_unknown_source_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        choose_source_name(info("h264", 64, 64, 1), "opencv")


# ---------------------------------------------------------------- bad inputs


def make_bad(kind: str, media: Path, tmp: Path) -> Path:
    if kind == "empty":
        (tmp / "empty.mp4").write_bytes(b"")
        return tmp / "empty.mp4"
    if kind == "random":
        rng = np.random.default_rng(7)
        (tmp / "random.mp4").write_bytes(rng.integers(0, 256, 40_000, dtype=np.uint8).tobytes())
        return tmp / "random.mp4"
    if kind == "text":
        (tmp / "notes.mp4").write_text("this is not a video\n" * 200)
        return tmp / "notes.mp4"
    if kind in ("png", "jpg"):
        return write_still_image(tmp / f"still.{kind}")
    if kind == "png-as-mp4":
        (tmp / "still.mp4").write_bytes(write_still_image(tmp / "s.png").read_bytes())
        return tmp / "still.mp4"
    if kind == "audio":
        return write_audio_only(tmp / "tone.m4a")
    source = media / spec_named("h264_mp4").filename
    if kind == "truncated":  # header (faststart) intact, half the frames gone
        return corrupt_copy(source, tmp / "truncated.mp4", "truncate")
    if kind == "truncated-no-header":  # moov at the end, cut off
        plain = tmp / "plain.mp4"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", source, "-c", "copy", plain], check=True
        )
        return corrupt_copy(plain, tmp / "truncated-no-header.mp4", "truncate")
    if kind == "truncated-mkv":
        return corrupt_copy(media / spec_named("h265_mkv").filename, tmp / "t.mkv", "truncate")
    if kind == "garbled":
        return corrupt_copy(source, tmp / "garbled.mp4", "garble")
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["empty", "random", "text", "png", "jpg", "png-as-mp4", "audio"])
def test_not_a_video(media: Path, tmp_path: Path, kind: str) -> None:
    path = str(make_bad(kind, media, tmp_path))
    with pytest.raises(NotAVideo):
        open_frame_source(path)
    for source in (DecordSource(), PyAVSource()):
        with pytest.raises(NotAVideo):
            source.probe(path)


@pytest.mark.parametrize("source_name", ["decord", "pyav", "auto"])
def test_garbled_video_fails_to_decode(media: Path, tmp_path: Path, source_name: str) -> None:
    path = str(make_bad("garbled", media, tmp_path))
    if source_name == "auto":
        source, probed = open_frame_source(path)
    else:
        source = SOURCES[source_name]()
        probed = source.probe(path)  # the header is fine: the damage shows when decoding
    times = [i + 0.5 for i in range(int(probed.duration_s))]
    with pytest.raises(DecodeFailed):
        list(source.frames(path, times, SIZE))


@pytest.mark.parametrize(
    ("kind", "name"), [("truncated", "h264_mp4"), ("truncated-mkv", "h265_mkv")]
)
def test_truncated_video_decodes_in_part_with_a_warning(
    media: Path, tmp_path: Path, kind: str, name: str
) -> None:
    spec = spec_named(name)
    path = str(make_bad(kind, media, tmp_path))
    source, probed = open_frame_source(path)
    # The header claims the whole clip; the probe reports what the data holds, and says so.
    assert 1.0 < probed.duration_s < spec.duration_s - 2.0
    [warning] = probed.warnings
    assert warning.code == "partly_decodable"
    assert f"{spec.duration_s:.2f} s" in warning.message
    times = [round(0.25 + 0.5 * k, 2) for k in range(int((probed.duration_s - 0.3) / 0.5))]
    samples = list(source.frames(path, times, SIZE))
    assert len(samples) == len(times)
    for t, s in zip(times, samples, strict=True):
        assert t - 1.0 / spec.fps - 1e-3 <= s.t_s <= t + 1e-3
        assert visible_labels(s.image) == expected_labels(spec, s.t_s), s.t_s
    # Past the decodable span the sources still refuse to invent frames.
    with pytest.raises(DecodeFailed, match="truncated"):
        list(PyAVSource().frames(path, [spec.duration_s - 0.5], SIZE))


def test_unopenable_video_container_is_decode_failed(media: Path, tmp_path: Path) -> None:
    path = make_bad("truncated-no-header", media, tmp_path)
    assert looks_like_video_container(path.read_bytes()[:752])
    with pytest.raises(DecodeFailed):
        open_frame_source(str(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ObjectMissing):
        open_frame_source(str(tmp_path / "gone.mp4"))


# ---------------------------------------------------------------- decord child process


def test_decord_timeout_kills_the_child(media: Path) -> None:
    source = DecordSource(decode_timeout_s=0.01)  # less than the child needs to start
    started = time.monotonic()
    with pytest.raises(DecodeFailed, match="killed"):
        list(source.frames(path_of(media, "long_h264"), [1.0, 50.0], SIZE))
    assert time.monotonic() - started < 10
    assert not multiprocessing.active_children()


def test_stopping_early_ends_the_decord_child(media: Path) -> None:
    frames = DecordSource(batch_size=2).frames(
        path_of(media, "long_h264"), [float(t) for t in range(99)], SIZE
    )
    first = [next(frames), next(frames), next(frames)]
    assert [f.t_s for f in first] == [0.0, 1.0, 2.0]
    frames.close()
    assert not multiprocessing.active_children()


def test_the_worker_decodes_with_pyav_unless_told_otherwise(media: Path) -> None:
    from pydantic import ValidationError

    from vidloc.settings import Settings
    from workers.frames import close_source, forced_source

    path = path_of(media, "h264_mp4")
    chosen = {}
    for setting in ("pyav", "auto", "decord"):
        source, _info = open_frame_source(path, force=forced_source(setting))
        chosen[setting] = source.name
        close_source(source)
    # An MP4 of H.264 is one of decord's cells in the matrix: only "auto" and "decord" pick it.
    assert chosen == {"pyav": "pyav", "auto": "decord", "decord": "decord"}
    assert Settings().frame_source == "pyav"
    with pytest.raises(ValidationError):
        Settings(frame_source="ffmpeg")  # type: ignore[arg-type]


# ---------------------------------------------------------------- when PyAV seeks (pure)

ISSUE_21_KEYS = (0.0, 5.12, 10.24, 15.36, 20.48, 25.6, 26.0)  # libvpx: a scene cut at 26.0 s


def test_seeking_follows_the_longest_keyframe_gap_not_the_last_one() -> None:
    gaps = KeyframeGaps(default_gap_s=10.0)
    assert gaps.worth_seeking(0.0, 20.5, gops=2.0) and not gaps.worth_seeking(0.0, 19.5, gops=2.0)
    for t in ISSUE_21_KEYS:
        gaps.saw(t)
    # The last two keyframes are 0.4 s apart; the GOP is 5.12 s: the next second is no jump.
    assert gaps.longest_s == pytest.approx(5.12)
    assert not gaps.worth_seeking(26.04, 27.0, gops=2.0)
    assert gaps.worth_seeking(26.04, 36.5, gops=2.0)


def test_a_gap_is_not_measured_across_a_seek() -> None:
    gaps = KeyframeGaps(default_gap_s=10.0)
    gaps.saw(0.0)
    gaps.seeking()
    gaps.saw(60.0)  # landed there: the keyframes between were jumped over
    assert gaps.longest_s is None and gaps.last_s == 60.0


def test_a_seek_that_landed_behind_widens_the_gap() -> None:
    gaps = KeyframeGaps(default_gap_s=10.0)
    for t in (0.0, 0.32, 0.36):  # -force_key_frames 0.3,0.35: keyframes 0.04 s apart
        gaps.saw(t)
    assert gaps.worth_seeking(0.4, 1.2, gops=2.0)
    gaps.none_until(1.2)  # ... but that seek landed on 0.36 again: no keyframe up to 1.2 s
    assert gaps.longest_s == pytest.approx(0.84)
    assert not gaps.worth_seeking(1.24, 2.2, gops=2.0)  # no seek each step, each in vain


SEEN, LANDED, OVERSHOT = Landing.SEEN, Landing.LANDED, Landing.OVERSHOT


@pytest.mark.parametrize(
    ("target", "resume", "frames", "landings", "futile"),
    [
        pytest.param(3.0, 2.04, [2.96, 3.0], [LANDED, LANDED], False, id="on-the-keyframe-before"),
        # issue 21: the keyframe before the target is behind the frames already decoded; that
        # is no restarted clock: frames up to the last one decoded are skipped as seen.
        pytest.param(
            27.0, 26.04, [26.0, 26.04, 26.08], [SEEN, SEEN, LANDED], True, id="behind-the-frames"
        ),
        # MP4 indexes decode times: the keyframe found is shown 2 frames after the target, and
        # the frames just before the target were never decoded.
        pytest.param(1.0, 0.04, [1.08], [OVERSHOT], False, id="after-the-target"),
        # ... unless the frame after the one decoded last is the first one out: nothing missed.
        pytest.param(0.98, 0.96, [1.0, 1.04], [LANDED, LANDED], False, id="the-next-frame"),
    ],
)
def test_what_the_first_frames_after_a_seek_mean(
    target: float, resume: float, frames: list[float], landings: list[Landing], futile: bool
) -> None:
    seek = Seek(target, resume_s=resume, frame_gap_s=0.04, fallback_s=0.0)
    assert [seek.land(t) for t in frames] == landings
    assert seek.futile is futile


def test_a_seek_that_overshot_goes_back_to_the_last_keyframe_then_to_the_start() -> None:
    seek = Seek(10.0, resume_s=5.0, frame_gap_s=0.04, fallback_s=4.0)
    assert seek.land(10.08) is Landing.OVERSHOT
    assert seek.retreat() == 4.0
    assert seek.land(10.08) is Landing.OVERSHOT  # a keyframe indexed before 4.0 s, shown later
    assert seek.retreat() is None  # the stream start
    assert [seek.land(t) for t in (0.0, 5.0, 5.04)] == [SEEN, SEEN, LANDED]
    assert not seek.futile  # going back on purpose proves nothing about keyframes
