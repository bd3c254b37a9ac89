"""Whether the user cancelled a job: its cancel marker (``names.cancel_key``), read cheaply.

The API and ``vidloc cancel`` write the marker beside the job's other objects in the timeline
bucket; every worker on the job looks for it: a span order before it starts and between its
chunks, a plain job between its chunks, the merging member before it merges (docs/delivery.md
"Cancelling"). Between chunks a :class:`CancelWatch` reads the store at most once per
``interval_s``, so a job of many short chunks does not pay a read for each.

A user's cancel is not a shutdown: ``IngestHandler.cancel`` (a ``threading.Event``) hands the
work back to the group; a marker ends it (``policy.CancelledByUser``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from vidloc import names
from vidloc.errors import ObjectMissing, TransientError
from workers.pipeline.checkpoint import checkpoint_usage
from workers.types import TokenTally

log = logging.getLogger(__name__)

# The one message a cancelled video's failed result carries (error.code "cancelled").
CANCELLED_MESSAGE = "cancelled by the user"
# Store reads between chunks at most this often.
CHECK_INTERVAL_S = 1.0


class MarkerStore(Protocol):
    def get_bytes(self, bucket: str, key: str) -> bytes: ...


class CheckpointReader(MarkerStore, Protocol):
    def list_keys(self, bucket: str, prefix: str = "") -> Iterator[str]: ...


def marker_present(store: MarkerStore, bucket: str, key: str) -> bool:
    """Whether the cancel marker is there (one GET). A store that cannot answer now counts as
    no cancel: the job goes on and the next look finds the marker, rather than a store outage
    ending jobs nobody cancelled."""
    try:
        store.get_bytes(bucket, key)
    except ObjectMissing:
        return False
    except TransientError as exc:
        log.warning("cancel marker %s not read: %s", key, exc)
        return False
    return True


class CancelWatch:
    """One job's cancel marker, read through ``look`` at most once per ``interval_s``; once
    seen, cancelled for good (a marker is never taken back)."""

    def __init__(
        self,
        look: Callable[[], bool],
        *,
        interval_s: float = CHECK_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._look = look
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._looked_at: float | None = None
        self._seen = False

    def cancelled(self, *, now: bool = False) -> bool:
        """Whether the job was cancelled, as of the last look; ``now`` looks regardless of
        when the last look was (before a span starts, before a merge)."""
        with self._lock:
            if self._seen:
                return True
            at = self._clock()
            if now or self._looked_at is None or at - self._looked_at >= self._interval_s:
                self._looked_at = at
                self._seen = self._look()
            return self._seen


def paid_so_far(
    store: CheckpointReader, bucket: str, video_id: str, job_id: str, tenant: str | None
) -> TokenTally:
    """The bill of a cancelled job: every chunk checkpointed under it (one LIST, a GET each),
    on whichever member and in whichever span it was paid."""
    prefix = names.checkpoint_prefix(video_id, job_id, tenant)
    total = TokenTally()
    for key in store.list_keys(bucket, prefix):
        if not key.rsplit("/", 1)[-1].startswith("chunk-"):
            continue  # spans.json
        try:
            usage = checkpoint_usage(store.get_bytes(bucket, key))
        except ObjectMissing:
            continue
        if usage is not None:
            total += usage
    return total
