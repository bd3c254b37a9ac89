"""Work markers in the object store: the I/O half of :mod:`workers.service.dedup`.

One small JSON object per work item under ``[tenants/<t>/]work/<video_id>/`` in the timeline
bucket. Every store failure is logged and ignored: deduplication saves work, it must never stop a
job (without it, delivery is still at-least-once with identical output). Two workers that read
"no marker" at the same instant both run; S3 offers no compare-and-set here, and the cost of that
race is one extra job, not a wrong result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from contracts import ContractError, IngestEvent, ResultEvent, decode_result
from vidloc.errors import ObjectMissing, VidlocError
from vidloc.tenancy import tenant_of_key
from workers.service.dedup import (
    RUNNING_LEASE_S,
    Verdict,
    WorkMarker,
    decide,
    decode_marker,
    encode_marker,
    marker_key,
    work_id,
)

log = logging.getLogger(__name__)


class MarkerStore(Protocol):
    def get_bytes(self, bucket: str, key: str) -> bytes: ...

    def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str = "application/json"
    ) -> Any: ...

    def delete(self, bucket: str, key: str) -> None: ...


@dataclass(frozen=True)
class WorkCheck:
    verdict: Verdict
    key: str  # the marker's object key
    stored: ResultEvent | None = None  # the result to answer from, for ANSWER
    running_job: str | None = None  # the job holding the work, for WAIT


class WorkMarkers:
    def __init__(
        self,
        store: MarkerStore,
        bucket: str,
        *,
        clock: Callable[[], float] = time.time,
        lease_s: float = RUNNING_LEASE_S,
    ) -> None:
        self._store = store
        self._bucket = bucket
        self._clock = clock
        self._lease_s = lease_s

    def check(self, event: IngestEvent, job_id: str, localizer: str) -> WorkCheck:
        work = work_id(event, localizer)
        key = marker_key(event.effective_video_id, work, tenant_of_key(event.source.key))
        try:
            marker = decode_marker(self._store.get_bytes(self._bucket, key))
        except ObjectMissing:
            marker = None
        except VidlocError as exc:
            log.warning("work marker %s not read (%s); running the job", key, exc)
            return WorkCheck(Verdict.RUN, key)
        verdict = decide(marker, job_id=job_id, now=self._clock(), lease_s=self._lease_s)
        if verdict is Verdict.ANSWER and marker is not None and marker.result is not None:
            try:
                return WorkCheck(verdict, key, stored=decode_result(marker.result))
            except ContractError as exc:
                log.warning("work marker %s holds no readable result (%s); running", key, exc)
                return WorkCheck(Verdict.RUN, key)
        running = marker.job_id if marker is not None else None
        return WorkCheck(verdict, key, running_job=running)

    def start(self, key: str, job_id: str) -> None:
        self._put(key, WorkMarker("running", job_id, self._clock()))

    def finish(self, key: str, job_id: str, result: bytes) -> None:
        self._put(key, WorkMarker("done", job_id, self._clock(), result))

    def release(self, key: str) -> None:
        """The job failed for good: a later duplicate runs again instead of waiting."""
        try:
            self._store.delete(self._bucket, key)
        except VidlocError as exc:
            log.warning("work marker %s not removed: %s", key, exc)

    def _put(self, key: str, marker: WorkMarker) -> None:
        try:
            self._store.put_bytes(self._bucket, key, encode_marker(marker))
        except VidlocError as exc:
            log.warning("work marker %s not written: %s", key, exc)
