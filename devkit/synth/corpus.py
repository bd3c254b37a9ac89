"""The benchmark corpus: synthetic videos whose events stress temporal precision and cost.

Seven clips, 13.75 minutes in all, 320x180 at 5-10 fps, so the whole set renders in well under
a minute and runs end to end in a few minutes on two cores. Together they hold events from 1 s
to 3 minutes; events that start or end on a hard cut; events crossing the 30 s chunk grid;
long frozen (static) stretches; a black stretch; overlapping events of different labels; and
five codecs. Each label occurs at most once per clip, so R@1 (top-1 per label) is well defined.
Every time is a multiple of the clip's frame period, so the truth is exact to the frame.
"""

from __future__ import annotations

from pathlib import Path

from devkit.synth.render import ensure_rendered
from devkit.synth.spec import Segment, SyntheticEvent, VideoSpec, write_ground_truth_jsonl

E = SyntheticEvent
TRUTH_FILE = "truth.jsonl"


def bench_specs() -> tuple[VideoSpec, ...]:
    return (
        VideoSpec(
            name="b01_h264_mixed",
            duration_s=120.0,
            fps=5.0,
            codec="h264",
            cuts=(30.0, 75.0),
            events=(
                E("red circle", 2.0, 3.0),  # 1 s
                E("green square", 28.0, 34.0),  # crosses the 30 s chunk edge and a cut
                E("blue triangle", 50.0, 110.0),  # a minute, across 60 s and 90 s
                E("yellow star", 75.0, 80.0),  # starts on a cut
            ),
            frozen_segments=(Segment(8.0, 26.0),),
            gop=50,
            width=320,
            height=180,
        ),
        VideoSpec(
            name="b02_h265_shots",
            duration_s=90.0,
            fps=10.0,
            codec="h265",
            cuts=(20.0, 45.0),
            events=(
                E("red circle", 20.0, 45.0),  # exactly one shot
                E("yellow star", 58.5, 61.5),  # crosses 60 s
                E("green square", 70.0, 71.0),  # 1 s
            ),
            gop=50,
            width=320,
            height=180,
        ),
        VideoSpec(
            name="b03_mpeg4_long",
            duration_s=240.0,
            fps=5.0,
            codec="mpeg4",
            cuts=(100.0, 205.0),
            events=(
                E("green square", 10.0, 190.0),  # three minutes, through a static stretch
                E("red circle", 200.0, 202.0),
                E("blue triangle", 215.0, 222.0),
            ),
            frozen_segments=(Segment(120.0, 180.0),),
            black_segments=(Segment(225.0, 230.0),),
            gop=50,
            width=320,
            height=180,
        ),
        VideoSpec(
            name="b04_vp9_edges",
            duration_s=60.0,
            fps=10.0,
            codec="vp9",
            cuts=(15.0, 45.0),
            events=(
                E("red circle", 29.0, 31.0),  # crosses 30 s
                E("yellow star", 15.0, 45.0),  # one shot
                E("blue triangle", 40.0, 41.5),
            ),
            gop=50,
            width=320,
            height=180,
        ),
        VideoSpec(
            name="b05_mjpeg_overlap",
            duration_s=45.0,
            fps=10.0,
            codec="mjpeg",
            cuts=(25.0,),
            events=(
                E("red circle", 5.0, 15.0),
                E("green square", 10.0, 20.0),
                E("blue triangle", 12.0, 13.0),
                E("yellow star", 30.0, 44.0),
            ),
            width=320,
            height=180,
        ),
        VideoSpec(
            name="b06_h264_static",
            duration_s=180.0,
            fps=5.0,
            codec="h264",
            cuts=(90.0,),
            events=(
                E("red circle", 5.0, 10.0),
                E("green square", 15.0, 178.0),  # almost all of it, mostly frozen
                E("blue triangle", 170.0, 175.0),
            ),
            frozen_segments=(Segment(20.0, 85.0), Segment(95.0, 165.0)),
            gop=50,
            width=320,
            height=180,
        ),
        VideoSpec(
            name="b07_h264_short",
            duration_s=90.0,
            fps=8.0,
            codec="h264",
            cuts=(50.0,),
            events=(
                E("red circle", 10.0, 11.0),
                E("green square", 40.0, 41.0),
                E("blue triangle", 59.5, 60.5),  # 1 s across 60 s
                E("yellow star", 80.0, 81.0),
            ),
            gop=40,
            width=320,
            height=180,
        ),
    )


def write_corpus(
    directory: Path, specs: tuple[VideoSpec, ...] | None = None
) -> tuple[list[Path], Path]:
    """Render the corpus (``bench_specs()`` unless ``specs`` are given, e.g.
    ``devkit.synth.moving_corpus.moving_specs()``) into ``directory`` (cached) and write
    ``truth.jsonl`` beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    specs = bench_specs() if specs is None else specs
    paths = [ensure_rendered(spec, directory) for spec in specs]
    truth = directory / TRUTH_FILE
    write_ground_truth_jsonl((spec.ground_truth() for spec in specs), truth)
    return paths, truth
