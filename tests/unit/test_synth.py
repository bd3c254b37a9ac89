"""Synthetic media: specs and ground truth, drawing, ffmpeg rendering, broken copies."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from devkit.synth.catalogue import spec_named, standard_specs
from devkit.synth.draw import FrameDrawer, colour_coverage, visible_labels
from devkit.synth.palette import PALETTE, entry_for_label
from devkit.synth.render import corrupt_copy, encode_args, ensure_rendered, render
from devkit.synth.spec import (
    Segment,
    SyntheticEvent,
    VfrStretch,
    VideoSpec,
    read_ground_truth_jsonl,
    write_ground_truth_jsonl,
)


def small_spec(**overrides: object) -> VideoSpec:
    fields: dict[str, object] = {
        "name": "tiny",
        "duration_s": 3.0,
        "fps": 10.0,
        "width": 160,
        "height": 96,
        "cuts": (1.5,),
        "events": (SyntheticEvent("red circle", 0.5, 1.0), SyntheticEvent("yellow star", 2.0, 2.5)),
    }
    fields.update(overrides)
    return VideoSpec(**fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------- catalogue and spec


def test_catalogue_covers_every_codec_vfr_and_a_long_clip() -> None:
    specs = standard_specs()
    assert {s.codec for s in specs} == {"h264", "h265", "vp9", "av1", "mpeg4", "mjpeg"}
    assert len({s.name for s in specs}) == len(specs)
    assert any(s.vfr for s in specs)
    for spec in specs:
        assert len(spec.events) >= 2 and len(spec.cuts) >= 1, spec.name
    long = spec_named("long_h264")
    assert long.duration_s > 3 * 30.0
    assert any(e.start_s < b < e.end_s for e in long.events for b in (30.0, 60.0, 90.0))


def test_vfr_spec_thins_frames_so_index_over_fps_is_off_by_seconds() -> None:
    spec = spec_named("vfr_h264")
    times = spec.frame_times()
    assert len(times) < spec.source_frame_count
    avg_fps = len(times) / spec.duration_s
    worst = max(abs(i / avg_fps - t) for i, t in enumerate(times))
    assert worst > 2.0


def test_labels_follow_half_open_intervals_and_black_hides_nothing_else() -> None:
    spec = spec_named("h264_mp4")
    assert spec.labels_at(0.99) == ()
    assert spec.labels_at(1.0) == ("red circle",)
    assert spec.labels_at(3.0) == ()
    assert set(spec.labels_at(7.0)) == {"green square", "blue triangle"}
    assert spec.is_black(10.0) and not spec.is_black(10.5)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"events": (SyntheticEvent("purple blob", 0.0, 1.0),)}, id="unknown-label"),
        pytest.param({"events": (SyntheticEvent("red circle", 2.0, 1.0),)}, id="reversed"),
        pytest.param({"events": (SyntheticEvent("red circle", 2.0, 9.0),)}, id="past-end"),
        pytest.param({"black_segments": (Segment(0.8, 1.2),)}, id="event-under-black"),
        pytest.param({"frozen_segments": (Segment(0.2, 0.7),)}, id="event-edge-frozen"),
        pytest.param({"frozen_segments": (Segment(1.2, 1.8),)}, id="cut-in-frozen"),
        pytest.param({"width": 161}, id="odd-width"),
    ],
)
def test_spec_refuses_inconsistent_ground_truth(overrides: dict[str, object]) -> None:
    with pytest.raises((ValueError, KeyError)):
        small_spec(**overrides)


def test_ground_truth_jsonl_round_trips(tmp_path: Path) -> None:
    truths = [spec.ground_truth() for spec in standard_specs()]
    path = tmp_path / "truth.jsonl"
    write_ground_truth_jsonl(truths, path)
    first = json.loads(path.read_text().splitlines()[0])
    assert first == {
        "video": "h264_mp4",
        "kind": "event",
        "label": "red circle",
        "start_s": 1.0,
        "end_s": 3.0,
    }
    back = read_ground_truth_jsonl(path)
    for truth in truths:
        got = back[truth.video]
        assert got.events == truth.events
        assert got.cuts == truth.cuts
        assert got.black_segments == truth.black_segments
        assert got.frozen_segments == truth.frozen_segments


# ---------------------------------------------------------------- drawing


def test_each_event_shape_covers_at_least_five_percent_in_its_own_colour() -> None:
    for entry in PALETTE:
        spec = small_spec(
            width=320, height=180, events=(SyntheticEvent(entry.label, 0.0, 3.0),), cuts=()
        )
        frame = FrameDrawer(spec).draw(5)
        assert frame.shape == (180, 320, 3) and frame.dtype == np.uint8
        coverage = colour_coverage(frame, entry.rgb, tolerance=0)
        assert coverage >= 0.05, (entry.label, coverage)
        assert visible_labels(frame) == (entry.label,)


def test_all_four_shapes_at_once_do_not_hide_each_other() -> None:
    spec = small_spec(
        width=320,
        height=180,
        events=tuple(SyntheticEvent(e.label, 0.0, 3.0) for e in PALETTE),
        cuts=(),
    )
    frame = FrameDrawer(spec).draw(0)
    for entry in PALETTE:
        assert colour_coverage(frame, entry.rgb, tolerance=0) >= 0.05, entry.label


def test_frames_move_change_at_cuts_go_black_and_freeze() -> None:
    spec = spec_named("h264_mp4")
    drawer = FrameDrawer(spec)
    a, b = drawer.draw(30), drawer.draw(31)  # 3.0 s, 3.1 s: same shot
    assert 0 < np.abs(a.astype(int) - b.astype(int)).mean() < 10  # texture moves a little
    before_cut, after_cut = drawer.draw(39), drawer.draw(40)  # cut at 4.0 s
    assert np.abs(before_cut.astype(int) - after_cut.astype(int)).mean() > 20
    assert not drawer.draw(100).any()  # black 9.5-10.5 s
    frozen = [drawer.draw(i) for i in (105, 110, 119)]  # frozen 10.5-12 s
    assert all(np.array_equal(frozen[0], f) for f in frozen[1:])
    assert visible_labels(drawer.draw(20)) == ("red circle",)
    assert visible_labels(drawer.draw(0)) == ()


# ---------------------------------------------------------------- rendering


def test_vfr_command_uses_select_and_vfr_mode(tmp_path: Path) -> None:
    spec = small_spec(vfr_stretches=(VfrStretch(1.0, 2.0, 3),))
    args = encode_args(spec, tmp_path / "x.mp4")
    assert args[args.index("-fps_mode") + 1] == "vfr"
    assert "select='not(gte(t,1)*lt(t,2)*mod(n,3))'" in args
    assert "+faststart" in args


def test_render_writes_a_video_with_the_spec_times(tmp_path: Path) -> None:
    spec = small_spec(vfr_stretches=(VfrStretch(1.0, 2.0, 3),))
    truth = render(spec, tmp_path / spec.filename)
    assert truth.events == spec.events and truth.cuts == (1.5,)
    with av.open(str(tmp_path / spec.filename)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (160, 96)
        times = [float(f.time) for f in container.decode(stream)]
    assert times == pytest.approx(spec.frame_times(), abs=1e-3)
    assert len(times) == 30 - 7  # of frames 10..19 in [1, 2) only 12, 15 and 18 are kept


def test_ensure_rendered_reuses_an_identical_render(tmp_path: Path) -> None:
    spec = small_spec()
    path = ensure_rendered(spec, tmp_path)
    stamp = path.stat().st_mtime_ns
    assert ensure_rendered(spec, tmp_path) == path
    assert path.stat().st_mtime_ns == stamp
    changed = small_spec(events=(SyntheticEvent("red circle", 0.5, 2.0),))
    ensure_rendered(changed, tmp_path)
    assert path.stat().st_mtime_ns != stamp


def test_render_failure_is_a_vidloc_error(tmp_path: Path) -> None:
    from vidloc.errors import VidlocError

    spec = small_spec(container="nosuchmuxer")
    with pytest.raises(VidlocError) as info:
        render(spec, tmp_path / spec.filename)
    assert info.value.code == "synth_failed"
    assert not list(tmp_path.iterdir())  # no partial file left behind


def test_corrupt_copies(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(bytes(range(256)) * 12)
    truncated = corrupt_copy(src, tmp_path / "t.bin", "truncate")
    assert truncated.read_bytes() == src.read_bytes()[: len(src.read_bytes()) // 2]
    garbled = corrupt_copy(src, tmp_path / "g.bin", "garble").read_bytes()
    original = src.read_bytes()
    third = len(original) // 3
    assert len(garbled) == len(original)
    assert garbled[:third] == original[:third] and garbled[2 * third :] == original[2 * third :]
    assert garbled[third : 2 * third] != original[third : 2 * third]


def test_palette_colours_survive_lossy_encoding(tmp_path: Path) -> None:
    """The fake model server finds events by colour: they must survive the worst codec here."""
    spec = small_spec(codec="mjpeg", width=320, height=180)
    path = ensure_rendered(spec, tmp_path)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", path],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "mjpeg"
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            t = float(frame.time)
            image = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
            expected = spec.labels_at(t)
            assert visible_labels(image) == tuple(
                e.label for e in PALETTE if e.label in expected
            ), t
    assert entry_for_label("red circle").shape == "circle"
