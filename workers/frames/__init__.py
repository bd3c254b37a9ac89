"""Frame sampling: pure plans (``plan``), decoder adapters (decord, PyAV) and the choice
between them (``select``)."""

from workers.frames.select import (
    choose_source_name,
    close_source,
    forced_source,
    make_source,
    open_frame_source,
    open_ranged_source,
    source_warnings,
)

__all__ = [
    "choose_source_name",
    "close_source",
    "forced_source",
    "make_source",
    "open_frame_source",
    "open_ranged_source",
    "source_warnings",
]
