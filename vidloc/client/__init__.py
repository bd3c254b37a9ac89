"""A Python client of the vidloc API (httpx; blocking and asyncio)::

    from vidloc.client import Client

    with Client("http://127.0.0.1:8080", api_key) as vidloc:
        job = vidloc.submit("talk.mp4", prompt="find the slides", labels=["slide"])
        job.wait()
        for event in job.events(label="slide"):
            print(event.start_s, event.end_s, event.description)

Results are the contracts' models (``Timeline``, ``TimelineEvent``); errors are the API's error
codes raised as exceptions (``vidloc.client.errors``).
"""

from vidloc.client.async_client import AsyncAnalysisJob, AsyncClient, AsyncJob
from vidloc.client.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    JobFailed,
    NotFound,
    RateLimited,
    TooLarge,
    TransportError,
    Unauthorized,
    Unavailable,
    VidlocApiError,
    VidlocClientError,
    WaitTimeout,
)
from vidloc.client.models import (
    Analysis,
    Cancel,
    SubmitResponse,
    Video,
    WebhookCreated,
    WebhookInfo,
)
from vidloc.client.sync_client import AnalysisJob, Client, Job

__all__ = [
    "Analysis",
    "AnalysisJob",
    "AsyncAnalysisJob",
    "AsyncClient",
    "AsyncJob",
    "Cancel",
    "Client",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "Job",
    "JobFailed",
    "NotFound",
    "RateLimited",
    "SubmitResponse",
    "TooLarge",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "Video",
    "VidlocApiError",
    "VidlocClientError",
    "WaitTimeout",
    "WebhookCreated",
    "WebhookInfo",
]
