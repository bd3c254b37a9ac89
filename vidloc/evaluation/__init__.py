"""Measure localization quality and cost: ground truth + timelines in, metrics out."""
