"""The one exception tree of vidloc.

::

    VidlocError
     ├── ConfigError                 bad or missing settings; the process cannot start
     │    └── ModelAuthFailed         401/403/404 from the model endpoint: wrong key, URL or model
     ├── StackError                  the local stack could not be brought up or down
     ├── FrameCacheUnreadable        a kept frame did not read back; the job decodes instead
     ├── InputError                  permanent: the job can never succeed -> failed result + DLQ
     │    ├── BadIngestEvent          malformed / unknown-version / refused ingest message
     │    ├── ModelAnswersUnusable    no chunk got a usable model answer, even re-asked
     │    ├── ObjectMissing           the object is gone or was replaced (etag changed)
     │    ├── ObjectTooLarge          over VIDLOC_MAX_OBJECT_BYTES
     │    ├── NotAVideo               no decodable video stream
     │    ├── VideoTooLong            duration over VIDLOC_MAX_DURATION_S
     │    ├── DecodeFailed            the decoder gave up on the file
     │    └── ModelRequestRejected    4xx (400/413/422...) for this request: too large, bad input
     │         └── ModelImageLimit  400 naming an image limit: the request is split, not failed
     └── TransientError              retry later: the world, not the input, is broken
          ├── ModelRateLimited        429 from the model endpoint (carries Retry-After)
          ├── ModelUnavailable        5xx, timeouts, refused connections
          ├── ModelAnswerInvalid      the model answered, but nothing usable (after retries)
          ├── StorageUnavailable      the S3 store cannot be reached
          └── BusUnavailable          Kafka cannot be reached

Every error carries a stable ``code`` that goes into failed result events and DLQ records.
Adapters translate library errors into this tree with ``raise ... from exc``.
"""

from __future__ import annotations


class VidlocError(Exception):
    """Base of every error vidloc raises on purpose."""

    code = "internal"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(VidlocError):
    code = "config"


class ModelAuthFailed(ConfigError):
    """The model endpoint refused our credentials, URL or model name (401/403/404).

    Not an InputError: every message would fail the same way, so the DLQ is the wrong place;
    the operator must fix the configuration.
    """

    code = "model_auth_failed"


class StackError(VidlocError):
    code = "stack"


class FrameCacheUnreadable(VidlocError):
    """A frame-cache object did not read back whole in the middle of a job that used it.

    Never leaves the job runner: it decodes the video instead (the chunks localized so far
    are checkpointed) and says so in the timeline's warnings.
    """

    code = "frame_cache_unreadable"


class InputError(VidlocError):
    """Permanent: retrying cannot help, the message goes to the DLQ."""

    code = "bad_input"


class BadIngestEvent(InputError):
    code = "bad_ingest_event"


class ObjectMissing(InputError):
    code = "object_missing"


class ObjectTooLarge(InputError):
    code = "object_too_large"


class NotAVideo(InputError):
    code = "not_a_video"


class VideoTooLong(InputError):
    code = "video_too_long"


class DecodeFailed(InputError):
    code = "decode_failed"


class ModelAnswersUnusable(InputError):
    """Every chunk's model answer was unusable (no readable answer, or every event in it
    rejected), even after re-asking: the job would otherwise succeed with an empty timeline.

    Permanent: the same frames and question get the same kind of answer, and each try costs.
    """

    code = "model_answers_unusable"


class ModelRequestRejected(InputError):
    """The endpoint rejected this particular request (e.g. 400 too many image tokens, 413).

    Permanent for the chunk that produced it: sending the same frames again cannot help.
    """

    code = "model_request_rejected"

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class ModelImageLimit(ModelRequestRejected):
    """The endpoint allows fewer images per request than this one held (vLLM's
    ``--limit-mm-per-prompt``); ``limit`` is the number it named, when it named one.

    The localizer splits the request instead of failing the chunk.
    """

    code = "model_image_limit"

    def __init__(self, message: str, *, status_code: int | None = None, limit: int | None = None):
        super().__init__(message, status_code=status_code)
        self.limit = limit


class TransientError(VidlocError):
    """The world is broken for now; the same input may succeed later."""

    code = "transient"


class ModelRateLimited(TransientError):
    code = "model_rate_limited"

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ModelUnavailable(TransientError):
    code = "model_unavailable"


class ModelAnswerInvalid(TransientError):
    code = "model_answer_invalid"


class StorageUnavailable(TransientError):
    code = "storage_unavailable"


class BusUnavailable(TransientError):
    code = "bus_unavailable"
