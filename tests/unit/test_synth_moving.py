"""The moving corpus: what the fake model sees on every frame is exactly the ground truth."""

from __future__ import annotations

import json

import pytest

from devkit.fake_vlm.vision import visible_labels
from devkit.synth.corpus import bench_specs
from devkit.synth.draw import FrameDrawer
from devkit.synth.moving_corpus import moving_specs
from devkit.synth.spec import VideoSpec


@pytest.mark.parametrize("spec", moving_specs(), ids=lambda s: s.name)
def test_moving_shapes_are_seen_exactly_while_their_event_lasts(spec: VideoSpec) -> None:
    drawer = FrameDrawer(spec)
    edges = {round(t * spec.fps) for e in spec.events for t in (e.start_s, e.end_s)}
    # Every frame next to an event edge, and every 7th frame elsewhere.
    frames = {i for e in edges for i in (e - 1, e)} | set(range(0, spec.source_frame_count, 7))
    for index in sorted(i for i in frames if 0 <= i < spec.source_frame_count):
        t = index / spec.fps
        assert visible_labels(drawer.draw(index)) == frozenset(spec.labels_at(t)), (spec.name, t)


def test_moving_frames_change_although_nothing_happens() -> None:
    spec = next(s for s in moving_specs() if s.clock and s.pan_px_per_s)
    drawer = FrameDrawer(spec)
    a, b = drawer.draw(0), drawer.draw(round(spec.fps))  # one second later, no event
    assert spec.labels_at(0.0) == spec.labels_at(1.0)
    assert (a != b).mean() > 0.3  # the pan moved most of the picture


def test_still_specs_keep_their_fingerprints() -> None:
    # Motion fields at their defaults stay out, so cached still renders are reused.
    for spec in bench_specs():
        assert "moving_shapes" not in json.loads(spec.fingerprint())
    assert json.loads(moving_specs()[0].fingerprint())["moving_shapes"] is True
