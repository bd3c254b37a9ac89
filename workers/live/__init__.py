"""Live streams: one growing timeline per stream, a segment at a time."""

from workers.live.fold import Fold, fold_segment
from workers.live.segment_job import StreamJob

__all__ = [
    "Fold",
    "StreamJob",
    "fold_segment",
]
