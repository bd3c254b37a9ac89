"""Webhook registrations and dead letters, kept as small JSON objects in the timeline bucket.

Why the object store: the API (which registers) and the deliverer (which reads) are separate
processes, often on separate hosts, and both already reach the store; a registration is read
every few seconds by the deliverer, so no cache has to be told about changes. The signing
secret is stored in clear because the deliverer must sign with it: the store is the
deployment's own, and tenants never hold its credentials (docs/security.md).

    webhooks/<tenant | _>/<webhook id>.json                      one registration
    webhook-dead-letters/<tenant | _>/<webhook id>/<delivery id>.json   one given-up delivery
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vidloc.adapters.object_store import ObjectStore
from vidloc.errors import ObjectMissing

log = logging.getLogger(__name__)

EventKind = Literal["result", "progress"]
REGISTRY_PREFIX = "webhooks/"
DEAD_PREFIX = "webhook-dead-letters/"
M = TypeVar("M", bound=BaseModel)
_NO_TENANT = "_"  # not a tenant name (those start with a letter or digit)


class Webhook(BaseModel):
    """One registration: results (and progress, if asked) of ``tenant``'s videos, or of the
    videos ``key_id`` submitted, POSTed to ``url``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    tenant: str | None = None
    key_id: str | None = None  # set: only videos this API key submitted
    url: str
    events: tuple[EventKind, ...] = ("result",)
    secret: str
    created_at: datetime


class DeadLetter(BaseModel):
    """A delivery given up after VIDLOC_WEBHOOK_RETRY_FOR_S: what an operator sees and replays."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    webhook_id: str
    tenant: str | None = None
    delivery_id: str
    kind: EventKind
    event_id: str
    video_id: str
    body: str = Field(description="the event's JSON, exactly as it was signed and sent")
    attempts: int
    first_attempt_at: datetime
    dead_at: datetime
    last_error: str


def new_webhook_id() -> str:
    return "wh_" + secrets.token_hex(8)


def _owner(tenant: str | None) -> str:
    return tenant or _NO_TENANT


def _tenant(owner: str) -> str | None:
    return None if owner == _NO_TENANT else owner


class WebhookRegistry:
    def __init__(self, store: ObjectStore, bucket: str) -> None:
        self._store = store
        self._bucket = bucket

    def _key(self, tenant: str | None, webhook_id: str) -> str:
        return f"{REGISTRY_PREFIX}{_owner(tenant)}/{webhook_id}.json"

    def save(self, hook: Webhook) -> None:
        self._store.put_bytes(
            self._bucket, self._key(hook.tenant, hook.id), hook.model_dump_json().encode()
        )

    def get(self, tenant: str | None, webhook_id: str) -> Webhook | None:
        try:
            data = self._store.get_bytes(self._bucket, self._key(tenant, webhook_id))
        except ObjectMissing:
            return None
        return _parse(Webhook, data, webhook_id)

    def remove(self, tenant: str | None, webhook_id: str) -> bool:
        if self.get(tenant, webhook_id) is None:
            return False
        self._store.delete(self._bucket, self._key(tenant, webhook_id))
        return True

    def of_tenant(self, tenant: str | None) -> list[Webhook]:
        return sorted(self._load(f"{REGISTRY_PREFIX}{_owner(tenant)}/"), key=_by_creation)

    def all(self) -> list[Webhook]:
        return sorted(self._load(REGISTRY_PREFIX), key=_by_creation)

    def _load(self, prefix: str) -> Iterator[Webhook]:
        for key in self._store.list_keys(self._bucket, prefix):
            try:
                data = self._store.get_bytes(self._bucket, key)
            except ObjectMissing:
                continue  # removed between the listing and the read
            hook = _parse(Webhook, data, key)
            if hook is not None:
                yield hook

    # -- dead letters ---------------------------------------------------------------------

    def _dead_key(self, letter: DeadLetter) -> str:
        owner = _owner(letter.tenant)
        return f"{DEAD_PREFIX}{owner}/{letter.webhook_id}/{letter.delivery_id}.json"

    def bury(self, letter: DeadLetter) -> None:
        self._store.put_bytes(
            self._bucket, self._dead_key(letter), letter.model_dump_json().encode()
        )

    def exhume(self, letter: DeadLetter) -> None:
        self._store.delete(self._bucket, self._dead_key(letter))

    def dead_letters(
        self, tenant: str | None = None, webhook_ids: Sequence[str] = (), *, every_tenant: bool
    ) -> list[DeadLetter]:
        """Dead letters of ``tenant`` (or of every tenant), optionally of some webhooks only."""
        prefix = DEAD_PREFIX if every_tenant else f"{DEAD_PREFIX}{_owner(tenant)}/"
        found = []
        for key in self._store.list_keys(self._bucket, prefix):
            try:
                letter = _parse(DeadLetter, self._store.get_bytes(self._bucket, key), key)
            except ObjectMissing:
                continue
            if letter is not None and (not webhook_ids or letter.webhook_id in webhook_ids):
                found.append(letter)
        return sorted(found, key=lambda d: d.dead_at)


def _by_creation(hook: Webhook) -> tuple[datetime, str]:
    return hook.created_at, hook.id


def _parse(model: type[M], data: bytes, where: str) -> M | None:
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        log.warning("skipping unreadable webhook record %s: %s", where, exc)
        return None
