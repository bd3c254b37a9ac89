"""Synthetic test media with known events (ground truth), shared by tests, bench and the demo."""
