"""The service loop: Kafka consumer, ingest handler, in-flight ledger, outbox and commit,
policies, dedup and work markers.

:func:`run_worker` is imported when called: the live room uses this room's outcome builders, and
the loop (``main``) imports the live room, so an eager import here would go round in a circle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import threading

    from vidloc.settings import Settings


def run_worker(settings: Settings, stop: threading.Event | None = None) -> int:
    """Consume ``video.ingest`` until ``stop`` is set or SIGTERM/SIGINT (the ``vidloc worker``)."""
    from workers.service.main import run_worker as run

    return run(settings, stop)


__all__ = [
    "run_worker",
]
