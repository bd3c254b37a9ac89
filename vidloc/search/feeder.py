"""What keeps a search index current: a sync from the stored timelines, then the results.

``sync`` lists the timeline bucket (every tenant: one LIST per 1000 timelines) and fetches only
the timelines whose etag the index does not have (a video's first analysis and each later one,
``analyses/<id>/timeline.json`` beside it), so a fresh replica builds its file from S3
and a restarted one catches up in one listing. After it, ``offer`` takes each result event the
API's bus feed reads (``video.results``, read_committed) and a background thread indexes the
timeline it names. Results older than the sync's listing describe timelines that listing saw,
so the replay of the topic at start-up costs no fetch.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from contracts import DEFAULT_ANALYSIS_ID, ContractError, ResultEvent, Timeline, decode_timeline
from vidloc import names
from vidloc.adapters.object_store import ObjectStore
from vidloc.errors import ObjectMissing
from vidloc.search.index import SearchIndex, analysis_of
from vidloc.tenancy import event_tenant, tenant_of_key

log = logging.getLogger(__name__)

_SUFFIX = "/timeline.json"
# Results this much older than the sync's listing are covered by it (clock skew allowed for).
SKEW_S = 60.0
_BATCH = 200

# (tenant, video_id, analysis): one stored timeline.
Slot = tuple[str | None, str, str]


def slot_of_key(key: str) -> Slot | None:
    """``[tenants/<t>/]timelines/<video_id>/timeline.json`` -> (tenant, video_id, "default");
    ``.../<video_id>/analyses/<analysis>/timeline.json`` -> (tenant, video_id, analysis); None
    for any other key. The inverse of ``names.analysis_timeline_key``."""
    tenant = tenant_of_key(key)
    prefix = f"{names.tenant_root(tenant)}{names.TIMELINE_PREFIX}/"
    if not key.startswith(prefix) or not key.endswith(_SUFFIX):
        return None
    parts = key[len(prefix) : -len(_SUFFIX)].split("/")
    if len(parts) == 1 and parts[0]:
        return tenant, parts[0], DEFAULT_ANALYSIS_ID
    if (
        len(parts) == 3
        and parts[0]
        and parts[1] == names.ANALYSES_FOLDER
        and parts[2] not in ("", DEFAULT_ANALYSIS_ID)
    ):
        return tenant, parts[0], parts[2]
    return None


@dataclass(frozen=True)
class SyncReport:
    listed: int
    fetched: int
    removed: int
    unreadable: int
    seconds: float


class Indexer:
    """Fills ``index`` from ``bucket`` of ``store``; ``start()`` runs sync + results in a thread."""

    def __init__(self, index: SearchIndex, store: ObjectStore, bucket: str) -> None:
        self.index = index
        self.store = store
        self.bucket = bucket
        self.ready = threading.Event()  # the first sync finished
        self.synced_at: float | None = None
        self.last_error: str | None = None
        self._pending: dict[Slot, float] = {}
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the sync ---------------------------------------------------------------------------

    def sync(self) -> SyncReport:
        started = time.monotonic()
        listed_at = time.time()
        known = self.index.etags()
        seen: set[Slot] = set()
        batch: list[tuple[str | None, Timeline, str]] = []
        fetched = unreadable = 0
        for info in self.store.list_objects(self.bucket):
            slot = slot_of_key(info.key)
            if slot is None:
                continue
            seen.add(slot)
            if known.get(slot) == info.etag:
                continue
            timeline, etag = self._fetch(info.key, slot)
            if timeline is None:
                unreadable += etag == "unreadable"
                continue
            fetched += 1
            batch.append((slot[0], timeline, etag))
            if len(batch) >= _BATCH:
                self.index.put_many(batch)
                batch = []
        if batch:
            self.index.put_many(batch)
        gone = set(known) - seen
        for tenant, video_id, analysis in gone:
            self.index.remove(tenant, video_id, analysis)
        if fetched > 1000:
            self.index.optimize()
        self.synced_at = listed_at
        report = SyncReport(len(seen), fetched, len(gone), unreadable, time.monotonic() - started)
        log.info(
            "search index synced: %d timelines listed, %d fetched, %d removed, %d unreadable "
            "in %.1f s",
            report.listed,
            report.fetched,
            report.removed,
            report.unreadable,
            report.seconds,
        )
        return report

    def _fetch(self, key: str, slot: Slot) -> tuple[Timeline | None, str]:
        try:
            data, etag = self.store.get_versioned(self.bucket, key)
        except ObjectMissing:
            return None, "missing"
        try:
            timeline = decode_timeline(data)
        except ContractError as exc:
            log.warning("search index: skipping unreadable %s/%s: %s", self.bucket, key, exc)
            return None, "unreadable"
        if (timeline.video_id, analysis_of(timeline)) != slot[1:]:
            # The routes address an event by where its timeline lives: one that names another
            # video or analysis than its key would link to events that are not there.
            log.warning(
                "search index: skipping %s/%s: it holds %s analysis %s",
                self.bucket,
                key,
                timeline.video_id,
                analysis_of(timeline),
            )
            return None, "unreadable"
        return timeline, etag

    def refresh(
        self, tenant: str | None, video_id: str, analysis: str = DEFAULT_ANALYSIS_ID
    ) -> bool:
        """Index the stored timeline of one analysis of a video now; False when there is none
        (it is removed from the index)."""
        key = names.analysis_timeline_key(video_id, analysis, tenant)
        timeline, etag = self._fetch(key, (tenant, video_id, analysis))
        if timeline is None:
            if etag == "missing":
                self.index.remove(tenant, video_id, analysis)
            return False
        if self.index.etag(tenant, video_id, analysis) != etag:
            self.index.put(tenant, timeline, etag)
        return True

    # -- results from the bus ---------------------------------------------------------------

    def offer(self, result: ResultEvent) -> None:
        """Queue the video of a result event for indexing (the bus feed's thread calls this)."""
        if result.status != "succeeded" or result.timeline is None:
            return
        if result.timeline.bucket != self.bucket:
            return  # another deployment's (or another test's) bucket
        tenant = event_tenant(result)
        analysis = result.analysis_id or DEFAULT_ANALYSIS_ID
        if names.analysis_timeline_key(result.video_id, analysis, tenant) != result.timeline.key:
            return  # not where this tenant's timeline lives: never trust the event over the key
        at = result.created_at.timestamp()
        if self.synced_at is not None and at < self.synced_at - SKEW_S:
            return
        with self._wake:
            self._pending[(tenant, result.video_id, analysis)] = at
            self._wake.notify()

    # -- the thread -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="vidloc-search-index", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set() and not self.ready.is_set():
            try:
                self.sync()
                self.index.set_meta("synced_at", datetime.now().astimezone().isoformat())
                self.ready.set()
            except Exception as exc:  # a daemon thread: say why, and try again
                self.last_error = str(exc)
                log.warning("search index sync failed: %s; retrying in 5 s", exc)
                self._stop.wait(5.0)
        while not self._stop.is_set():
            with self._wake:
                while not self._pending and not self._stop.is_set():
                    self._wake.wait(1.0)
                pending, self._pending = self._pending, {}
            for tenant, video_id, analysis in pending:
                try:
                    self.refresh(tenant, video_id, analysis)
                except Exception as exc:  # one video's failure must not end the thread
                    self.last_error = str(exc)
                    log.warning("search index: %s of %s not indexed: %s", video_id, tenant, exc)
