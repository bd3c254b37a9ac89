"""What the submit, webhook and event-stream routes share, built once by create_app."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from vidloc.adapters.kafka import EventPublisher
from vidloc.adapters.object_store import ObjectStore
from vidloc.api.auth import Caller, require
from vidloc.api.status import StatusBook
from vidloc.settings import Settings
from vidloc.webhooks import TargetPolicy, WebhookRegistry

DAY_S = 24 * 3600.0


class SubmitQuota:
    """Submissions per key over a rolling day, counted in this process (like the rate limit:
    N replicas allow N times the count)."""

    def __init__(self, per_day: int, window_s: float = DAY_S) -> None:
        self._per_day = per_day
        self._window_s = window_s
        self._lock = threading.Lock()
        self._stamps: dict[str, deque[float]] = {}

    def take(self, who: str, now: float) -> float:
        """0 when one more submission is allowed (and counted), else seconds until one is."""
        with self._lock:
            stamps = self._stamps.setdefault(who, deque())
            while stamps and stamps[0] <= now - self._window_s:
                stamps.popleft()
            if len(stamps) >= self._per_day:
                return stamps[0] + self._window_s - now
            stamps.append(now)
            return 0.0


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
            quota=SubmitQuota(settings.api_submit_per_day),
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
        return time.monotonic()


def front(request: Request) -> FrontDoor:
    found: FrontDoor = request.app.state.front
    return found


Front = Annotated[FrontDoor, Depends(front)]
Submitter = Annotated[Caller, Depends(require("submit"))]
