"""Boundary refinement: where an event's edges are looked at again, and how the look moves them."""
