"""Tenants: who owns an object, from where it lives (pure).

A tenant owns the prefix ``tenants/<tenant>/`` in the video bucket and in the timeline bucket:
its uploads are ``videos/tenants/<tenant>/...`` and its timelines
``timelines/tenants/<tenant>/timelines/<video_id>/timeline.json``. An object outside every
tenant prefix belongs to no tenant (None): the single-tenant layout vidloc had before tenants,
which an API without keys still serves. The key prefix is the truth; the optional ``tenant``
field of ingest/result/progress events is derived from it, never trusted over it.
"""

from __future__ import annotations

import re

from contracts import ProgressEvent, ResultEvent
from contracts.common import SAFE_ID_PATTERN
from vidloc import names

_TENANT = re.compile(SAFE_ID_PATTERN)


def check_tenant(tenant: str) -> str:
    """``tenant`` if it can be a tenant name (one safe key segment), else ValueError."""
    if not _TENANT.fullmatch(tenant):
        raise ValueError(
            f"{tenant!r} is not a tenant name (letters, digits, '.', '_', '-'; max 128)"
        )
    return tenant


def tenant_of_key(key: str) -> str | None:
    """The tenant whose prefix ``key`` is under, None when it is under none."""
    head = f"{names.TENANT_PREFIX}/"
    if not key.startswith(head):
        return None
    tenant, sep, rest = key[len(head) :].partition("/")
    if not sep or not rest or not _TENANT.fullmatch(tenant):
        return None
    return tenant


def event_tenant(event: ResultEvent | ProgressEvent) -> str | None:
    """The tenant an event is about: its source key's prefix when it names a source (the
    truth), else the tenant it declares, else None (no tenant)."""
    source = getattr(event, "source", None)
    if source is not None and (owner := tenant_of_key(source.key)) is not None:
        return owner
    return event.tenant


def tenant_key(tenant: str | None, key: str) -> str:
    """``key`` placed under ``tenant``'s prefix (unchanged for no tenant or if already there)."""
    if tenant is None or tenant_of_key(key) == tenant:
        return key
    return names.tenant_root(check_tenant(tenant)) + key.lstrip("/")
