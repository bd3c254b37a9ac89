"""The HTTP query API: video status, timelines, event queries, the viewer page, health.

``create_app(settings)`` builds the FastAPI application; ``vidloc api`` serves it with uvicorn.
"""

from vidloc.api.app import create_app

__all__ = ["create_app"]
