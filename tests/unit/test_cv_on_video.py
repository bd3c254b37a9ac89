"""The cv localizer on real encoded files: synthetic videos with ground-truth cuts, decoded by PyAV.

No services needed, only ffmpeg (to render) and PyAV. Frames go through the same planner and
chunking the worker uses, then merge_events; every ground-truth boundary must be reported at the
first decoded sample at or after it (so less than one sampling period late).
"""

from __future__ import annotations

import bisect
import itertools
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from devkit.synth.catalogue import spec_named
from devkit.synth.render import ensure_rendered
from devkit.synth.spec import VideoSpec
from workers.frames.plan import plan_chunks, plan_sample_times
from workers.frames.pyav_source import PyAVSource
from workers.localizers.cv import CvLocalizer, CvParams
from workers.localizers.shots import split_at_cuts
from workers.pipeline.merge import merge_events
from workers.types import DetectedEvent, FrameSample, LocalizeRequest

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def timeline(
    spec: VideoSpec, directory: Path, sample_fps: float, params: CvParams
) -> tuple[list[float], tuple[DetectedEvent, ...]]:
    path = ensure_rendered(spec, directory)
    requested = plan_sample_times(spec.duration_s, sample_fps)
    decoded = list(PyAVSource().frames(str(path), requested, spec.size))
    assert len(decoded) == len(requested)
    by_request: dict[float, FrameSample] = dict(zip(requested, decoded, strict=True))
    localizer = CvLocalizer(params)
    request = LocalizeRequest(video_duration_s=spec.duration_s)
    pieces: list[DetectedEvent] = []
    for chunk in plan_chunks(requested, chunk_s=30.0, overlap_s=2.0, max_frames_per_chunk=64):
        frames = [by_request[t] for t in chunk.times]
        pieces.extend(localizer.localize(chunk, frames, request).events)
    return sorted({f.t_s for f in decoded}), merge_events(pieces)


def first_at_or_after(times: Sequence[float], t: float) -> float:
    return times[bisect.bisect_left(times, t - 1e-6)]


@pytest.mark.parametrize(
    ("name", "sample_fps"),
    [
        pytest.param("h264_mp4", 2.0, id="h264-2fps"),
        pytest.param("vfr_h264", 2.0, id="vfr-h264-2fps"),
        pytest.param("long_h264", 1.0, id="long-h264-1fps-4-chunks"),
    ],
)
def test_cuts_black_frozen_within_one_sampled_frame(
    name: str, sample_fps: float, tmp_path_factory: pytest.TempPathFactory
) -> None:
    spec = spec_named(name)
    directory = tmp_path_factory.getbasetemp() / "synth"
    # The catalogue's frozen stretch lasts 1.5 s; the default minimum (2 s) is for real footage.
    times, events = timeline(spec, directory, sample_fps, CvParams(min_frozen_s=1.0))
    period = max(b - a for a, b in itertools.pairwise(times))

    cuts = [e.start_s for e in events if e.label == "cut"]
    # Entering or leaving black (or a frozen picture of another shot) is a cut on screen too.
    boundaries = set(spec.cuts)
    for seg in spec.black_segments:
        boundaries |= {seg.start_s, seg.end_s}
    expected = sorted(
        {first_at_or_after(times, b) for b in boundaries if b < times[-1]}
    )  # fmt: skip
    assert cuts == expected
    for c in spec.cuts:
        reported = first_at_or_after(cuts, c)
        assert 0 <= reported - c < period

    blacks = [(e.start_s, e.end_s) for e in events if e.label == "black"]
    assert blacks == [
        (first_at_or_after(times, s.start_s), first_at_or_after(times, s.end_s))
        for s in spec.black_segments
    ]
    frozen = [(e.start_s, e.end_s) for e in events if e.label == "frozen"]
    assert frozen == [
        (
            first_at_or_after(times, s.start_s),
            s.end_s if s.end_s >= spec.duration_s else first_at_or_after(times, s.end_s),
        )
        for s in spec.frozen_segments
    ]


def test_a_frozen_stretch_never_runs_across_a_cut(tmp_path: Path) -> None:
    """Issue 16: 3 s of red then 3 s of blue gave "frozen 0.48-6.0" beside "cut 3.48"."""
    path = tmp_path / "red_blue.mp4"
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", "color=red:s=320x180:r=25:d=3",
            "-f", "lavfi", "-i", "color=blue:s=320x180:r=25:d=3",
            "-filter_complex", "[0][1]concat=n=2:v=1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
            str(path),
        ],
        check=True,
    )  # fmt: skip
    requested = plan_sample_times(6.0, 1.0)
    decoded = list(PyAVSource().frames(str(path), requested, (320, 180)))
    localizer = CvLocalizer(CvParams())
    request = LocalizeRequest(video_duration_s=6.0)
    pieces: list[DetectedEvent] = []
    # Two overlapping chunks, as the worker plans a longer video: the cut lies in the overlap.
    by_request = dict(zip(requested, decoded, strict=True))
    for chunk in plan_chunks(requested, chunk_s=4.0, overlap_s=2.0, max_frames_per_chunk=64):
        frames = [by_request[t] for t in chunk.times]
        pieces.extend(localizer.localize(chunk, frames, request).events)
    merged = merge_events(pieces)
    [cut] = [e.start_s for e in merged if e.label == "cut"]
    assert 3.0 <= cut < 4.0
    # Merging alone joins the two touching stills into one across the cut (the bug) ...
    assert any(e.label == "frozen" and e.start_s < cut < e.end_s for e in merged)
    # ... and the split the worker applies after merging takes them apart again.
    events = split_at_cuts(merged, [cut])
    frozen = sorted((e.start_s, e.end_s) for e in events if e.label == "frozen")
    assert frozen == [(decoded[0].t_s, cut), (cut, 6.0)]
    assert [e for e in events if e.label != "frozen"] == [e for e in merged if e.label != "frozen"]
