"""One error shape for every failure: ``{"error": {"code": ..., "message": ...}}``.

Handlers map vidloc's exception tree to HTTP: missing things are 404, a store or bus that
cannot be reached is 503, anything unexpected is a 500 whose body names no internals (the
traceback goes to the log, never to the client).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from vidloc.errors import ObjectMissing, TransientError, VidlocError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class ApiError(Exception):
    """Raised by routes for an answer that is an error on purpose (404, 422, 503)."""

    def __init__(
        self, status_code: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = headers


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(
    status_code: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status_code, headers=headers)


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.code, exc.message, exc.headers)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "invalid_request", _describe_validation(exc))


def _flat(routes: Iterable[Any]) -> Iterator[Any]:
    for route in routes:
        inner = getattr(route, "original_router", None)  # FastAPI's included routers
        if inner is not None:
            yield from _flat(inner.routes)
        else:
            yield route


def _allowed_methods(request: Request) -> str | None:
    """Every method any route serves at this path: Starlette's 405 names only the first
    route's (GET /videos hides POST /videos, which another router adds)."""
    methods: set[str] = set()
    for route in _flat(request.app.router.routes):
        match, _ = route.matches({**request.scope, "method": "GET"})
        route_methods = getattr(route, "methods", None)
        if match != Match.NONE and route_methods:
            methods |= set(route_methods)
    return ", ".join(sorted(methods)) if methods else None


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and (allowed := _allowed_methods(request)) is not None:
        headers["Allow"] = allowed
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=headers)


async def _on_vidloc(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VidlocError)
    if isinstance(exc, ObjectMissing):
        return error_response(404, exc.code, "not found")
    if isinstance(exc, TransientError):
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return error_response(503, exc.code, "a backing service is unavailable; retry later")
    log.error("%s %s failed: %s", request.method, request.url.path, exc)
    return error_response(500, exc.code, "internal error")


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed", request.method, request.url.path)
    return error_response(500, "internal", "internal error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(VidlocError, _on_vidloc)
    app.add_exception_handler(Exception, _on_unexpected)
