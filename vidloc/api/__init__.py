"""The HTTP query API: video status, timelines, event queries, the viewer page, health.

``create_app(settings)`` builds the FastAPI application; ``vidloc api`` serves it with uvicorn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any as _Any

if TYPE_CHECKING:
    from vidloc.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> _Any:
    # Lazy: commands read the API's pure parts (vidloc ask: the status book, the timeline
    # reader), and every process the command line starts builds every command's parser; the
    # application (FastAPI, PyAV for clips, SQLite for search) cost the worker process 29 MB.
    if name == "create_app":
        from vidloc.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
