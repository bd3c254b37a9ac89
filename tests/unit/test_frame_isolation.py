"""Decoding in a killable child (workers.frames.isolated): hangs are killed after the timeout,
early stops end the child, child errors come back as the right vidloc error, and an isolated
PyAV source gives exactly the frames of the in-process one."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from devkit.synth.catalogue import spec_named
from devkit.synth.render import corrupt_copy, ensure_rendered
from vidloc.errors import (
    DecodeFailed,
    NotAVideo,
    ObjectMissing,
    StorageUnavailable,
    VidlocError,
)
from workers.frames import close_source, make_source, open_frame_source
from workers.frames.isolated import (
    DecoderChild,
    IsolatedSource,
    call_in_child,
    probe_in_child,
    stream_from_child,
)
from workers.frames.probe import probe_video
from workers.frames.pyav_source import PyAVSource
from workers.frames.select import FallbackSource
from workers.types import FrameSample, VideoInfo

SIZE = (320, 192)
# Long enough for a spawned child to import this module and answer; short enough to keep the
# hang tests quick.
TIMEOUT_S = 5.0  # generous: a spawned child can take seconds to start on a loaded machine


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("synth")
    for name in ("h264_mp4", "vfr_h264"):
        ensure_rendered(spec_named(name), directory)
    return directory


def path_of(media: Path, name: str) -> str:
    return str(media / spec_named(name).filename)


# ---------------------------------------------------------------- child bodies (module level,
# so that the spawned child can import them)


def count_then_hang(n: int) -> Iterator[int]:
    yield from range(n)
    time.sleep(600)


def raise_error(kind: str) -> Iterator[int]:
    yield 1
    if kind == "not-a-video":
        raise NotAVideo("no video stream here")
    if kind == "store":
        raise StorageUnavailable("reading videos/a.mp4 bytes 0-9: HTTP 503")
    raise ValueError("first line\nthe useful last line")


def die(code: int) -> Iterator[int]:
    yield 1
    os._exit(code)


class HangingSource:
    """A frame source that serves one frame, then hangs as a stuck C decode would."""

    name = "hanging"

    def probe(self, path: str) -> VideoInfo:
        time.sleep(600)
        raise AssertionError("unreachable")

    def frames(
        self, path: str, times: Sequence[float], size: tuple[int, int]
    ) -> Iterator[FrameSample]:
        w, h = size
        yield FrameSample(t_s=0.0, image=np.zeros((h, w, 3), np.uint8))
        time.sleep(600)


def assert_no_child_left() -> None:
    assert multiprocessing.active_children() == []


# ---------------------------------------------------------------- the mechanism


def test_a_hanging_child_is_killed_after_the_timeout() -> None:
    items = stream_from_child(
        count_then_hang, (2,), timeout_s=TIMEOUT_S, label="test", path="x.mp4"
    )
    assert [next(items), next(items)] == [0, 1]
    started = time.monotonic()
    expected = rf"^test produced nothing for {TIMEOUT_S:g} s on x.mp4; killed$"
    with pytest.raises(DecodeFailed, match=expected):
        next(items)
    assert TIMEOUT_S - 0.1 <= time.monotonic() - started < TIMEOUT_S + 2
    assert_no_child_left()


def test_closing_early_kills_the_child() -> None:
    items = stream_from_child(
        count_then_hang, (5,), timeout_s=TIMEOUT_S, label="test", path="x.mp4"
    )
    assert next(items) == 0
    items.close()
    assert_no_child_left()


def test_a_child_closed_from_another_thread_wakes_the_one_reading_it() -> None:
    """A span decoded ahead is ended by its consumer while its decoding thread waits on the
    child (workers/pipeline/ahead.py): that thread gets DecodeFailed at once, not after the
    timeout, and no child is left."""
    child = DecoderChild(timeout_s=600.0)
    items = child.stream(count_then_hang, (1,), label="test", path="x.mp4")
    assert next(items) == 0
    outcome: list[BaseException] = []

    def read_on() -> None:
        try:
            next(items)
        except BaseException as exc:  # the reader's error is the test's finding
            outcome.append(exc)

    reader = threading.Thread(target=read_on)
    reader.start()
    time.sleep(0.3)  # the reader waits on the hanging child
    started = time.monotonic()
    child.close()
    reader.join(10.0)
    assert not reader.is_alive()
    assert time.monotonic() - started < 10.0
    assert len(outcome) == 1 and isinstance(outcome[0], DecodeFailed), outcome
    assert_no_child_left()


@pytest.mark.parametrize(
    ("kind", "error", "message"),
    [
        pytest.param("not-a-video", NotAVideo, "^no video stream here$", id="vidloc-error"),
        # A source reading the store by ranges: transient, so retried, not a broken file.
        pytest.param("store", StorageUnavailable, "HTTP 503$", id="store-unavailable"),
        pytest.param("other", DecodeFailed, "^ValueError: the useful last line$", id="other"),
    ],
)
def test_child_errors_come_back_as_vidloc_errors(
    kind: str, error: type[VidlocError], message: str
) -> None:
    items = stream_from_child(raise_error, (kind,), timeout_s=TIMEOUT_S, label="t", path="p")
    with pytest.raises(error, match=message):
        list(items)
    assert_no_child_left()


def test_a_child_that_dies_is_decode_failed() -> None:
    with pytest.raises(DecodeFailed, match=r"worker died \(exit code 3\)"):
        list(stream_from_child(die, (3,), timeout_s=TIMEOUT_S, label="t", path="p"))
    assert_no_child_left()


def niceness() -> Iterator[int]:
    yield os.nice(0)


def test_a_background_jobs_decoder_runs_at_a_lower_priority() -> None:
    from workers.frames.isolated import BACKGROUND_NICENESS
    from workers.priority import in_background

    here = os.nice(0)
    foreground = call_in_child(niceness, (), timeout_s=TIMEOUT_S, label="t", path="p")
    with in_background():
        background = call_in_child(niceness, (), timeout_s=TIMEOUT_S, label="t", path="p")
    assert foreground == here
    assert background == min(19, here + BACKGROUND_NICENESS)
    assert os.nice(0) == here  # the worker itself keeps its priority
    assert_no_child_left()


def test_call_in_child_wants_exactly_one_answer() -> None:
    assert call_in_child(range, (1,), timeout_s=TIMEOUT_S, label="t", path="p") == 0
    with pytest.raises(DecodeFailed, match="expected one answer from the child, got 2"):
        call_in_child(range, (2,), timeout_s=TIMEOUT_S, label="t", path="p")
    assert_no_child_left()


# ---------------------------------------------------------------- IsolatedSource


def test_isolated_source_kills_a_hung_decode() -> None:
    source = IsolatedSource(HangingSource(), decode_timeout_s=TIMEOUT_S, batch_size=1)
    frames = source.frames("clip.mp4", [0.0, 1.0], SIZE)
    assert next(frames).t_s == 0.0
    with pytest.raises(DecodeFailed, match=r"hanging produced nothing .* killed"):
        next(frames)
    assert_no_child_left()
    with pytest.raises(DecodeFailed, match="killed"):
        source.probe("clip.mp4")
    assert_no_child_left()


@pytest.mark.parametrize("name", ["h264_mp4", "vfr_h264"])
def test_isolated_pyav_gives_the_in_process_frames(media: Path, name: str) -> None:
    path = path_of(media, name)
    times = [0.0, 0.37, 0.38, 1.0, 3.9, 4.2, 5.55, 8.7, 9.99, 100.0]
    inline = list(PyAVSource().frames(path, times, SIZE))
    isolated = list(IsolatedSource(PyAVSource(), batch_size=3).frames(path, times, SIZE))
    assert [s.t_s for s in isolated] == [s.t_s for s in inline]
    for a, b in zip(isolated, inline, strict=True):
        assert a.image.dtype == b.image.dtype and np.array_equal(a.image, b.image), a.t_s
    assert list(IsolatedSource(PyAVSource()).frames(path, [], SIZE)) == []
    assert_no_child_left()


def test_stopping_early_ends_the_pyav_child(media: Path) -> None:
    frames = IsolatedSource(PyAVSource(), batch_size=2).frames(
        path_of(media, "h264_mp4"), [float(t) for t in range(9)], SIZE
    )
    assert [next(frames).t_s for _ in range(3)] == [0.0, 1.0, 2.0]
    frames.close()
    assert_no_child_left()


def test_isolated_probe_and_errors_match_in_process(media: Path, tmp_path: Path) -> None:
    path = path_of(media, "h264_mp4")
    assert probe_in_child(path, TIMEOUT_S) == probe_video(path)
    assert IsolatedSource(PyAVSource()).probe(path) == probe_video(path)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 200)
    truncated = corrupt_copy(Path(path), tmp_path / "truncated.mp4", "truncate")
    cases: list[tuple[str, type[VidlocError]]] = [
        (str(tmp_path / "gone.mp4"), ObjectMissing),
        (str(text), NotAVideo),
        (str(truncated), DecodeFailed),
    ]
    isolated = IsolatedSource(PyAVSource(), decode_timeout_s=TIMEOUT_S)
    for bad, error in cases:
        times = [0.5 + k for k in range(9)]
        with pytest.raises(error) as inline:
            list(PyAVSource().frames(bad, times, SIZE))
        with pytest.raises(error) as child:
            list(isolated.frames(bad, times, SIZE))
        assert str(child.value) == str(inline.value)
    with pytest.raises(NotAVideo):
        probe_in_child(str(text), TIMEOUT_S)
    assert_no_child_left()


def test_make_source_isolates_pyav_in_both_places() -> None:
    pyav = make_source("pyav", decode_timeout_s=7.0)
    assert isinstance(pyav, IsolatedSource) and pyav.name == "pyav"
    assert pyav.decode_timeout_s == 7.0
    decord = make_source("decord", decode_timeout_s=7.0)
    assert isinstance(decord, FallbackSource)
    assert isinstance(decord.fallback, IsolatedSource)
    assert decord.fallback.decode_timeout_s == 7.0


# ---------------------------------------------------------------- one child per job


def test_one_child_serves_a_jobs_probe_and_every_frames_call(media: Path) -> None:
    path = path_of(media, "h264_mp4")
    source, info = open_frame_source(path, decode_timeout_s=TIMEOUT_S)
    try:
        assert info == probe_video(path)
        first = [s.t_s for s in source.frames(path, [0.0, 1.0, 2.0], SIZE)]
        again = [s.t_s for s in source.frames(path, [3.0, 4.0], SIZE)]
        assert (first, again) == ([0.0, 1.0, 2.0], [3.0, 4.0])
        child = source_child(source)
        assert child.started == 1
        (live,) = multiprocessing.active_children()
        assert live.name.startswith("vidloc-")
    finally:
        close_source(source)
    assert_no_child_left()


def test_a_failed_request_costs_its_child_and_the_next_gets_a_fresh_one(media: Path) -> None:
    child = DecoderChild(TIMEOUT_S)
    with pytest.raises(NotAVideo):
        list(child.stream(raise_error, ("not-a-video",), label="t", path="p"))
    assert_no_child_left()  # killed after the error, not kept
    assert child.call(range, (1,), label="t", path="p") == 0
    assert child.call(range, (1,), label="t", path="p") == 0
    assert child.started == 2
    child.close()
    assert_no_child_left()


def test_a_request_while_another_streams_gets_a_child_of_its_own() -> None:
    child = DecoderChild(TIMEOUT_S)
    outer = child.stream(range, (3,), label="t", path="p")
    assert next(outer) == 0
    assert child.call(range, (1,), label="t", path="p") == 0  # mid-stream, beside it
    assert list(outer) == [1, 2]
    assert child.started == 1  # the one-off child was not this one's
    child.close()
    assert_no_child_left()


def test_children_are_forked_from_the_preloaded_decoder_server() -> None:
    child = DecoderChild(TIMEOUT_S)
    try:
        modules = child.call(loaded_modules, (), label="t", path="p")
        assert {"av", "numpy", "workers.frames.pyav_source"} <= modules
    finally:
        child.close()


def loaded_modules() -> Iterator[set[str]]:
    import sys

    yield set(sys.modules)


def test_the_worker_process_never_imports_the_decoders() -> None:
    # PyAV and decord live in the decoder children; the worker saves their memory.
    code = "import sys, workers.service.main; print(sorted({'av', 'decord'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def source_child(source: object) -> DecoderChild:
    inner = getattr(source, "fallback", source)
    child = getattr(inner, "child", None)
    assert isinstance(child, DecoderChild)
    return child


def test_a_child_rerunning_the_console_script_does_not_import_the_commands() -> None:
    # multiprocessing re-runs a script __main__ in every child (run_name "__mp_main__"); under
    # the `vidloc` console script (the container's entry point) that cost each decoder child
    # every command's imports (0.8 CPU s) until vidloc.cli imported them lazily.
    script = Path(sys.executable).parent / "vidloc"
    assert script.is_file(), "the venv's console script (pip install -e .)"
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__mp_main__'); "
        "print(sorted(m for m in sys.modules if m.startswith('vidloc.cli.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(script)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert out.stdout.strip() == "['vidloc.cli.exits']"
