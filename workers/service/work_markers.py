"""Work markers in the object store: the I/O half of :mod:`workers.service.dedup`.

One small JSON object per work item under ``[tenants/<t>/]work/<video_id>/`` in the timeline
bucket. Every write is a compare-and-set on the version last read (S3 ``If-Match`` /
``If-None-Match``, see ``ObjectStore.put_bytes_if``), and a job writes over a marker only while
it is its own ``running`` lease (:func:`~workers.service.dedup.may_write`):

- :meth:`WorkMarkers.claim` marks the work running only if the marker is still what the check
  read: of two workers that read "no marker" at once, one runs and the other waits;
- the :class:`Lease` it returns is renewed in the background every third of the lease while
  the job runs, and while its result waits for its commit, so a duplicate waits however long
  the job takes;
- it ends ``done`` (:meth:`Lease.finish`, once the result is committed), removed
  (:meth:`Lease.release`, a job that failed for good: a later duplicate runs again), or left to
  run out (:meth:`Lease.stop`: a retry of the same job resumes it).

Every store failure is logged and ignored: deduplication saves work, it must never stop a job
(without it, delivery is still at-least-once with identical output). A store that ignores
conditional headers turns compare-and-set into last-writer-wins; the owner check (read, compare
the job id, then write) still keeps one job from finishing or removing another's lease but for
the instant between the read and the write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from contracts import ContractError, IngestEvent, ResultEvent, decode_result
from vidloc.errors import ObjectMissing, VidlocError
from vidloc.tenancy import tenant_of_key
from workers.service.dedup import (
    RENEW_FRACTION,
    RUNNING_LEASE_S,
    Verdict,
    WorkMarker,
    decide,
    decode_marker,
    encode_marker,
    marker_key,
    may_write,
    work_id,
)

log = logging.getLogger(__name__)


class MarkerStore(Protocol):
    """The object store's compare-and-set (``vidloc.adapters.object_store.ObjectStore``)."""

    def get_versioned(self, bucket: str, key: str) -> tuple[bytes, str]: ...

    def put_bytes_if(
        self,
        bucket: str,
        key: str,
        data: bytes,
        *,
        etag: str | None,
        content_type: str = "application/json",
    ) -> Any: ...  # None when the object was not at ``etag`` (or existed, for None)

    def delete_if(self, bucket: str, key: str, etag: str) -> bool: ...


@dataclass(frozen=True)
class WorkCheck:
    verdict: Verdict
    key: str  # the marker's object key
    stored: ResultEvent | None = None  # the result to answer from, for ANSWER
    running_job: str | None = None  # the job holding the work, for WAIT
    etag: str | None = None  # the marker's version as read; None: there was none
    settling: bool = False  # WAIT: the work is finished here, its result awaiting its commit


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
        self.renew_every_s = lease_s * RENEW_FRACTION
        # The leases this worker holds, by marker key: while one lives, its "running" marker is
        # this worker's own, whatever job id a duplicate carries (see check).
        self._live: dict[str, Lease] = {}
        self._live_lock = threading.Lock()

    def check(self, event: IngestEvent, job_id: str, localizer: str) -> WorkCheck:
        work = work_id(event, localizer)
        key = marker_key(event.effective_video_id, work, tenant_of_key(event.source.key))
        try:
            marker, etag = self._read(key)
        except VidlocError as exc:
            log.warning("work marker %s not read (%s); running the job", key, exc)
            return WorkCheck(Verdict.RUN, key)
        with self._live_lock:
            held = self._live.get(key)
        if held is not None and marker is not None and marker.state == "running":
            # Held here: running in another slot, or finished and awaiting its commit (a copy of
            # the same event must not run it again as if it were a retry).
            return WorkCheck(
                Verdict.WAIT, key, running_job=marker.job_id, etag=etag, settling=held.settling
            )
        verdict = decide(marker, job_id=job_id, now=self._clock(), lease_s=self._lease_s)
        if verdict is Verdict.ANSWER and marker is not None and marker.result is not None:
            try:
                return WorkCheck(verdict, key, stored=decode_result(marker.result), etag=etag)
            except ContractError as exc:
                log.warning("work marker %s holds no readable result (%s); running", key, exc)
                return WorkCheck(Verdict.RUN, key, etag=etag)
        running = marker.job_id if marker is not None else None
        return WorkCheck(verdict, key, running_job=running, etag=etag)

    def claim(self, check: WorkCheck, job_id: str) -> Lease | None:
        """Mark the work running for ``job_id`` if its marker is still the version ``check``
        read; the lease is renewed until it ends. None: another job wrote it since (wait)."""
        marker = encode_marker(WorkMarker("running", job_id, self._clock()))
        try:
            written = self._store.put_bytes_if(self._bucket, check.key, marker, etag=check.etag)
        except VidlocError as exc:
            # Run anyway; the lease's renewals try to write the marker again.
            log.warning("work marker %s not written: %s", check.key, exc)
        else:
            if written is None:
                return None
        lease = Lease(self, check.key, job_id)
        with self._live_lock:
            self._live[check.key] = lease
        return lease

    def _ended(self, lease: Lease) -> None:
        with self._live_lock:
            if self._live.get(lease.key) is lease:
                del self._live[lease.key]

    def _read(self, key: str) -> tuple[WorkMarker | None, str | None]:
        """The marker (None: absent or unreadable) and its version (None: absent)."""
        try:
            data, etag = self._store.get_versioned(self._bucket, key)
        except ObjectMissing:
            return None, None
        return decode_marker(data), etag

    def _write_own(self, key: str, job_id: str, marker: WorkMarker | None) -> bool:
        """Replace (None: remove) the marker if it is still ``job_id``'s lease; False when it
        is another job's or ``done``. A store failure is logged and counts as still held."""
        try:
            current, etag = self._read(key)
            if not may_write(current, job_id):
                return False
            if marker is not None:
                data = encode_marker(marker)
                return self._store.put_bytes_if(self._bucket, key, data, etag=etag) is not None
            return etag is None or self._store.delete_if(self._bucket, key, etag)
        except VidlocError as exc:
            log.warning("work marker %s not updated: %s", key, exc)
            return True

    def renew(self, key: str, job_id: str) -> bool:
        """Refresh ``job_id``'s running marker; False once it is another job's (lost)."""
        return self._write_own(key, job_id, WorkMarker("running", job_id, self._clock()))

    def finish(self, key: str, job_id: str, result: bytes) -> bool:
        """Mark the work ``done`` with ``result`` if ``job_id`` still holds it."""
        return self._write_own(key, job_id, WorkMarker("done", job_id, self._clock(), result))

    def release(self, key: str, job_id: str) -> bool:
        """Remove the marker if ``job_id`` still holds it (owner-checked, compare-and-set)."""
        return self._write_own(key, job_id, None)


class Lease:
    """``job_id``'s hold on one work item: renewed every ``renew_every_s`` on a thread of its
    own until it ends in exactly one of :meth:`finish`, :meth:`release` or :meth:`stop`."""

    def __init__(self, markers: WorkMarkers, key: str, job_id: str) -> None:
        self.key = key
        self.job_id = job_id
        self.settling = False  # the job is finished; its result awaits its commit
        self._markers = markers
        self._ended = threading.Event()
        self._renewer = threading.Thread(
            target=self._renew_until_ended, name=f"lease-{job_id}", daemon=True
        )
        self._renewer.start()

    def _renew_until_ended(self) -> None:
        while not self._ended.wait(self._markers.renew_every_s):
            if not self._markers.renew(self.key, self.job_id):
                log.warning(
                    "work marker %s is another job's now; no longer renewed",
                    self.key,
                    extra={"job_id": self.job_id},
                )
                return

    def stop(self) -> None:
        """Stop renewing; the marker runs out after the lease (a retry of this job resumes)."""
        self._halt()
        self._markers._ended(self)

    def after_commit(self, result: bytes) -> Callable[[bool], None]:
        """The job is finished and ``result`` waits for its commit: renewed until then, then
        :meth:`finish` (committed) or :meth:`stop` (never committed from here)."""
        self.settling = True

        def settle(committed: bool) -> None:
            if committed:
                self.finish(result)
            else:
                self.stop()

        return settle

    def finish(self, result: bytes) -> None:
        """The job's result is committed: the work is ``done``, answered from ``result``."""
        self._halt()
        if not self._markers.finish(self.key, self.job_id, result):
            log.info("work marker %s is another job's; not marked done", self.key)
        self._markers._ended(self)

    def release(self) -> None:
        """The job failed for good: remove the marker if it is still this job's, so a later
        duplicate runs again instead of waiting; another job's marker is left alone."""
        self._halt()
        if not self._markers.release(self.key, self.job_id):
            log.info("work marker %s is another job's; left in place", self.key)
        self._markers._ended(self)

    def _halt(self) -> None:
        self._ended.set()
        if threading.current_thread() is not self._renewer:
            self._renewer.join()
