"""Synthetic test media with known events (ground truth), shared by tests, bench and the demo."""

from devkit.synth.catalogue import spec_named
from devkit.synth.render import ensure_rendered
from devkit.synth.spec import SyntheticEvent, VideoSpec

__all__ = ["SyntheticEvent", "VideoSpec", "ensure_rendered", "spec_named"]
