"""Boundary refinement: where an event's edges are looked at again, and how the look moves them."""

from workers.refinement.refine import RefineOutcome, refine_events

__all__ = [
    "RefineOutcome",
    "refine_events",
]
