"""The one exception tree of vidloc.

::

    VidlocError
     ├── ConfigError                 bad or missing settings; the process cannot start
     ├── StackError                  the local stack could not be brought up or down
     ├── InputError                  permanent: the job can never succeed -> failed result + DLQ
     │    ├── BadIngestEvent          malformed / unknown-version / refused ingest message
     │    ├── ObjectMissing           the object is gone or was replaced (etag changed)
     │    ├── ObjectTooLarge          over VIDLOC_MAX_OBJECT_BYTES
     │    ├── NotAVideo               no decodable video stream
     │    ├── VideoTooLong            duration over VIDLOC_MAX_DURATION_S
     │    └── DecodeFailed            the decoder gave up on the file
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


class StackError(VidlocError):
    code = "stack"


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
