"""Timelines as the API reads them from the timeline bucket (through the one S3 adapter)."""

from __future__ import annotations

import logging

from contracts import ContractError, Timeline, decode_timeline
from vidloc import names
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.status import final_job_id
from vidloc.errors import ObjectMissing, VidlocError

log = logging.getLogger(__name__)

_SUFFIX = "/timeline.json"


def video_id_from_key(key: str, tenant: str | None = None) -> str | None:
    """``[tenants/<t>/]timelines/<video_id>/timeline.json`` -> video_id; None for any other key
    (including another tenant's)."""
    prefix = f"{names.tenant_root(tenant)}{names.TIMELINE_PREFIX}/"
    if not key.startswith(prefix) or not key.endswith(_SUFFIX):
        return None
    middle = key[len(prefix) : -len(_SUFFIX)]
    return middle if middle and "/" not in middle else None


class TimelineReader:
    """Reads one tenant's timelines at a time; ``tenant=None`` is the untenanted layout."""

    def __init__(self, store: ObjectStore, bucket: str) -> None:
        self.store = store
        self.bucket = bucket

    def video_ids(self, tenant: str | None = None) -> set[str]:
        """Every video of ``tenant`` with a stored timeline (one LIST per 1000 timelines)."""
        found = set()
        prefix = f"{names.tenant_root(tenant)}{names.TIMELINE_PREFIX}/"
        for key in self.store.list_keys(self.bucket, prefix):
            vid = video_id_from_key(key, tenant)
            if vid is not None:
                found.add(vid)
        return found

    def exists(
        self, video_id: str, tenant: str | None = None, analysis_id: str | None = None
    ) -> bool:
        key = names.analysis_timeline_key(video_id, analysis_id, tenant)
        return self.store.exists(self.bucket, key)

    def load(
        self, video_id: str, tenant: str | None = None, analysis_id: str | None = None
    ) -> Timeline | None:
        """The stored timeline (of the first analysis, or of ``analysis_id``), None when there
        is none; an unreadable one is an error."""
        key = names.analysis_timeline_key(video_id, analysis_id, tenant)
        try:
            data = self.store.get_bytes(self.bucket, key)
        except ObjectMissing:
            return None
        try:
            return decode_timeline(data)
        except ContractError as exc:
            raise VidlocError(
                f"stored timeline {self.bucket}/{key} is unreadable: {exc}",
                code="timeline_unreadable",
            ) from exc

    def final_job(
        self, video_id: str, tenant: str | None = None, analysis_id: str | None = None
    ) -> str | None:
        """The job that wrote the stored timeline when nothing of that job comes after it
        (``Timeline.final``); None when there is none, it is partial or it is unreadable (a
        status question is answered without it: the bus then decides)."""
        try:
            timeline = self.load(video_id, tenant, analysis_id)
        except VidlocError as exc:
            if exc.code != "timeline_unreadable":
                raise
            log.warning("%s", exc)
            return None
        return final_job_id(timeline)
