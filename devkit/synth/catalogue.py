"""Named synthetic videos that tests, the demo and the bench share.

Small (320x180, 5-10 fps) so the whole set encodes in seconds on a shared CPU. Every spec has at
least two events and one hard cut; ``long_h264`` spans more than three 30 s chunks with events
crossing the 30 s and 60 s chunk boundaries; ``vfr_h264`` thins frames so that frame index /
average fps is off from the real time by seconds.
"""

from __future__ import annotations

from devkit.synth.spec import Codec, Segment, SyntheticEvent, VfrStretch, VideoSpec

E = SyntheticEvent


def _codec_spec(codec: Codec, name: str) -> VideoSpec:
    return VideoSpec(
        name=name,
        duration_s=10.0,
        fps=10.0,
        width=320,
        height=180,
        codec=codec,
        cuts=(3.5, 7.0),
        events=(
            E("yellow star", 1.0, 2.5),
            E("red circle", 4.0, 6.0),
            E("green square", 5.5, 8.5),
        ),
        gop=25,
    )


def standard_specs() -> tuple[VideoSpec, ...]:
    """The catalogue: one clip per codec, one VFR clip, one long clip, in that order."""
    h264 = VideoSpec(
        name="h264_mp4",
        duration_s=12.0,
        fps=10.0,
        width=320,
        height=180,
        codec="h264",
        cuts=(4.0, 8.0),
        events=(
            E("red circle", 1.0, 3.0),
            E("green square", 5.0, 7.5),
            E("blue triangle", 6.5, 9.0),
        ),
        black_segments=(Segment(9.5, 10.5),),
        frozen_segments=(Segment(10.5, 12.0),),
        gop=25,
    )
    pairs: tuple[tuple[Codec, str], ...] = (
        ("h265", "mkv"),
        ("vp9", "webm"),
        ("av1", "mkv"),
        ("mpeg4", "mp4"),
        ("mjpeg", "avi"),
    )
    others = [_codec_spec(codec, f"{codec}_{container}") for codec, container in pairs]
    vfr = VideoSpec(
        name="vfr_h264",
        duration_s=15.0,
        fps=10.0,
        width=320,
        height=180,
        codec="h264",
        cuts=(7.0, 11.5),
        events=(
            E("red circle", 1.0, 2.5),
            E("blue triangle", 4.0, 6.0),
            E("yellow star", 10.0, 13.0),
        ),
        # 60 source frames in [3, 9) become 12: frame index / fps runs ~4.8 s behind real time.
        vfr_stretches=(VfrStretch(3.0, 9.0, 5),),
        gop=25,
    )
    long = VideoSpec(
        name="long_h264",
        duration_s=100.0,
        fps=5.0,
        width=320,
        height=180,
        codec="h264",
        cuts=(20.0, 45.0, 70.0, 88.0),
        events=(
            E("red circle", 10.0, 14.0),
            E("green square", 28.0, 33.0),  # crosses the 30 s chunk boundary
            E("blue triangle", 58.0, 63.0),  # crosses 60 s
            E("yellow star", 85.0, 92.0),
        ),
        black_segments=(Segment(40.0, 42.0),),
        gop=50,
    )
    return (h264, *others, vfr, long)


def spec_named(name: str) -> VideoSpec:
    for spec in standard_specs():
        if spec.name == name:
            return spec
    raise KeyError(name)
