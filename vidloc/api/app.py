"""``create_app``: the API's one composition root. Nothing is built at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI

from vidloc.adapters.object_store import ObjectStore
from vidloc.api.errors import install_error_handlers
from vidloc.api.feed import StatusFeed
from vidloc.api.probes import Probe, Readiness, kafka_probe, s3_probe
from vidloc.api.routes import Services, router
from vidloc.api.status import StatusBook
from vidloc.api.timelines import TimelineReader
from vidloc.settings import Settings

log = logging.getLogger(__name__)

PRESIGN_EXPIRY_S = 3600


def create_app(
    settings: Settings,
    *,
    store: ObjectStore | None = None,
    book: StatusBook | None = None,
    follow_bus: bool = True,
    probes: Mapping[str, Probe] | None = None,
    presign: Callable[[str, str], str] | None = None,
) -> FastAPI:
    """Build the API.

    ``follow_bus`` starts the status feed (a Kafka reader thread) with the app's lifespan;
    tests that feed ``book`` themselves turn it off. ``probes`` replace the default
    Kafka + S3 readiness checks.
    """
    store = store or ObjectStore(settings, read_timeout_s=30.0)
    book = book or StatusBook()
    feed = StatusFeed(settings, book) if follow_bus else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if feed is not None:
            feed.start()
        try:
            yield
        finally:
            if feed is not None:
                feed.stop()

    app = FastAPI(
        title="vidloc query API",
        version="1",
        summary="Status, timelines and events of localized videos; a timeline viewer.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(router)
    app.state.feed = feed
    app.state.services = Services(
        timelines=TimelineReader(store, settings.timeline_bucket),
        book=book,
        readiness=Readiness(
            probes
            if probes is not None
            else {
                "kafka": kafka_probe(settings),
                "s3": s3_probe(store, settings.timeline_bucket),
            }
        ),
        presign=presign
        or (lambda bucket, key: store.presigned_get_url(bucket, key, PRESIGN_EXPIRY_S)),
    )
    return app
