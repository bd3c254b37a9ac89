"""What the submit, webhook and event-stream routes share, built once by create_app."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from vidloc.adapters.kafka import EventPublisher
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.auth import Caller, require
from vidloc.api.errors import ApiError
from vidloc.api.quota import SubmitQuota
from vidloc.api.status import StatusBook
from vidloc.settings import Settings
from vidloc.webhooks import TargetPolicy, WebhookRegistry


@dataclass
class FrontDoor:
    settings: Settings
    store: ObjectStore
    book: StatusBook
    registry: WebhookRegistry
    policy: TargetPolicy
    quota: SubmitQuota
    _publisher: EventPublisher | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(cls, settings: Settings, store: ObjectStore, book: StatusBook) -> FrontDoor:
        return cls(
            settings=settings,
            store=store,
            book=book,
            registry=WebhookRegistry(store, settings.timeline_bucket),
            policy=TargetPolicy.parse(
                settings.webhook_allowed_networks, settings.webhook_allowed_hosts
            ),
            quota=SubmitQuota(store, settings.timeline_bucket, settings.api_submit_per_day),
        )

    def publisher(self) -> EventPublisher:
        """Opened on the first submission by name: an API that only reads needs no producer."""
        with self._lock:
            if self._publisher is None:
                self._publisher = EventPublisher(self.settings)
            return self._publisher

    def close(self) -> None:
        with self._lock:
            if self._publisher is not None:
                self._publisher.close()
                self._publisher = None

    def now(self) -> float:
        # Wall-clock: every replica stamps the shared submission count (quota.py).
        return time.time()

    def count_submission(self, key_id: str | None) -> None:
        """Count one submission (or ask: it pays the model the same) against the key's daily
        quota; 429 with Retry-After when it is spent."""
        wait_s = self.quota.take(key_id or "-", self.now())
        if wait_s > 0:
            raise ApiError(
                429,
                "submit_quota_exceeded",
                f"this key has made {self.settings.api_submit_per_day} submissions in the last day",
                {"Retry-After": str(max(1, math.ceil(wait_s)))},
            )


def front(request: Request) -> FrontDoor:
    found: FrontDoor = request.app.state.front
    return found


Front = Annotated[FrontDoor, Depends(front)]
Submitter = Annotated[Caller, Depends(require("submit"))]
