"""Serve an API app on a real socket in a daemon thread (tests, the viewer test, embedding)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from devkit.asgi import run_in_thread


def serve_in_thread(
    app: FastAPI, *, host: str = "127.0.0.1", port: int = 0
) -> tuple[str, Callable[[], None]]:
    """Start uvicorn (with the app's lifespan) and return (base URL, stop)."""
    return run_in_thread(app, host=host, port=port, lifespan="on")
