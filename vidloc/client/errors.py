"""The client's exceptions: the API's error codes, raised.

::

    VidlocApiError                 any answer in the API's error shape (.status, .code, .message)
     ├── Unauthorized             401: no key, a wrong or revoked one
     ├── Forbidden                403: the key lacks the scope
     ├── NotFound                 404: video_not_found, timeline_not_found, object_not_found, ...
     ├── Conflict                 409: upload_mismatch, too_many_webhooks, video_not_running
     ├── TooLarge                 413: video_too_large, request_too_large
     ├── InvalidRequest           422: invalid_request, key_not_allowed, target_not_allowed, ...
     ├── RateLimited              429: rate_limited, submit_quota_exceeded (.retry_after_s)
     └── Unavailable              500/503: storage_unavailable, bus_unavailable, internal
    JobFailed                      wait(): the job ended failed (.code, .message from its result)
    WaitTimeout                    wait(): no final result in time
    TransportError                 the API (or the upload URL) could not be reached
"""

from __future__ import annotations

from typing import Any

import httpx


class VidlocClientError(Exception):
    """Base of everything the client raises."""


class VidlocApiError(VidlocClientError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class Unauthorized(VidlocApiError): ...


class Forbidden(VidlocApiError): ...


class NotFound(VidlocApiError): ...


class Conflict(VidlocApiError): ...


class TooLarge(VidlocApiError): ...


class InvalidRequest(VidlocApiError): ...


class RateLimited(VidlocApiError):
    def __init__(self, status: int, code: str, message: str, retry_after_s: float | None) -> None:
        super().__init__(status, code, message)
        self.retry_after_s = retry_after_s


class Unavailable(VidlocApiError): ...


class JobFailed(VidlocClientError):
    def __init__(self, video_id: str, code: str, message: str) -> None:
        super().__init__(f"video {video_id} failed: {code}: {message}")
        self.video_id = video_id
        self.code = code
        self.message = message


class WaitTimeout(VidlocClientError): ...


class TransportError(VidlocClientError): ...


_BY_STATUS: dict[int, type[VidlocApiError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    414: TooLarge,
    422: InvalidRequest,
}


def raise_for(response: httpx.Response) -> None:
    """Raise the exception for an error answer; nothing for a 2xx."""
    if response.is_success:
        return
    code, message = "http_error", response.reason_phrase
    try:
        body: Any = response.json()
        code = str(body["error"]["code"])
        message = str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        pass
    status = response.status_code
    if status == 429:
        after = response.headers.get("retry-after")
        retry = float(after) if after and after.isdigit() else None
        raise RateLimited(status, code, message, retry)
    if status >= 500:
        raise Unavailable(status, code, message)
    raise _BY_STATUS.get(status, VidlocApiError)(status, code, message)
