"""``create_app``: the API's one composition root. Nothing is built at import time."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import Depends, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from vidloc.adapters.object_store import ObjectStore
from vidloc.api.ask import router as ask_router
from vidloc.api.auth import Gate, KeyRing, claimed_key_id, log_denial, require
from vidloc.api.cancel import router as cancel_router
from vidloc.api.clips import ClipService
from vidloc.api.clips import router as clips_router
from vidloc.api.errors import error_response, install_error_handlers
from vidloc.api.events_stream import router as events_stream_router
from vidloc.api.feed import StatusFeed
from vidloc.api.front import FrontDoor
from vidloc.api.hooks import router as hooks_router
from vidloc.api.media import router as media_router
from vidloc.api.probes import Probe, Readiness, kafka_probe, s3_probe
from vidloc.api.ratelimit import RateLimiter
from vidloc.api.routes import Services, router
from vidloc.api.search import build_search
from vidloc.api.search import router as search_router
from vidloc.api.status import StatusBook, derive_state
from vidloc.api.submit import router as submit_router
from vidloc.api.timelines import TimelineReader
from vidloc.metrics import CONTENT_TYPE, Metrics
from vidloc.settings import Settings

log = logging.getLogger(__name__)


class VideosByStatus(Collector):
    """``vidloc_videos{status}``, counted from the status feed at scrape time."""

    def __init__(self, book: StatusBook, stalled_after_s: float | None = None) -> None:
        self._book = book
        self._stalled_after_s = stalled_after_s

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "vidloc_videos", "Videos the API has seen on the bus, by status", labels=["status"]
        )
        now = datetime.now(UTC)
        counts = Counter(
            state.status
            for (_, video_id), view in self._book.snapshot_all().items()
            if (
                state := derive_state(
                    video_id,
                    view,
                    has_timeline=False,
                    now=now,
                    stalled_after_s=self._stalled_after_s,
                )
            )
            is not None
        )
        for status, count in sorted(counts.items()):
            family.add_metric([status], count)
        yield family


def _count_requests(app: FastAPI, metrics: Metrics) -> None:
    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        # The route template, not the path: one series per endpoint, not one per video id.
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.api_request(
            route, request.method, response.status_code, time.perf_counter() - started
        )
        return response


def _limit_sizes(app: FastAPI, max_body_bytes: int, max_url_bytes: int) -> None:
    """Refuse oversized requests before any route runs. The API only reads (GET), so a body
    is never needed; the cap still bounds what a client can make the server buffer."""

    @app.middleware("http")
    async def limit(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        url_bytes = len(request.url.path) + len(request.url.query)
        if url_bytes > max_url_bytes:
            log_denial(request, 414, "URL too long", claimed_key_id(request))
            return error_response(414, "uri_too_long", f"URL over {max_url_bytes} bytes")
        length = request.headers.get("content-length")
        chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
        if chunked or (
            length is not None and (not length.isdigit() or int(length) > max_body_bytes)
        ):
            log_denial(request, 413, "request body too large", claimed_key_id(request))
            return error_response(
                413, "request_too_large", f"request bodies are limited to {max_body_bytes} bytes"
            )
        return await call_next(request)


def create_app(
    settings: Settings,
    *,
    store: ObjectStore | None = None,
    book: StatusBook | None = None,
    follow_bus: bool = True,
    probes: Mapping[str, Probe] | None = None,
    presign: Callable[[str, str], str] | None = None,
    metrics: Metrics | None = None,
) -> FastAPI:
    """Build the API.

    ``follow_bus`` starts the status feed (a Kafka reader thread) with the app's lifespan;
    tests that feed ``book`` themselves turn it off. ``probes`` replace the default
    Kafka + S3 readiness checks.
    """
    store = store or ObjectStore(settings, read_timeout_s=30.0)
    # A missing or unreadable keys file stops the start (ConfigError), never opens the API.
    keyring = KeyRing(settings.api_keys_file) if settings.api_keys_file is not None else None
    book = book or StatusBook()
    feed = StatusFeed(settings, book) if follow_bus else None
    search = build_search(settings, store)
    if feed is not None:
        feed.on_result = search.indexer.offer
    door = FrontDoor.build(settings, store, book)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        search.indexer.start()
        if feed is not None:
            feed.start()
        try:
            yield
        finally:
            if feed is not None:
                feed.stop()
            search.indexer.stop()
            search.index.close()
            door.close()

    # FastAPI's Swagger UI and ReDoc pages run scripts from a CDN on this origin, where the
    # keyed viewer keeps a key in sessionStorage: with keys there are none (the spec stays at
    # /openapi.json for any local tool).
    docs = keyring is None
    app = FastAPI(
        title="vidloc query API",
        version="1",
        summary="Status, timelines and events of localized videos; a timeline viewer.",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        swagger_ui_oauth2_redirect_url="/docs/oauth2-redirect" if docs else None,
    )
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(search_router)
    app.include_router(submit_router)
    app.include_router(cancel_router)
    app.include_router(ask_router)
    app.include_router(hooks_router)
    app.include_router(events_stream_router)
    app.include_router(media_router)
    app.include_router(clips_router)
    metrics = metrics or Metrics()
    metrics.registry.register(VideosByStatus(book, settings.api_stalled_after_s))
    _limit_sizes(app, settings.api_max_body_bytes, settings.api_max_url_bytes)
    _count_requests(app, metrics)
    origins = [o.strip() for o in settings.api_cors_origins.split(",") if o.strip()]
    if origins:
        # Off unless configured: then only these origins, only reads, only the key header.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET"],
            allow_headers=["Authorization"],
            allow_credentials=False,
        )

    # Counts span every tenant: admin only.
    @app.get("/metrics", include_in_schema=False, dependencies=[Depends(require("admin"))])
    def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    app.state.gate = Gate(keyring, RateLimiter(settings.api_rate_per_s, settings.api_rate_burst))
    app.state.feed = feed
    app.state.search = search
    app.state.clips = ClipService(store, settings)
    app.state.front = door
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
        or (lambda bucket, key: store.presigned_get_url(bucket, key, settings.api_presign_ttl_s)),
        stalled_after_s=settings.api_stalled_after_s,
    )
    return app
