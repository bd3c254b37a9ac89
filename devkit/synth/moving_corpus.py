"""The moving half of the benchmark corpus: the same palette events on pictures that never stand
still (shapes travelling across the frame, camera pans, an on-screen clock, noise).

Eight clips of 45 s, 6 minutes in all, 320x180 at 5-10 fps. Everything that moves is either an
event's shape (visible exactly while the event lasts, wherever it is) or something that is no
event at all (the sliding white box, the clock, the pan, the noise), so the truth stays exact to
the frame. Boundaries fall off the 1 s grid, on cuts, two in one second, across the 30 s chunk
edge; events last from 1 s to half a minute. Each label occurs at most once per clip.
"""

from __future__ import annotations

from devkit.synth.spec import SyntheticEvent, VideoSpec

E = SyntheticEvent


def _moving(name: str, fps: float, **kw: object) -> VideoSpec:
    return VideoSpec(
        name=name,
        duration_s=45.0,
        fps=fps,
        width=320,
        height=180,
        gop=50,
        moving_shapes=True,
        **kw,  # type: ignore[arg-type]
    )


def moving_specs() -> tuple[VideoSpec, ...]:
    return (
        _moving(
            "m01_h264_travel",
            10.0,
            cuts=(20.0,),
            events=(
                E("red circle", 3.3, 9.7),
                E("green square", 12.4, 13.6),
                E("blue triangle", 21.0, 35.2),  # crosses the 30 s chunk edge
                E("yellow star", 38.1, 44.0),
            ),
        ),
        _moving(
            "m02_h264_pan",
            10.0,
            pan_px_per_s=40.0,
            cuts=(15.0, 32.0),
            events=(
                E("red circle", 5.6, 6.7),  # 1.1 s
                E("yellow star", 15.0, 24.3),  # starts on a cut
                E("green square", 26.2, 32.0),  # ends on a cut
                E("blue triangle", 36.5, 42.9),
            ),
        ),
        _moving(
            "m03_h264_clock",
            10.0,
            clock=True,
            cuts=(25.0,),
            events=(
                E("blue triangle", 1.7, 12.2),
                E("red circle", 12.5, 14.0),  # starts 0.3 s after another event ends
                E("green square", 29.4, 30.4),  # 1 s across 30 s
                E("yellow star", 33.8, 41.1),
            ),
        ),
        _moving(
            "m04_h264_noise",
            5.0,
            noise=8.0,
            cuts=(18.0,),
            events=(
                E("green square", 2.4, 17.0),
                E("red circle", 8.0, 9.0),  # 1 s inside another event
                E("yellow star", 19.6, 21.4),
                E("blue triangle", 27.2, 43.8),
            ),
        ),
        _moving(
            "m05_vp9_everything",
            10.0,
            codec="vp9",
            pan_px_per_s=30.0,
            clock=True,
            noise=5.0,
            cuts=(22.5,),
            events=(
                E("yellow star", 4.1, 5.1),
                E("red circle", 7.7, 19.9),
                E("blue triangle", 22.5, 27.0),  # starts on a cut
                E("green square", 31.3, 38.6),
            ),
        ),
        _moving(
            "m06_mjpeg_clock_noise",
            10.0,
            codec="mjpeg",
            clock=True,
            noise=6.0,
            events=(
                E("red circle", 0.8, 2.9),
                E("green square", 10.2, 11.2),
                E("blue triangle", 10.6, 25.1),  # starts 0.4 s after another, inside it
                E("yellow star", 28.7, 44.2),
            ),
        ),
        _moving(
            "m07_h264_pan_fast",
            5.0,
            pan_px_per_s=60.0,
            cuts=(12.0, 30.0),
            events=(
                E("blue triangle", 3.4, 4.6),
                E("yellow star", 12.0, 30.0),  # exactly one shot
                E("red circle", 33.2, 36.0),
                E("green square", 39.8, 41.0),
            ),
        ),
        _moving(
            "m08_h264_clock_pan",
            10.0,
            pan_px_per_s=25.0,
            clock=True,
            cuts=(9.0, 36.0),
            events=(
                E("green square", 1.2, 8.1),
                E("red circle", 9.6, 10.7),
                E("blue triangle", 14.3, 29.6),
                E("yellow star", 29.9, 31.0),  # 0.3 s after another event ends
            ),
        ),
    )
